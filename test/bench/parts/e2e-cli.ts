// A new user's path: jobs through `taskline-producer serve` (the HTTP API, bulk) and a separate
// `taskline-worker start`, against raw BullMQ (addBulk + a BullMQ Worker process), same run.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Queue } from 'bullmq';
import { PREFIX, ROOT, drained, payload, rawClient, round, spawnWorker, stopWorker, type Servers } from '../lib.js';

async function serve(servers: Servers, token: string, queue: string): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['producer/bin/taskline-producer.js', 'serve', '--host', '127.0.0.1', '--port', '0'], {
    cwd: ROOT,
    env: { ...process.env, ...servers.env, TASKLINE_PREFIX: PREFIX, PRODUCER_API_TOKEN: token, TASKLINE_QUEUES: queue, LOG_FORMAT: 'json', LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const url = await new Promise<string>((resolve, reject) => {
    let log = '';
    const onData = (chunk: Buffer): void => {
      log += chunk.toString();
      const line = log.split('\n').find(l => l.includes('Producer API listening'));
      if (line) {
        child.stderr?.off('data', onData);
        child.stderr?.resume();
        resolve(`http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}`);
      }
    };
    // Logs go to stderr.
    child.stderr?.on('data', onData);
    child.stdout?.resume();
    child.once('exit', code => reject(new Error(`taskline-producer serve exited (${code}): ${log.slice(-1000)}`)));
  });
  return { child, url };
}

export async function e2eCli(servers: Servers, jobs: number, concurrency: number): Promise<Record<string, unknown>> {
  const batch = 1000;
  // raw BullMQ: addBulk from here, a BullMQ Worker process
  const rawName = 'bench-e2e-raw';
  const rawWorker = await spawnWorker('bullmq', servers, { queue: rawName, concurrency });
  const connection = rawClient(servers.broker);
  const rawQueue = new Queue(rawName, { connection, prefix: PREFIX });
  let started = performance.now();
  for (let i = 0; i < jobs; i += batch) {
    await rawQueue.addBulk(Array.from({ length: Math.min(batch, jobs - i) }, (_, k) => ({ name: 'add', data: payload(i + k), opts: { removeOnComplete: true } })));
  }
  await drained(rawQueue, 10);
  const rawRate = jobs / ((performance.now() - started) / 1000);
  await stopWorker(rawWorker);
  await rawQueue.obliterate({ force: true });
  await rawQueue.close();
  // taskline: the HTTP API process, a worker process
  const name = 'bench-e2e';
  const token = randomBytes(32).toString('hex');
  const api = await serve(servers, token, name);
  const worker = await spawnWorker('taskline', servers, { queue: name, concurrency });
  const queue = new Queue(name, { connection, prefix: PREFIX });
  try {
    started = performance.now();
    for (let i = 0; i < jobs; i += batch) {
      const body = JSON.stringify({ jobs: Array.from({ length: Math.min(batch, jobs - i) }, (_, k) => ({ task: 'add', data: payload(i + k), options: { queue: name } })) });
      const res = await fetch(`${api.url}/api/v1/jobs/bulk`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body });
      if (res.status !== 202) throw new Error(`bulk enqueue answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
    }
    await drained(queue, 10);
    const rate = jobs / ((performance.now() - started) / 1000);
    return {
      bench: 'e2e_http_api_and_worker_process',
      jobs,
      concurrency,
      taskline_jobs_per_s: Math.round(rate),
      bullmq_jobs_per_s: Math.round(rawRate),
      ratio_vs_bullmq: round(rate / rawRate, 3),
      target_ratio: 0.85,
      note: 'taskline: POST /api/v1/jobs/bulk (1,000 per request) to taskline-producer serve, taskline-worker start; bullmq: Queue.addBulk (1,000 per call), a BullMQ Worker process',
    };
  } finally {
    await stopWorker(worker);
    await stopWorker(api.child);
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    connection.disconnect();
  }
}
