/**
 * `pnpm bench` — taskline against raw BullMQ, side by side in one run, both over TLS.
 * Prints JSON lines:
 *  1. throughput: jobs/s of raw BullMQ and of taskline (results stored in the separate result
 *     backend, metrics on), same broker, concurrency and handler; `throughput_ratio_vs_bullmq`.
 *  2. latency: enqueue→start p50/p99 at a steady 1,000 jobs/s.
 *  3. connections: Redis connections (CLIENT LIST) before and during 10,000 concurrent enqueues.
 * Not a test: numbers vary with the machine; targets are printed beside them.
 */
import { readFileSync } from 'node:fs';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { createLogger, resolveConnectionOptions } from '@taskline/shared';
import { createProducer } from '@taskline/producer';
import { createWorker, defineTasks } from '@taskline/worker';
import { startRedis, type RunningRedis } from '../harness/index.js';

const JOBS = Number(process.env['BENCH_JOBS'] ?? 20_000);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 50);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const LATENCY_RATE = 1000; // jobs per second
const LATENCY_SECONDS = Number(process.env['BENCH_LATENCY_SECONDS'] ?? 5);
const CONCURRENT_ENQUEUES = 10_000;

const quiet = createLogger({ component: 'bench', level: 'error', format: 'json' });
const print = (line: Record<string, unknown>): void => console.log(JSON.stringify(line));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const percentile = (xs: number[], p: number): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const now = (): number => performance.timeOrigin + performance.now();

function rawClient(server: RunningRedis): Redis {
  const certs = server.certs!;
  return new Redis({
    host: server.host,
    port: server.port,
    maxRetriesPerRequest: null,
    tls: { ca: [readFileSync(certs.caFile)], servername: 'localhost', minVersion: 'TLSv1.2' },
  });
}


/** Waits until the queue has nothing waiting, delayed or active. */
async function drained(queue: Queue): Promise<void> {
  for (;;) {
    const counts = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized', 'paused');
    if (Object.values(counts).every(n => n === 0)) return;
    await new Promise(r => setTimeout(r, 20));
  }
}

function payloads(n: number): Array<{ a: number; b: number }> {
  return Array.from({ length: n }, (_, i) => ({ a: i, b: 1 }));
}

async function rawBullmqRun(broker: RunningRedis, round: number): Promise<number> {
  const name = `bench-raw-${round}`;
  const connection = rawClient(broker);
  const queue = new Queue(name, { connection, prefix: 'bench' });
  const data = payloads(JOBS);
  for (let i = 0; i < data.length; i += 1000) {
    await queue.addBulk(data.slice(i, i + 1000).map(d => ({ name: 'add', data: d, opts: { removeOnComplete: true } })));
  }
  const started = performance.now();
  const worker = new Worker(name, async job => (job.data as { a: number; b: number }).a + (job.data as { a: number; b: number }).b, {
    connection,
    prefix: 'bench',
    concurrency: CONCURRENCY,
  });
  await drained(queue);
  const elapsed = (performance.now() - started) / 1000;
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  return JOBS / elapsed;
}

async function tasklineRun(env: Record<string, string>, broker: RunningRedis, round: number): Promise<number> {
  const queueName = `bench-tl-${round}`;
  const tasks = defineTasks({ add: { queue: queueName, run: async (data: { a: number; b: number }) => data.a + data.b } });
  const connection = resolveConnectionOptions({ healthCheckIntervalMs: 0 }, env);
  const producer = createProducer({ connection, env, prefix: 'bench', defaultQueue: queueName, logger: quiet });
  const data = payloads(JOBS);
  for (let i = 0; i < data.length; i += 1000) {
    await producer.enqueueBulk(data.slice(i, i + 1000).map(d => ({ task: 'add', data: d })));
  }
  const probe = rawClient(broker);
  const queue = new Queue(queueName, { connection: probe, prefix: 'bench' });
  const started = performance.now();
  const worker = createWorker({ tasks, concurrency: CONCURRENCY, connection, env, prefix: 'bench', logger: quiet });
  await worker.start();
  await drained(queue);
  const elapsed = (performance.now() - started) / 1000;
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  probe.disconnect();
  await producer.close();
  return JOBS / elapsed;
}

