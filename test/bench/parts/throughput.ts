// Throughput, both sides: worker in its own process (the figure that counts), and in-process.
import { Queue, Worker } from 'bullmq';
import { createProducer } from '@taskline/producer';
import { createWorker, defineTasks } from '@taskline/worker';
import { PREFIX, drained, median, payload, quiet, rawClient, round, timedDrain, type Servers, type Side } from '../lib.js';

export interface Cost {
  jobsPerSecond: number;
  workerCpuUsPerJob: number;
  redisCpuUsPerJob: number;
  workerRssMb: number;
}

const CHUNK = 1000;

/** Fills a paused queue with `jobs` `add` jobs of one side, through that side's own client. */
export async function fill(side: Side, servers: Servers, queueName: string, jobs: number, bytes: number): Promise<() => Promise<void>> {
  if (side === 'bullmq') {
    const connection = rawClient(servers.broker);
    const queue = new Queue(queueName, { connection, prefix: PREFIX });
    return async () => {
      for (let i = 0; i < jobs; i += CHUNK) {
        await queue.addBulk(Array.from({ length: Math.min(CHUNK, jobs - i) }, (_, k) => ({ name: 'add', data: payload(i + k, bytes), opts: { removeOnComplete: true } })));
      }
      await queue.close();
      connection.disconnect();
    };
  }
  const producer = createProducer({ env: servers.env, prefix: PREFIX, logger: quiet, connection: { healthCheckIntervalMs: 0 } });
  return async () => {
    for (let i = 0; i < jobs; i += CHUNK) {
      await producer.enqueueBulk(Array.from({ length: Math.min(CHUNK, jobs - i) }, (_, k) => ({ task: 'add', data: payload(i + k, bytes), options: { queue: queueName } })));
    }
    await producer.close();
  };
}

/** One side, worker in its own process: pause, fill, start the worker, time resume → drained. */
export async function processRun(side: Side, servers: Servers, opts: { jobs: number; concurrency: number; bytes?: number; tag: string; isolation?: 'none' | 'process' | 'thread' }): Promise<Cost> {
  const queueName = `${opts.tag}-${side}`;
  const connection = rawClient(servers.broker);
  const queue = new Queue(queueName, { connection, prefix: PREFIX });
  try {
    const filler = await fill(side, servers, queueName, opts.jobs, opts.bytes ?? 100);
    return await timedDrain(side, servers, queue, opts.jobs, filler, {
      queue: queueName,
      concurrency: opts.concurrency,
      ...(opts.isolation ? { isolation: opts.isolation } : {}),
    });
  } finally {
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    connection.disconnect();
  }
}

/** Both sides, alternating which goes first each round. */
export async function sideBySide(servers: Servers, rounds: number, run: (side: Side, r: number) => Promise<Cost>): Promise<Record<Side, Cost[]>> {
  const out: Record<Side, Cost[]> = { bullmq: [], taskline: [] };
  for (let r = 0; r < rounds; r++) {
    const order: Side[] = r % 2 === 0 ? ['bullmq', 'taskline'] : ['taskline', 'bullmq'];
    for (const side of order) out[side].push(await run(side, r));
  }
  return out;
}

export function summary(costs: Record<Side, Cost[]>): Record<string, unknown> {
  const m = (side: Side, key: keyof Cost) => median(costs[side].map(c => c[key]));
  return {
    bullmq_jobs_per_s: Math.round(m('bullmq', 'jobsPerSecond')),
    taskline_jobs_per_s: Math.round(m('taskline', 'jobsPerSecond')),
    throughput_ratio_vs_bullmq: round(m('taskline', 'jobsPerSecond') / m('bullmq', 'jobsPerSecond'), 3),
    bullmq_rounds: costs.bullmq.map(c => Math.round(c.jobsPerSecond)),
    taskline_rounds: costs.taskline.map(c => Math.round(c.jobsPerSecond)),
    // CPU per job is steadier than wall-clock rate on a shared machine.
    bullmq_worker_cpu_us_per_job: m('bullmq', 'workerCpuUsPerJob'),
    taskline_worker_cpu_us_per_job: m('taskline', 'workerCpuUsPerJob'),
    bullmq_redis_cpu_us_per_job: m('bullmq', 'redisCpuUsPerJob'),
    taskline_redis_cpu_us_per_job: m('taskline', 'redisCpuUsPerJob'),
  };
}

/** Both sides in one process (the older figure, kept for comparison). */
export async function inProcessRun(side: Side, servers: Servers, jobs: number, concurrency: number, tag: string): Promise<Cost> {
  const queueName = `${tag}-${side}`;
  const connection = rawClient(servers.broker);
  const queue = new Queue(queueName, { connection, prefix: PREFIX });
  await queue.pause();
  await (await fill(side, servers, queueName, jobs, 100))();
  const cpu0 = process.cpuUsage();
  let stop: () => Promise<unknown>;
  if (side === 'bullmq') {
    const worker = new Worker(queueName, async job => (job.data as { a: number; b: number }).a + (job.data as { a: number; b: number }).b, {
      connection: rawClient(servers.broker),
      prefix: PREFIX,
      concurrency,
      removeOnComplete: { count: 0 },
    });
    await worker.waitUntilReady();
    stop = () => worker.close();
  } else {
    const tasks = defineTasks({ add: { run: (data: { a: number; b: number }) => data.a + data.b } });
    const worker = createWorker({ tasks, queues: [queueName], concurrency, env: servers.env, prefix: PREFIX, logger: quiet, connection: { healthCheckIntervalMs: 0 } });
    await worker.start();
    stop = () => worker.close();
  }
  const started = performance.now();
  await queue.resume();
  await drained(queue, 10);
  const elapsed = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await stop();
  await queue.obliterate({ force: true });
  await queue.close();
  connection.disconnect();
  return { jobsPerSecond: jobs / elapsed, workerCpuUsPerJob: Math.round((cpu.user + cpu.system) / jobs), redisCpuUsPerJob: NaN, workerRssMb: NaN };
}
