// Redis memory per waiting job (broker and result backend), and per finished job's record.
import { Queue } from 'bullmq';
import { createProducer } from '@taskline/producer';
import { PREFIX, payload, quiet, rawClient, round, usedMemory, type Servers } from '../lib.js';

const CHUNK = 2000;

export async function memory(servers: Servers, jobs: number): Promise<Record<string, unknown>> {
  const settle = () => new Promise(r => setTimeout(r, 300));
  // raw BullMQ
  const connection = rawClient(servers.broker);
  const rawQueue = new Queue('bench-mem-raw', { connection, prefix: PREFIX });
  await rawQueue.pause();
  await settle();
  const raw0 = await usedMemory(servers.broker);
  for (let i = 0; i < jobs; i += CHUNK) {
    await rawQueue.addBulk(Array.from({ length: Math.min(CHUNK, jobs - i) }, (_, k) => ({ name: 'add', data: payload(i + k, 100), opts: { removeOnComplete: true } })));
  }
  await settle();
  const rawBytes = ((await usedMemory(servers.broker)) - raw0) / jobs;
  await rawQueue.obliterate({ force: true });
  // taskline
  const tlQueue = new Queue('bench-mem-tl', { connection, prefix: PREFIX });
  await tlQueue.pause();
  const producer = createProducer({ env: servers.env, prefix: PREFIX, logger: quiet, connection: { healthCheckIntervalMs: 0 } });
  await producer.connect();
  await settle();
  const broker0 = await usedMemory(servers.broker);
  const backend0 = await usedMemory(servers.backend);
  for (let i = 0; i < jobs; i += CHUNK) {
    await producer.enqueueBulk(Array.from({ length: Math.min(CHUNK, jobs - i) }, (_, k) => ({ task: 'add', data: payload(i + k, 100), options: { queue: 'bench-mem-tl' } })));
  }
  await settle();
  const brokerBytes = ((await usedMemory(servers.broker)) - broker0) / jobs;
  const backendBytes = ((await usedMemory(servers.backend)) - backend0) / jobs;
  await tlQueue.obliterate({ force: true });
  await producer.close();
  await rawQueue.close();
  await tlQueue.close();
  connection.disconnect();
  const total = brokerBytes + backendBytes;
  return {
    bench: 'memory_per_waiting_job',
    jobs_waiting: jobs,
    payload_bytes: 100,
    bullmq_broker_bytes_per_job: Math.round(rawBytes),
    taskline_broker_bytes_per_job: Math.round(brokerBytes),
    taskline_backend_bytes_per_job: Math.round(backendBytes),
    taskline_total_vs_bullmq: round(total / rawBytes, 3),
    target_ratio: 1.3,
  };
}

/** Memory of finished jobs' records in the result backend (raw BullMQ keeps nothing with removeOnComplete). */
export async function recordMemory(servers: Servers, before: number, records: number): Promise<Record<string, unknown>> {
  const after = await usedMemory(servers.backend);
  return { bench: 'memory_per_finished_job', records, backend_bytes_per_record: Math.round((after - before) / records), kept_for_seconds: 86_400 };
}
