// Enqueue→start latency at a steady rate, worker in its own process, both sides.
import { Queue } from 'bullmq';
import { createProducer } from '@taskline/producer';
import { PREFIX, now, percentile, quiet, rawClient, round, spawnWorker, stopWorker, drained, type Servers } from '../lib.js';

/** Paces `total` calls of `send` at `rate` per second; returns the rate achieved and CPU per call. */
async function paced(total: number, rate: number, send: () => Promise<unknown>): Promise<{ rate: number; results: unknown[]; cpuUsPerCall: number }> {
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  const pending: Array<Promise<unknown>> = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 1) await new Promise(r => setTimeout(r, wait));
    pending.push(send());
  }
  const results = await Promise.all(pending);
  const cpu = process.cpuUsage(cpu0);
  return { rate: total / ((performance.now() - started) / 1000), results, cpuUsPerCall: Math.round((cpu.user + cpu.system) / total) };
}

export async function latency(servers: Servers, rate: number, seconds: number, concurrency: number): Promise<Record<string, unknown>> {
  const total = rate * seconds;
  // raw BullMQ
  const rawQueueName = `bench-latency-raw-${rate}`;
  const rawWorker = await spawnWorker('bullmq', servers, { queue: rawQueueName, concurrency });
  const connection = rawClient(servers.broker);
  const rawQueue = new Queue(rawQueueName, { connection, prefix: PREFIX });
  let out = '';
  rawWorker.stdout?.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await rawQueue.add('stamp', { sentAt: now() }, { removeOnComplete: true }); // warm-up
  const raw = await paced(total, rate, () => rawQueue.add('stamp', { sentAt: now() }, { removeOnComplete: true }));
  await drained(rawQueue);
  await stopWorker(rawWorker);
  const rawLatencies = (JSON.parse(out.trim() || '[]') as number[]).slice(1);
  await rawQueue.obliterate({ force: true });
  await rawQueue.close();
  connection.disconnect();
  // taskline
  const queueName = `bench-latency-${rate}`;
  const worker = await spawnWorker('taskline', servers, { queue: queueName, concurrency });
  const producer = createProducer({ env: servers.env, prefix: PREFIX, defaultQueue: queueName, logger: quiet, connection: { healthCheckIntervalMs: 0 } });
  try {
    await producer.enqueue('stamp', { sentAt: now() }); // warm-up
    const ours = await paced(total, rate, () => producer.enqueue('stamp', { sentAt: now() }));
    const ids = (ours.results as Array<{ id: string }>).map(r => r.id);
    const records = await Promise.all(ids.map(id => producer.waitForResult(id, { timeoutMs: 60_000 })));
    const latencies = records.map(r => Number(r.result));
    return {
      bench: 'latency',
      rate_per_s: rate,
      jobs: total,
      concurrency,
      worker: 'separate process (taskline-worker start / a BullMQ Worker)',
      achieved_rate_per_s: Math.round(ours.rate),
      p50_ms: round(percentile(latencies, 50)),
      p99_ms: round(percentile(latencies, 99)),
      max_ms: round(Math.max(...latencies)),
      targets: { p50_ms: 2, p99_ms: 10 },
      bullmq_achieved_rate_per_s: Math.round(raw.rate),
      bullmq_p50_ms: round(percentile(rawLatencies, 50)),
      bullmq_p99_ms: round(percentile(rawLatencies, 99)),
      producer_cpu_us_per_enqueue: ours.cpuUsPerCall,
      bullmq_cpu_us_per_add: raw.cpuUsPerCall,
    };
  } finally {
    await stopWorker(worker);
    await producer.close();
  }
}