async function latencyRun(env: Record<string, string>): Promise<Record<string, unknown>> {
  const queueName = 'bench-latency';
  const latencies: number[] = [];
  const tasks = defineTasks({
    stamp: {
      queue: queueName,
      run: async (data: { sentAt: number }) => {
        latencies.push(now() - data.sentAt);
        return null;
      },
    },
  });
  const connection = resolveConnectionOptions({ healthCheckIntervalMs: 0 }, env);
  const producer = createProducer({ connection, env, prefix: 'bench', defaultQueue: queueName, logger: quiet });
  const worker = createWorker({ tasks, concurrency: CONCURRENCY, connection, env, prefix: 'bench', logger: quiet });
  await worker.start();
  const total = LATENCY_RATE * LATENCY_SECONDS;
  const started = performance.now();
  const pending: Array<Promise<unknown>> = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / LATENCY_RATE;
    const wait = due - performance.now();
    if (wait > 1) await new Promise(r => setTimeout(r, wait));
    pending.push(producer.enqueue('stamp', { sentAt: now() }));
  }
  await Promise.all(pending);
  const deadline = performance.now() + 30_000;
  while (latencies.length < total && performance.now() < deadline) await new Promise(r => setTimeout(r, 20));
  const achievedRate = total / ((performance.now() - started) / 1000);
  await worker.close();
  await producer.close();
  return {
    bench: 'latency',
    jobs: total,
    started_jobs: latencies.length,
    target_rate_per_s: LATENCY_RATE,
    achieved_rate_per_s: Math.round(achievedRate),
    p50_ms: Number(percentile(latencies, 50).toFixed(2)),
    p99_ms: Number(percentile(latencies, 99).toFixed(2)),
    max_ms: Number(Math.max(...latencies).toFixed(2)),
    targets: { p50_ms: 2, p99_ms: 10 },
  };
}

async function connectionCount(server: RunningRedis): Promise<number> {
  const list = await server.cli('CLIENT', 'LIST');
  // Our own redis-cli connection is in the list too.
  return list.split('\n').filter(l => l.trim() && !l.includes('cmd=client|list')).length;
}

async function connectionsRun(env: Record<string, string>, broker: RunningRedis, backend: RunningRedis): Promise<Record<string, unknown>> {
  const connection = resolveConnectionOptions({ healthCheckIntervalMs: 0 }, env);
  const producer = createProducer({ connection, env, prefix: 'bench', defaultQueue: 'bench-conn', logger: quiet });
  await producer.enqueue('noop', {}); // opens its connections
  const before = { broker: await connectionCount(broker), backend: await connectionCount(backend) };
  let peakBroker = 0;
  let peakBackend = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peakBroker = Math.max(peakBroker, await connectionCount(broker));
      peakBackend = Math.max(peakBackend, await connectionCount(backend));
    }
  })();
  const started = performance.now();
  const results = await Promise.allSettled(Array.from({ length: CONCURRENT_ENQUEUES }, (_, i) => producer.enqueue('noop', { i })));
  const elapsed = performance.now() - started;
  sampling = false;
  await sampler;
  await producer.close();
  return {
    bench: 'connections_under_load',
    concurrent_enqueues: CONCURRENT_ENQUEUES,
    succeeded: results.filter(r => r.status === 'fulfilled').length,
    elapsed_ms: Math.round(elapsed),
    broker_connections_before: before.broker,
    broker_connections_peak: peakBroker,
    backend_connections_before: before.backend,
    backend_connections_peak: peakBackend,
    bound_per_service: connection.maxConnections,
    bounded: peakBroker <= connection.maxConnections && peakBackend <= connection.maxConnections,
  };
}

const broker = await startRedis({ tls: true });
const backend = await startRedis({ tls: true, certs: broker.certs! });
const env = { ...broker.env('REDIS_'), ...backend.env('RESULT_REDIS_'), REDIS_TLS_SERVERNAME: 'localhost', RESULT_REDIS_TLS_SERVERNAME: 'localhost' };
try {
  const raw: number[] = [];
  const ours: number[] = [];
  const only = process.env['BENCH_ONLY']; // 'bullmq' | 'taskline', for profiling one side
  for (let round = 0; round < ROUNDS; round++) {
    if (only !== 'taskline') raw.push(await rawBullmqRun(broker, round));
    if (only !== 'bullmq') ours.push(await tasklineRun(env, broker, round));
  }
  print({
    bench: 'throughput',
    jobs_per_round: JOBS,
    rounds: ROUNDS,
    concurrency: CONCURRENCY,
    bullmq_jobs_per_s: Math.round(median(raw)),
    taskline_jobs_per_s: Math.round(median(ours)),
    throughput_ratio_vs_bullmq: Number((median(ours) / median(raw)).toFixed(3)),
    target_ratio: 0.85,
    bullmq_rounds: raw.map(Math.round),
    taskline_rounds: ours.map(Math.round),
  });
  if (!only) {
    print(await latencyRun(env));
    print(await connectionsRun(env, broker, backend));
  }
} finally {
  await broker.stop();
  await backend.stop();
}
