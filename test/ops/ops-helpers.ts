import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConnectionOptions, RedisEndpointOptions } from '@taskline/shared';
import type { RunningRedis } from '../harness/index.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Runs a repository script; resolves with its exit code and output (never throws on exit code). */
export function runScript(script: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise(resolve => {
    execFile(path.join(ROOT, script), args, { cwd: ROOT, timeout: 60_000, env: { ...process.env, ...env } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

/** The local redis-server's major.minor, for generate-acl.sh --redis-version. */
export function redisServerVersion(): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(process.env['REDIS_SERVER_BIN'] ?? 'redis-server', ['--version'], (error, stdout) => {
      const match = /v=(\d+\.\d+)/.exec(stdout);
      if (error || !match?.[1]) reject(error ?? new Error(`cannot read the redis-server version from "${stdout}"`));
      else resolve(match[1]);
    });
  });
}

export function uniquePrefix(label: string): string {
  return `tl-${label}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
}

export async function tempDir(label: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `taskline-ops-${label}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Library options for one Redis service under an ACL user whose password is in `secretsDir`. */
export function endpointAs(server: RunningRedis, user: string | undefined, secretsDir: string, extra: Partial<RedisEndpointOptions> = {}): RedisEndpointOptions {
  return {
    host: server.host,
    port: server.port,
    tls: true,
    caFile: server.certs?.caFile,
    ...(user ? { username: user, passwordFile: path.join(secretsDir, `redis_${user}_password`) } : {}),
    ...extra,
  };
}

export function connectionAs(broker: RunningRedis, backend: RunningRedis, user: string, secretsDir: string): ConnectionOptions {
  return {
    broker: endpointAs(broker, user, secretsDir),
    backend: endpointAs(backend, user, secretsDir),
    production: true,
    retries: 1,
    healthCheckIntervalMs: 0,
  };
}

export async function readSecret(secretsDir: string, name: string): Promise<string> {
  return (await readFile(path.join(secretsDir, name), 'utf8')).trim();
}
