// The bounded load case: jobs from the HTTP API and the library through N worker processes over
// TLS, with connections per process and worker RSS sampled throughout.
import { expect } from 'chai';
import { watch, type Summary } from './cases.js';
import {
  account,
  clientsByName,
  connectionsTo,
  executions,
  producerFor,
  spawnApi,
  spawnWorker,
  startCluster,
  until,
  type WorkerProcess,
} from './support.js';

async function stopWorkers(workers: WorkerProcess[]): Promise<Array<number | null>> {
  for (const w of workers) w.child.kill('SIGTERM');
  return Promise.all(workers.map(w => w.exited));
}

export interface LoadSize {
  /** Jobs in all; half through the HTTP API, half through the library. */
  jobs: number;
  workers: number;
  concurrency: number;
  /** Jobs per bulk request / call. */
  bulk: number;
  /** Bulk requests in flight at once, per source. */
  inFlight: number;
  maxConnections: number;
  settleMs: number;
}

/** Bulk load from the HTTP API and the library through N worker processes over TLS. */
export async function load(size: LoadSize): Promise<Summary> {
  const cluster = await startCluster();
  const poolEnv = { REDIS_MAX_CONNECTIONS: String(size.maxConnections) };
  const workers = Array.from({ length: size.workers }, () => spawnWorker(cluster, { TASKLINE_CONCURRENCY: String(size.concurrency), ...poolEnv }));
  await Promise.all(workers.map(w => w.ready()));
  const api = await spawnApi(cluster, poolEnv);
  // A 500-job bulk on a broker the 4 workers keep busy can take longer than the default 10 s; what
  // this case checks is that nothing is lost, not the enqueue's latency (pnpm bench measures that).
  const producer = producerFor(cluster, { connection: { maxConnections: size.maxConnections }, enqueueTimeoutMs: 120_000 });
  // Waiters for 50,000 jobs at once would make this process (the clients) the bottleneck.
  const history = watch(cluster, producer, size, { maxPendingWaiters: 1000 });
  const rssStartKb = workers.map(w => w.rssKb());

  const processes = [...workers.map((w, i) => ({ name: `worker${i + 1}`, pid: w.pid })), { name: 'api', pid: api.pid }, { name: 'library', pid: process.pid }];
  const peak: Record<string, { broker: number; backend: number }> = {};
  let peakByName: Record<string, number> = {};
  let peakTotal = 0;
  const sample = async (): Promise<void> => {
    for (const p of processes) {
      const now = { broker: connectionsTo(p.pid, cluster.broker.port), backend: connectionsTo(p.pid, cluster.backend.port) };
      const was = peak[p.name] ?? { broker: 0, backend: 0 };
      peak[p.name] = { broker: Math.max(was.broker, now.broker), backend: Math.max(was.backend, now.backend) };
    }
    const byName = await clientsByName(cluster.broker);
    const total = Object.values(byName).reduce((a, b) => a + b, 0);
    if (total > peakTotal) {
      peakTotal = total;
      peakByName = byName;
    }
  };
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      await sample().catch(() => undefined);
      await new Promise(resolve => setTimeout(resolve, 500));
    }
  })();

  const half = Math.floor(size.jobs / 2);
  const started = Date.now();
  const viaHttp = async (): Promise<string[]> => {
    const ids: string[] = [];
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < half) {
        const n = Math.min(size.bulk, half - next);
        next += n;
        const res = await history.httpBulk(api.url, Array.from({ length: n }, () => ({ task: 'work', data: {} })));
        const jobs = res.body['jobs'] as Array<{ id: string }> | undefined;
        if (res.status !== 202 || !jobs) throw new Error(`bulk POST answered ${res.status}: ${JSON.stringify(res.body)}`);
        ids.push(...jobs.map(j => j.id));
      }
    };
    await Promise.all(Array.from({ length: size.inFlight }, lane));
    return ids;
  };
  const viaLibrary = async (): Promise<string[]> => {
    const ids: string[] = [];
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < size.jobs - half) {
        const n = Math.min(size.bulk, size.jobs - half - next);
        next += n;
        const res = await history.enqueueBulk(Array.from({ length: n }, () => ({ task: 'work', data: {} })));
        ids.push(...res.map(r => r.id));
      }
    };
    await Promise.all(Array.from({ length: size.inFlight }, lane));
    return ids;
  };
  const [httpIds, libIds] = await Promise.all([viaHttp(), viaLibrary()]);
  const enqueuedMs = Date.now() - started;
  const ids = [...httpIds, ...libIds];
  await until(() => executions(cluster).size >= ids.length, size.settleMs, `all ${ids.length} jobs executed`, 500).catch(() => undefined);
  const doneMs = Date.now() - started;
  await sample().catch(() => undefined);
  sampling = false;
  await sampler;
  const rssEndKb = workers.map(w => w.rssKb());
  const result = await account(cluster, producer, ids, size.settleMs);
  const checked = await history.check({ settleMs: size.settleMs });
  api.child.kill('SIGTERM');
  const codes = await stopWorkers(workers);
  await api.exited;
  expect(codes.every(c => c === 0), `exit codes ${JSON.stringify(codes)}`).to.equal(true);
  return {
    case: `load ${size.jobs} jobs, ${size.workers} workers`,
    ...result,
    history: checked,
    viaHttp: httpIds.length,
    viaLibrary: libIds.length,
    enqueueSeconds: enqueuedMs / 1000,
    totalSeconds: doneMs / 1000,
    throughputJobsPerSec: Math.round((ids.length / doneMs) * 1000),
    maxConnections: size.maxConnections,
    peakConnectionsPerProcess: peak,
    peakBrokerClientsByName: peakByName,
    rssStartMb: rssStartKb.map(kb => Math.round(kb / 1024)),
    rssEndMb: rssEndKb.map(kb => Math.round(kb / 1024)),
  };
}
