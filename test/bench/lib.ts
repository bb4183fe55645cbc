// Shared machinery of `pnpm bench`: the two TLS servers, raw BullMQ clients, worker processes of
// both sides, CPU and memory readings. Both sides always run against the same servers, with the
// same handler, concurrency and producer/worker split, one after the other in one run.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { createLogger } from '@taskline/shared';
import type { RunningRedis } from '../harness/index.js';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const PREFIX = 'bench';
export const quiet = createLogger({ component: 'bench', level: 'error', format: 'json' });

export const print = (line: Record<string, unknown>): void => console.log(JSON.stringify(line));
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
export const percentile = (xs: number[], p: number): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
export const round = (x: number, digits = 2): number => Number(x.toFixed(digits));
/** A sub-millisecond wall clock comparable across processes. */
export const now = (): number => performance.timeOrigin + performance.now();

export interface Servers {
  broker: RunningRedis;
  backend: RunningRedis;
  /** REDIS_* and RESULT_REDIS_* for taskline processes. */
  env: Record<string, string>;
}

/** CPU seconds a process has used (user + system), from /proc. */
export function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime in clock ticks (100/s)
}

/** CPU seconds of a process and its descendants still running (isolated runners are children). */
export function treeCpuSeconds(pid: number): number {
  let total = 0;
  try {
    total = processCpuSeconds(pid);
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const children = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim();
      for (const child of children ? children.split(' ') : []) total += treeCpuSeconds(Number(child));
    }
  } catch {
    // the process ended meanwhile
  }
  return total;
}

export function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(match?.[1] ?? 0) / 1024);
}

export async function usedMemory(server: RunningRedis): Promise<number> {
  const info = await server.cli('INFO', 'memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? NaN);
}

/** A plain BullMQ connection over the same TLS (what a raw BullMQ user would make). */
export function rawClient(server: RunningRedis): Redis {
  const certs = server.certs!;
  return new Redis({
    host: server.host,
    port: server.port,
    maxRetriesPerRequest: null,
    tls: { ca: [readFileSync(certs.caFile)], servername: 'localhost', minVersion: 'TLSv1.2' },
  });
}

/** Waits until the queue has nothing waiting, delayed or active. */
export async function drained(queue: Queue, everyMs = 20): Promise<void> {
  for (;;) {
    const counts = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized');
    if (Object.values(counts).every(n => n === 0)) return;
    await new Promise(r => setTimeout(r, everyMs));
  }
}

/** A payload of about `bytes` bytes of JSON. */
export function payload(i: number, bytes = 100): { a: number; b: number; pad: string } {
  return { a: i, b: 1, pad: 'x'.repeat(Math.max(0, bytes - 30)) };
}

export type Side = 'taskline' | 'bullmq';

export interface WorkerSpec {
  queue: string;
  concurrency: number;
  /** taskline only: worker isolation. */
  isolation?: 'none' | 'process' | 'thread';
  /** Extra environment. */
  env?: Record<string, string>;
}

/**
 * Starts the consumer of one side as a separate process: the real `taskline-worker start` bin,
 * or a plain BullMQ Worker with the same handler. Resolves once it consumes.
 */
export async function spawnWorker(side: Side, servers: Servers, spec: WorkerSpec): Promise<ChildProcess> {
  const profile = process.env['BENCH_WORKER_PROFILE_DIR']; // a .cpuprofile of the worker process
  const args =
    side === 'taskline'
      ? ['worker/bin/taskline-worker.js', 'start', '--tasks', 'test/bench/fixtures/bench-tasks.ts', '--queues', spec.queue, '--concurrency', String(spec.concurrency), '--metrics-port', '0']
      : ['--import', 'tsx', 'test/bench/fixtures/raw-bullmq-worker.ts'];
  if (side === 'taskline' && spec.isolation) args.push('--isolation', spec.isolation);
  const child = spawn(process.execPath, [...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : []), ...args], {
    cwd: ROOT,
    env: {
      ...process.env,
      ...servers.env,
      ...spec.env,
      TASKLINE_PREFIX: PREFIX,
      BENCH_QUEUE: spec.queue,
      BENCH_CONCURRENCY: String(spec.concurrency),
      LOG_LEVEL: process.env['BENCH_WORKER_LOG_LEVEL'] ?? 'info',
      LOG_FORMAT: 'json',
      TASKLINE_METRICS_PORT: '0',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    const onData = (chunk: Buffer): void => {
      log = (log + chunk.toString()).slice(-4000);
      if (log.includes('Worker ready')) {
        child.stderr?.off('data', onData);
        child.stderr?.resume();
        resolve();
      }
    };
    child.stderr?.on('data', onData);
    child.once('exit', code => reject(new Error(`the ${side} benchmark worker exited (${code}): ${log.slice(-2000)}`)));
  });
  return child;
}

export async function stopWorker(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await new Promise(r => child.once('exit', r));
}

/** Pauses, fills with `fill()`, starts a worker process, then times resume → drained, with CPU per job. */
export async function timedDrain(
  side: Side,
  servers: Servers,
  queue: Queue,
  jobs: number,
  fill: () => Promise<void>,
  spec: WorkerSpec,
): Promise<{ jobsPerSecond: number; workerCpuUsPerJob: number; redisCpuUsPerJob: number; workerRssMb: number }> {
  await queue.pause();
  await fill();
  const worker = await spawnWorker(side, servers, spec);
  const pid = worker.pid ?? 0;
  const redisServers = side === 'taskline' ? [servers.broker, servers.backend] : [servers.broker];
  try {
    const cpu0 = treeCpuSeconds(pid);
    const redis0 = redisServers.reduce((sum, s) => sum + processCpuSeconds(s.pid), 0);
    const started = performance.now();
    await queue.resume();
    await drained(queue, 10);
    const elapsed = (performance.now() - started) / 1000;
    const cpu = treeCpuSeconds(pid) - cpu0;
    const redis = redisServers.reduce((sum, s) => sum + processCpuSeconds(s.pid), 0) - redis0;
    return {
      jobsPerSecond: jobs / elapsed,
      workerCpuUsPerJob: Math.round((cpu * 1e6) / jobs),
      redisCpuUsPerJob: Math.round((redis * 1e6) / jobs),
      workerRssMb: rssMb(pid),
    };
  } finally {
    await stopWorker(worker);
  }
}
