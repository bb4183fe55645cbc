import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createWorker, type TasklineWorker, type WorkerOptions } from '@taskline/worker';
import { startPair, uniquePrefix, type RedisPair } from '../worker/helpers.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const EXAMPLE_DIR = path.join(ROOT, 'examples/celery-app');
const DRIVER = fileURLToPath(new URL('./celery_driver.py', import.meta.url));

let celeryChecked: string | null | undefined;
/** The Python that has Celery: CELERY_PYTHON, else `python3` on the PATH, else Debian's own (a pyenv shim may shadow it). */
let PYTHON = 'python3';

/** The Celery version the tests run against (after celeryMissing() said null). */
export let celeryVersion = '';

function findPython(): boolean {
  for (const candidate of [process.env['CELERY_PYTHON'], 'python3', '/usr/bin/python3']) {
    if (!candidate) continue;
    const probe = spawnSync(candidate, ['-c', 'import celery, redis; print(celery.__version__)'], { encoding: 'utf8' });
    if (probe.status === 0) {
      PYTHON = candidate;
      celeryVersion = probe.stdout.trim();
      return true;
    }
  }
  return false;
}

/**
 * `null` when a Python can import Celery and redis-py; else why not. Installs Debian's
 * python3-celery and python3-redis once when they are missing and this runs as root.
 */
export function celeryMissing(): string | null {
  if (celeryChecked !== undefined) return celeryChecked;
  let found = findPython();
  if (!found && process.getuid?.() === 0) {
    spawnSync('apt-get', ['install', '-y', '-qq', 'python3-celery', 'python3-redis'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    found = findPython();
  }
  celeryChecked = found ? null : 'Python Celery is not installed and could not be installed (apt-get install python3-celery python3-redis)';
  return celeryChecked;
}

/** A TLS broker and a separate TLS result backend (each with its own CA), as the Python app sees them. */
export interface CeleryServers {
  pair: RedisPair;
  prefix: string;
  /** The example app's environment: rediss:// URLs and each server's CA. */
  pythonEnv: Record<string, string>;
  stop(): Promise<void>;
}

/** The servers for a suite, or the suite skipped (with why) where Python Celery is not installed. */
export async function startCeleryServersOrSkip(suite: Mocha.Context): Promise<CeleryServers> {
  const missing = celeryMissing();
  if (missing) {
    console.warn(`      skipped: ${missing}`);
    suite.skip();
  }
  return startCeleryServers();
}

export async function startCeleryServers(): Promise<CeleryServers> {
  const pair = await startPair();
  const url = (r: RedisPair['broker']) => `rediss://127.0.0.1:${r.port}/0`;
  const pythonEnv: Record<string, string> = {
    CELERY_BROKER_URL: url(pair.broker),
    CELERY_RESULT_BACKEND: url(pair.backend),
    CELERY_BROKER_CA_FILE: pair.broker.certs?.caFile ?? '',
    CELERY_BACKEND_CA_FILE: pair.backend.certs?.caFile ?? '',
    PYTHONPATH: EXAMPLE_DIR,
    PYTHONDONTWRITEBYTECODE: '1',
  };
  return {
    pair,
    prefix: uniquePrefix(),
    pythonEnv,
    stop: async () => {
      await pair.broker.stop();
      await pair.backend.stop();
    },
  };
}

/** Runs one driver command (celery_driver.py) and returns the JSON it printed. */
export function python<T = Record<string, unknown>>(servers: Pick<CeleryServers, 'pythonEnv'>, args: string[], timeoutMs = 30_000, extraEnv: Record<string, string> = {}): Promise<T> {
  celeryMissing(); // picks the Python that has Celery
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [DRIVER, ...args], { cwd: EXAMPLE_DIR, env: { ...process.env, ...servers.pythonEnv, ...extraEnv }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', code => {
      clearTimeout(timer);
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || !line) return reject(new Error(`python3 ${args.join(' ')} exited ${code}: ${err.slice(-2000)}`));
      try {
        resolve(JSON.parse(line) as T);
      } catch {
        reject(new Error(`python3 ${args.join(' ')} printed no JSON: ${out.slice(-500)} ${err.slice(-500)}`));
      }
    });
  });
}

/** A real Celery program of the example app (`worker -Q …` or `beat`), stopped by `stop()`. */
export interface CeleryProcess {
  child: ChildProcess;
  output(): string;
  stop(): Promise<void>;
}

export function startCeleryProgram(servers: CeleryServers, args: string[], extraEnv: Record<string, string> = {}): CeleryProcess {
  celeryMissing();
  const child = spawn(PYTHON, ['-m', 'celery', '-A', 'tasks', ...args], {
    cwd: EXAMPLE_DIR,
    env: { ...process.env, ...servers.pythonEnv, ...extraEnv },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-20_000)));
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()));
  return {
    child,
    output: () => output,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** A Celery worker of the example app on `queues`, one process (the solo pool) unless `pool` says otherwise. */
export function startCeleryWorker(servers: CeleryServers, queues: string[], extraEnv: Record<string, string> = {}, pool: string[] = ['--pool', 'solo']): CeleryProcess {
  return startCeleryProgram(servers, ['worker', '-Q', queues.join(','), ...pool, '-l', 'warning', '--without-gossip', '--without-mingle', '--without-heartbeat', '-n', `w${process.pid}@%h`], extraEnv);
}

/** A taskline worker in this process with the Celery intake on `celeryQueues` (the example's `taskline`). */
export async function startBridgeWorker(servers: CeleryServers, options: Partial<WorkerOptions> & Pick<WorkerOptions, 'tasks'>): Promise<TasklineWorker> {
  const worker = createWorker({
    env: { ...servers.pair.env, REDIS_HEALTH_CHECK_INTERVAL: '0', RESULT_REDIS_HEALTH_CHECK_INTERVAL: '0' },
    prefix: servers.prefix,
    celeryQueues: ['taskline'],
    celeryFallbackQueue: 'celery',
    ...options,
  });
  await worker.start();
  return worker;
}

export async function until<T>(probe: () => Promise<T | null | undefined | false>, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise(resolve => setTimeout(resolve, 100));
  }
}
