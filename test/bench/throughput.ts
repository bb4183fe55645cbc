/**
 * `pnpm bench` — taskline against raw BullMQ, side by side in one run, both over TLS.
 * Prints JSON lines:
 *  1. throughput: jobs/s of raw BullMQ and of taskline (results stored in the separate result
 *     backend, metrics on), same broker, concurrency and handler; `throughput_ratio_vs_bullmq`.
 *  2. latency: enqueue→start p50/p99 at a steady 1,000 jobs/s.
 *  3. connections: Redis connections (CLIENT LIST) before and during 10,000 concurrent enqueues.
 * Not a test: numbers vary with the machine; targets are printed beside them.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { createLogger, resolveConnectionOptions } from '@taskline/shared';
import { createProducer } from '@taskline/producer';
import { createWorker, defineTasks } from '@taskline/worker';
import { startRedis, type RunningRedis } from '../harness/index.js';

const JOBS = Number(process.env['BENCH_JOBS'] ?? 20_000);
const CONCURRENCY = Number(process.env['BENCH_CONCURRENCY'] ?? 50);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const LATENCY_RATE = Number(process.env['BENCH_LATENCY_RATE'] ?? 1000); // jobs per second
const LATENCY_SECONDS = Number(process.env['BENCH_LATENCY_SECONDS'] ?? 5);
const CONCURRENT_ENQUEUES = 10_000;
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

const quiet = createLogger({ component: 'bench', level: 'error', format: 'json' });
const print = (line: Record<string, unknown>): void => console.log(JSON.stringify(line));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const percentile = (xs: number[], p: number): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
};
const now = (): number => performance.timeOrigin + performance.now();

/** CPU seconds a process has used (user + system), from /proc. */
function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime in clock ticks (100/s)
}

interface Cost {
  jobsPerSecond: number;
  nodeCpuUsPerJob: number;
  redisCpuUsPerJob: number;
}

/** Runs `fn` (which processes JOBS jobs) and returns wall-clock rate and CPU per job. */
async function measured(servers: RunningRedis[], fn: () => Promise<number>): Promise<Cost> {
  const cpu0 = process.cpuUsage();
  const redis0 = servers.reduce((sum, s) => sum + processCpuSeconds(s.pid), 0);
  const elapsed = await fn();
  const cpu = process.cpuUsage(cpu0);
  const redis = servers.reduce((sum, s) => sum + processCpuSeconds(s.pid), 0) - redis0;
  return {
    jobsPerSecond: JOBS / elapsed,
    nodeCpuUsPerJob: Math.round((cpu.user + cpu.system) / JOBS),
    redisCpuUsPerJob: Math.round((redis * 1e6) / JOBS),
  };
}

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
    const counts = await queue.getJobCounts('wait', 'active', 'delayed', 'prioritized');
    if (Object.values(counts).every(n => n === 0)) return;
    await new Promise(r => setTimeout(r, 20));
  }
}

function payloads(n: number): Array<{ a: number; b: number }> {
  return Array.from({ length: n }, (_, i) => ({ a: i, b: 1 }));
}

async function rawBullmqRun(broker: RunningRedis, round: number): Promise<Cost> {
  const name = `bench-raw-${round}`;
  const connection = rawClient(broker);
  const queue = new Queue(name, { connection, prefix: 'bench' });
  const data = payloads(JOBS);
  for (let i = 0; i < data.length; i += 1000) {
    await queue.addBulk(data.slice(i, i + 1000).map(d => ({ name: 'add', data: d, opts: { removeOnComplete: true } })));
  }
  let worker!: Worker;
  const cost = await measured([broker], async () => {
  const started = performance.now();
  worker = new Worker(name, async job => (job.data as { a: number; b: number }).a + (job.data as { a: number; b: number }).b, {
    connection,
    prefix: 'bench',
    concurrency: CONCURRENCY,
  });
  await drained(queue);
  return (performance.now() - started) / 1000;
  });
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  return cost;
}

