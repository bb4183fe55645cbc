import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { createConnections, resolveConnectionOptions, type JobResultRecord, type TasklineConnections } from '@taskline/shared';
import { createProducer, type EnqueueOptions, type Producer } from '@taskline/producer';
import { createWorker, type TasklineWorker, type WorkerOptions } from '@taskline/worker';
import { startRedis, type RunningRedis } from '../harness/index.js';
import { envFor } from '../shared/helpers.js';

/** A TLS broker and a separate TLS result backend. */
export interface RedisPair {
  broker: RunningRedis;
  backend: RunningRedis;
  env: Record<string, string>;
}

export async function startPair(): Promise<RedisPair> {
  const broker = await startRedis({ tls: true });
  const backend = await startRedis({ tls: true });
  return { broker, backend, env: envFor(broker, backend) };
}

export function uniquePrefix(): string {
  return `t${randomUUID().slice(0, 8)}`;
}

/**
 * A caller of the system as users are: the producer library for enqueue, results and revoke.
 * `queue()` is a read-only BullMQ view of a queue, for checking what the broker holds.
 */
export class TestClient {
  readonly producer: Producer;
  readonly #connections: TasklineConnections;
  readonly #queues = new Map<string, Promise<Queue>>();

  constructor(readonly env: Record<string, string>, readonly prefix: string) {
    this.producer = createProducer({ env: { ...env, REDIS_HEALTH_CHECK_INTERVAL: '0' }, prefix });
    this.#connections = createConnections({
      options: resolveConnectionOptions({ healthCheckIntervalMs: 0 }, env),
      role: 'cli',
      component: 'test-client',
    });
  }

  queue(name = 'default'): Promise<Queue> {
    let queue = this.#queues.get(name);
    if (!queue) {
      queue = this.#connections.broker.bullmqConnection().then(connection => new Queue(name, { connection, prefix: this.prefix }));
      this.#queues.set(name, queue);
    }
    return queue;
  }

  async enqueue(task: string, data: unknown, options: EnqueueOptions = {}): Promise<string> {
    return (await this.producer.enqueue(task, data, options)).id;
  }

  get(jobId: string): Promise<JobResultRecord | null> {
    return this.producer.getResult(jobId);
  }

  waitFor(jobId: string, timeoutMs = 15_000): Promise<JobResultRecord> {
    return this.producer.waitForResult(jobId, { timeoutMs });
  }

  /** Connections the read-only view still holds (the producer's own close is checked by its suite). */
  get openConnections(): number {
    return this.#connections.broker.openConnections + this.#connections.backend.openConnections;
  }

  async close(): Promise<void> {
    for (const queue of this.#queues.values()) await (await queue).close();
    this.#queues.clear();
    await this.producer.close();
    await this.#connections.close();
  }
}

const workers = new Set<TasklineWorker>();
const clients = new Set<TestClient>();

export function client(env: Record<string, string>, prefix: string): TestClient {
  const c = new TestClient(env, prefix);
  clients.add(c);
  return c;
}

/** Starts an in-process worker that `closeAll()` closes. */
export async function startWorker(options: WorkerOptions): Promise<TasklineWorker> {
  const worker = createWorker({ shutdownGraceMs: 5000, ...options });
  workers.add(worker);
  await worker.start();
  return worker;
}

/** Closes every worker and client; returns how many Redis connections they left open (want 0). */
export async function closeAll(): Promise<number> {
  let open = 0;
  for (const w of workers) {
    await w.close({ force: true });
    open += w.connections.broker.openConnections + w.connections.backend.openConnections;
  }
  workers.clear();
  for (const c of clients) {
    await c.close();
    open += c.openConnections;
  }
  clients.clear();
  return open;
}

/** Everything opened by these helpers is closed (and its connections with it). */
export function openCount(): number {
  return workers.size + clients.size;
}

export async function until(check: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise(resolve => setTimeout(resolve, 25));
  }
}

const WORKER_BIN = fileURLToPath(new URL('../../worker/bin/taskline-worker.js', import.meta.url));
const MODEL_TASKS = fileURLToPath(new URL('./fixtures/model-tasks.ts', import.meta.url));

function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(match?.[1] ?? 0) / 1024);
}

/**
 * Runs isolated busy loops killed at their hard limit through a worker process (the bin), and
 * reads the worker's RSS after a warm-up and after every `every` of `jobs` more kills. `task`:
 * `spin` (child processes, 1 s hard limit) or `spin-thread` (worker threads, 200 ms).
 */
export async function isolatedKillRss(
  redis: RedisPair,
  prefix: string,
  size: { warmUp: number; jobs: number; every?: number; task?: 'spin' | 'spin-thread' },
): Promise<{ before: number; after: number; series: number[]; records: JobResultRecord[] }> {
  const child = spawn(process.execPath, [WORKER_BIN, 'start', '--tasks', MODEL_TASKS, '--metrics-port', '0', '--concurrency', '4'], {
    env: { PATH: process.env['PATH'] ?? '', ...redis.env, TASKLINE_PREFIX: prefix, LOG_FORMAT: 'json', LOG_LEVEL: 'error', TASKLINE_ISOLATED_POOL_SIZE: '4' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout.on('data', (c: Buffer) => output.push(c.toString()));
  child.stderr.on('data', (c: Buffer) => output.push(c.toString()));
  const exited = new Promise(resolve => child.once('exit', resolve));
  const producer = client(redis.env, prefix);
  try {
    const batch = async (n: number): Promise<JobResultRecord[]> => {
      const ids = (await producer.producer.enqueueBulk(Array.from({ length: n }, () => ({ task: size.task ?? 'spin-thread', data: { ms: 5000 } })))).map(r => r.id);
      return Promise.all(ids.map(id => producer.waitFor(id, 600_000)));
    };
    await batch(size.warmUp);
    const before = rssMb(child.pid ?? 0);
    // RSS after every `every` kills: a leak grows with each step, allocator arenas level off.
    const every = size.every ?? size.jobs;
    const series = [before];
    const records: JobResultRecord[] = [];
    for (let done = 0; done < size.jobs; done += every) {
      records.push(...(await batch(Math.min(every, size.jobs - done))));
      series.push(rssMb(child.pid ?? 0));
    }
    const after = series.at(-1) ?? before;
    console.log(`      worker RSS after ${size.warmUp} warm-up kills ${before} MB, then every ${every} kills: ${series.slice(1).join(', ')} MB`);
    if (/Uncaught|unhandled/i.test(output.join(''))) throw new Error(`the worker logged an uncaught error:\n${output.join('')}`);
    return { before, after, series, records };
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}
