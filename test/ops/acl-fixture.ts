import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import type { ConnectionOptions } from '@taskline/shared';
import { startRedis, type RunningRedis } from '../harness/index.js';
import { ROOT, endpointAs, readSecret, redisServerVersion, runScript, tempDir, uniquePrefix } from './ops-helpers.js';

/** The users ops/acl/generate-acl.sh writes besides admin. */
export const APP_USERS = ['producer', 'worker', 'scheduler'] as const;
export type AclUser = (typeof APP_USERS)[number] | 'metrics' | 'loader' | 'admin' | 'celery-client';

export const BINS = {
  producer: path.join(ROOT, 'producer/bin/taskline-producer.js'),
  worker: path.join(ROOT, 'worker/bin/taskline-worker.js'),
  scheduler: path.join(ROOT, 'scheduler/bin/taskline-scheduler.js'),
} as const;

/**
 * A broker and a result backend over TLS, each with the ACL file ops/make-secrets.sh generates for
 * a fresh prefix, and the ways a test acts as one of its users.
 */
export class AclServers {
  private constructor(
    readonly secretsDir: string,
    readonly prefix: string,
    readonly broker: RunningRedis,
    readonly backend: RunningRedis,
    private readonly removeSecrets: () => Promise<void>,
    private readonly adminPassword: string,
  ) {}

  static async start(options: { appendonly?: boolean; makeSecretsArgs?: string[] } = {}): Promise<AclServers> {
    const secrets = await tempDir('acl');
    const prefix = uniquePrefix('acl');
    try {
      const made = await runScript('ops/make-secrets.sh', ['--prefix', prefix, '--redis-version', await redisServerVersion(), ...(options.makeSecretsArgs ?? []), secrets.dir]);
      expect(made.code, made.stderr).to.equal(0);
      const [broker, backend] = await Promise.all(
        (['broker', 'backend'] as const).map(service =>
          startRedis({ appendonly: options.appendonly ?? false, extraArgs: ['--aclfile', path.join(secrets.dir, `redis_${service}.acl`)] }),
        ),
      );
      return new AclServers(secrets.dir, prefix, broker as RunningRedis, backend as RunningRedis, secrets.remove, await readSecret(secrets.dir, 'redis_admin_password'));
    } catch (err) {
      await secrets.remove();
      throw err;
    }
  }

  /** Library options for `user` on both servers; app users run scripts preloaded (no EVAL). */
  connectionAs(user: AclUser, extra: Partial<ConnectionOptions> = {}): ConnectionOptions {
    return {
      broker: endpointAs(this.broker, user, this.secretsDir),
      backend: endpointAs(this.backend, user, this.secretsDir),
      production: true,
      retries: 1,
      healthCheckIntervalMs: 0,
      scriptLoading: 'preloaded',
      ...extra,
    };
  }

  /** The environment a bin needs to connect as `user` (password from its file, never in argv). */
  envAs(user: AclUser): Record<string, string> {
    return {
      ...this.broker.env('REDIS_'),
      ...this.backend.env('RESULT_REDIS_'),
      REDIS_USERNAME: user,
      REDIS_PASSWORD_FILE: path.join(this.secretsDir, `redis_${user}_password`),
      RESULT_REDIS_USERNAME: user,
      RESULT_REDIS_PASSWORD_FILE: path.join(this.secretsDir, `redis_${user}_password`),
      TASKLINE_PREFIX: this.prefix,
      TASKLINE_ENV: 'production',
      REDIS_SCRIPTS: 'preloaded',
    };
  }

  /** redis-cli as admin on one server. */
  admin(server: RunningRedis, ...args: string[]): Promise<string> {
    return server.cli('--user', 'admin', '--pass', this.adminPassword, ...args);
  }

  async resetAclLogs(): Promise<void> {
    for (const server of [this.broker, this.backend]) await this.admin(server, 'ACL', 'LOG', 'RESET');
  }

  /** Every ACL refusal since the last reset, on both servers (empty when nothing was refused). */
  async aclLogs(): Promise<string> {
    return [await this.admin(this.broker, 'ACL', 'LOG'), await this.admin(this.backend, 'ACL', 'LOG')].filter(Boolean).join('\n');
  }

  /** Runs a bin to its end as `user`. */
  runBin(bin: keyof typeof BINS, args: string[], user: AclUser, env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise(resolve => {
      const child = spawn(process.execPath, [BINS[bin], ...args], { env: { ...process.env, ...this.envAs(user), LOG_LEVEL: 'error', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('close', code => {
        clearTimeout(timer);
        resolve({ code: code ?? 1, stdout, stderr });
      });
    });
  }

  /** Starts `scripts load --watch` as the loader user; its JSON log lines collect in `lines`. */
  startLoaderWatch(intervalMs = 1000, extraArgs: string[] = []): LoaderProcess {
    const child = spawn(process.execPath, [BINS.worker, 'scripts', 'load', '--watch', '--interval-ms', String(intervalMs), ...extraArgs], {
      env: { ...process.env, ...this.envAs('loader'), LOG_LEVEL: 'info', LOG_FORMAT: 'json' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new LoaderProcess(child);
  }

  async stop(): Promise<void> {
    await Promise.allSettled([this.broker.stop(), this.backend.stop()]);
    await this.removeSecrets();
  }
}

export interface LogLine {
  at: number;
  message: string;
  fields: Record<string, unknown>;
}

export class LoaderProcess {
  readonly lines: LogLine[] = [];
  readonly raw: string[] = [];
  readonly #exited: Promise<number>;

  constructor(private readonly child: ChildProcess) {
    const take = (chunk: Buffer): void => {
      for (const text of chunk.toString().split('\n').filter(Boolean)) {
        this.raw.push(text);
        try {
          const parsed = JSON.parse(text) as Record<string, unknown>;
          // The loader's own clock (same host): when it logged, not when the pipe delivered it.
          const at = typeof parsed['timestamp'] === 'string' ? Date.parse(parsed['timestamp']) : Date.now();
          this.lines.push({ at, message: String(parsed['message'] ?? ''), fields: parsed });
        } catch {
          // not a log line
        }
      }
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    this.#exited = new Promise(resolve => child.on('close', code => resolve(code ?? 1)));
  }

  /** Resolves with the first line after `since` (ms epoch) matching `test`. */
  async waitFor(test: (line: LogLine) => boolean, since: number, timeoutMs = 20_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.lines.find(line => line.at >= since && test(line));
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`the loader did not log what was expected within ${timeoutMs} ms:\n${this.raw.slice(-10).join('\n')}`);
      await new Promise(r => setTimeout(r, 20));
    }
  }

  /** SIGTERM; resolves with the exit code. */
  async stop(): Promise<number> {
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    const code = await this.#exited;
    clearTimeout(timer);
    return code;
  }
}