async function tasklineRun(env: Record<string, string>, broker: RunningRedis, backend: RunningRedis, round: number): Promise<Cost> {
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
  const worker = createWorker({ tasks, concurrency: CONCURRENCY, env, prefix: 'bench', logger: quiet });
  const cost = await measured([broker, backend], async () => {
    const started = performance.now();
    await worker.start();
    await drained(queue);
    return (performance.now() - started) / 1000;
  });
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  probe.disconnect();
  await producer.close();
  return cost;
}

/** A worker process of the real bin, as deployed: the latency run's consumer. */
const TASKLINE_WORKER = ['worker/bin/taskline-worker.js', 'start', '--tasks', 'test/bench/fixtures/latency-tasks.ts', '--concurrency', String(CONCURRENCY), '--metrics-port', '0'];
const RAW_WORKER = ['--import', 'tsx', 'test/bench/fixtures/raw-bullmq-worker.ts'];

async function spawnWorker(env: Record<string, string>, args: string[] = TASKLINE_WORKER): Promise<ChildProcess> {
  const profile = process.env['BENCH_WORKER_PROFILE_DIR']; // a .cpuprofile of the worker process
  const child = spawn(process.execPath, [...(profile ? ['--cpu-prof', `--cpu-prof-dir=${profile}`] : []), ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env, TASKLINE_PREFIX: 'bench', LOG_LEVEL: process.env['BENCH_WORKER_LOG_LEVEL'] ?? 'info', LOG_FORMAT: 'json', TASKLINE_METRICS_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    const onData = (chunk: Buffer): void => {
      log = (log + chunk.toString()).slice(-4000);
      if (log.includes('Worker ready')) {
        child.stderr?.off('data', onData);
        child.stderr?.resume(); // keep draining, without reading
        resolve();
      }
    };
    child.stderr?.on('data', onData);
    child.once('exit', code => reject(new Error(`the benchmark worker exited (${code}): ${log.slice(-2000)}`)));
  });
  return child;
}

/** Paces `total` calls of `send` at LATENCY_RATE per second; returns the rate achieved. */
async function paced(total: number, send: () => Promise<unknown>): Promise<{ rate: number; results: unknown[]; cpuUsPerCall: number }> {
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const pending: Array<Promise<unknown>> = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / LATENCY_RATE;
    const wait = due - performance.now();
    if (wait > 1) await new Promise(r => setTimeout(r, wait));
    pending.push(send());
  }
  const results = await Promise.all(pending);
  const cpu = process.cpuUsage(cpu0);
  return { rate: total / ((performance.now() - started) / 1000), results, cpuUsPerCall: Math.round((cpu.user + cpu.system) / total) };
}

/** Raw BullMQ, same broker, concurrency, handler, pacing: the side-by-side reference. */
async function rawLatencyRun(env: Record<string, string>, broker: RunningRedis): Promise<{ p50: number; p99: number; rate: number; cpuUsPerCall: number }> {
  const worker = await spawnWorker(env, RAW_WORKER);
  const connection = rawClient(broker);
  const queue = new Queue('bench-latency-raw', { connection, prefix: 'bench' });
  let out = '';
  worker.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  const total = LATENCY_RATE * LATENCY_SECONDS;
  const { rate, cpuUsPerCall } = await paced(total, () => queue.add('stamp', { sentAt: now() }, { removeOnComplete: true }));
  await drained(queue);
  worker.kill('SIGTERM');
  await new Promise(r => worker.once('exit', r));
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  const latencies = JSON.parse(out.trim() || '[]') as number[];
  return { p50: percentile(latencies, 50), p99: percentile(latencies, 99), rate, cpuUsPerCall };
}

async function latencyRun(env: Record<string, string>, broker: RunningRedis): Promise<Record<string, unknown>> {
  const raw = await rawLatencyRun(env, broker);
  const connection = resolveConnectionOptions({ healthCheckIntervalMs: 0 }, env);
  const producer = createProducer({ connection, env, prefix: 'bench', defaultQueue: 'bench-latency', logger: quiet });
  const worker = await spawnWorker(env);
  try {
    await producer.enqueue('stamp', { sentAt: now() }); // warm-up
    const total = LATENCY_RATE * LATENCY_SECONDS;
    const { rate: achievedRate, results, cpuUsPerCall } = await paced(total, () => producer.enqueue('stamp', { sentAt: now() }));
    const ids = (results as Array<{ id: string }>).map(r => r.id);
    const records = await Promise.all(ids.map(id => producer.waitForResult(id, { timeoutMs: 30_000 })));
    const latencies = records.map(r => Number(r.result));
    return {
      bench: 'latency',
      jobs: total,
      worker: 'separate process (taskline-worker start)',
      target_rate_per_s: LATENCY_RATE,
      achieved_rate_per_s: Math.round(achievedRate),
      p50_ms: Number(percentile(latencies, 50).toFixed(2)),
      p99_ms: Number(percentile(latencies, 99).toFixed(2)),
      max_ms: Number(Math.max(...latencies).toFixed(2)),
      targets: { p50_ms: 2, p99_ms: 10 },
      bullmq_p50_ms: Number(raw.p50.toFixed(2)),
      bullmq_p99_ms: Number(raw.p99.toFixed(2)),
      bullmq_achieved_rate_per_s: Math.round(raw.rate),
      producer_cpu_us_per_enqueue: cpuUsPerCall,
      bullmq_cpu_us_per_add: raw.cpuUsPerCall,
    };
  } finally {
    worker.kill('SIGTERM');
    await new Promise(r => worker.once('exit', r));
    await producer.close();
  }
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
const env = {
  ...broker.env('REDIS_'),
  ...backend.env('RESULT_REDIS_'),
  REDIS_TLS_SERVERNAME: 'localhost',
  RESULT_REDIS_TLS_SERVERNAME: 'localhost',
  REDIS_HEALTH_CHECK_INTERVAL: '0',
};
try {
  const raw: Cost[] = [];
  const ours: Cost[] = [];
  const only = process.env['BENCH_ONLY']; // 'bullmq' | 'taskline', for profiling one side
  const part = process.env['BENCH_PART']; // 'throughput' | 'latency' | 'connections' to run one part
  for (let round = 0; round < ROUNDS && (!part || part === 'throughput'); round++) {
    if (only !== 'taskline') raw.push(await rawBullmqRun(broker, round));
    if (only !== 'bullmq') ours.push(await tasklineRun(env, broker, backend, round));
  }
  if (raw.length + ours.length > 0) print({
    bench: 'throughput',
    jobs_per_round: JOBS,
    rounds: ROUNDS,
    concurrency: CONCURRENCY,
    bullmq_jobs_per_s: Math.round(median(raw.map(c => c.jobsPerSecond))),
    taskline_jobs_per_s: Math.round(median(ours.map(c => c.jobsPerSecond))),
    throughput_ratio_vs_bullmq: Number((median(ours.map(c => c.jobsPerSecond)) / median(raw.map(c => c.jobsPerSecond))).toFixed(3)),
    target_ratio: 0.85,
    bullmq_rounds: raw.map(c => Math.round(c.jobsPerSecond)),
    taskline_rounds: ours.map(c => Math.round(c.jobsPerSecond)),
    // CPU per job is steadier than wall-clock rate on a shared machine.
    bullmq_node_cpu_us_per_job: median(raw.map(c => c.nodeCpuUsPerJob)),
    taskline_node_cpu_us_per_job: median(ours.map(c => c.nodeCpuUsPerJob)),
    bullmq_redis_cpu_us_per_job: median(raw.map(c => c.redisCpuUsPerJob)),
    taskline_redis_cpu_us_per_job: median(ours.map(c => c.redisCpuUsPerJob)),
  });
  if (!only && (!part || part === 'latency')) print(await latencyRun(env, broker));
  if (!only && (!part || part === 'connections')) print(await connectionsRun(env, broker, backend));
} finally {
  await broker.stop();
  await backend.stop();
}
