/**
 * `pnpm bench` — taskline against raw BullMQ, side by side in one run, both over TLS 1.3 against
 * the same two throwaway redis-servers (taskline's results go to the second). Prints JSON lines;
 * not a test: the figures vary with the machine, targets are printed beside them.
 *
 *  throughput         worker in its own process (taskline-worker start vs a BullMQ Worker), 10,000
 *                     and 50,000 jobs enqueued in bulk, concurrency 50: `throughput_ratio_vs_bullmq`
 *  throughput_inproc  the same with both workers inside this process
 *  latency            enqueue→start p50/p99 at 1,000 and 3,000 jobs/s
 *  scaling            jobs/s and CPU per job at concurrency 1/10/50/200 and payloads 100 B/10 KB/100 KB
 *  memory             Redis bytes per waiting job (100,000 jobs) and per finished job's record; worker RSS
 *  isolation          the cost per job of isolated handlers (process, thread) against in-process
 *  e2e                10,000 jobs through taskline-producer serve (HTTP bulk) and a worker process
 *  connections        Redis connections during 10,000 concurrent enqueues
 * BENCH_PART=throughput,latency,... runs some parts; BENCH_ROUNDS (3), BENCH_JOBS (10000).
 */
import { startRedis } from '../harness/index.js';
import { print, round, usedMemory, median, type Servers } from './lib.js';
import { connectionsUnderLoad } from './parts/connections.js';
import { e2eCli } from './parts/e2e-cli.js';
import { latency } from './parts/latency.js';
import { memory, recordMemory } from './parts/memory.js';
import { inProcessRun, processRun, sideBySide, summary } from './parts/throughput.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const JOBS = Number(process.env['BENCH_JOBS'] ?? 10_000);
const CONCURRENCY = 50;
const parts = new Set((process.env['BENCH_PART'] ?? 'throughput,throughput_inproc,latency,scaling,memory,isolation,e2e,connections').split(','));

const broker = await startRedis({ tls: true });
const backend = await startRedis({ tls: true, certs: broker.certs! });
const servers: Servers = {
  broker,
  backend,
  env: {
    ...broker.env('REDIS_'),
    ...backend.env('RESULT_REDIS_'),
    REDIS_TLS_SERVERNAME: 'localhost',
    RESULT_REDIS_TLS_SERVERNAME: 'localhost',
    REDIS_HEALTH_CHECK_INTERVAL: '0',
  },
};
const os = await import('node:os');
print({ bench: 'machine', cpus: os.availableParallelism(), load_average_1m: round(os.loadavg()[0] ?? 0, 2), node: process.version, redis: (await broker.cli('INFO', 'server')).match(/redis_version:(\S+)/)?.[1], tls: 'TLSv1.3' });

try {
  if (parts.has('throughput')) {
    for (const [jobs, rounds] of [[JOBS, ROUNDS], [JOBS * 5, Math.max(1, ROUNDS - 1)]] as const) {
      const backend0 = await usedMemory(backend);
      const costs = await sideBySide(servers, rounds, (side, r) => processRun(side, servers, { jobs, concurrency: CONCURRENCY, tag: `tp${jobs}-${r}` }));
      print({ bench: 'throughput', worker: 'own process', jobs_per_round: jobs, rounds, concurrency: CONCURRENCY, target_ratio: 0.85, ...summary(costs),
        bullmq_worker_rss_mb: median(costs.bullmq.map(c => c.workerRssMb)), taskline_worker_rss_mb: median(costs.taskline.map(c => c.workerRssMb)), target_rss_ratio: 1.2 });
      if (jobs === JOBS) print(await recordMemory(servers, backend0, jobs * rounds));
    }
  }
  if (parts.has('throughput_inproc')) {
    const costs = await sideBySide(servers, ROUNDS, (side, r) => inProcessRun(side, servers, JOBS, CONCURRENCY, `ip-${r}`));
    print({ bench: 'throughput', worker: 'in this process', jobs_per_round: JOBS, rounds: ROUNDS, concurrency: CONCURRENCY, ...summary(costs) });
  }
  if (parts.has('latency')) {
    for (const rate of [1000, 3000]) print(await latency(servers, rate, 5, CONCURRENCY));
  }
  if (parts.has('scaling')) {
    const runs: Array<{ concurrency: number; bytes: number; jobs: number }> = [
      ...[1, 10, 50, 200].map(concurrency => ({ concurrency, bytes: 100, jobs: concurrency === 1 ? 2000 : 5000 })),
      { concurrency: 50, bytes: 10_000, jobs: 5000 },
      { concurrency: 50, bytes: 100_000, jobs: 1000 },
    ];
    for (const run of runs) {
      const costs = await sideBySide(servers, 1, (side, r) => processRun(side, servers, { ...run, tag: `sc${run.concurrency}-${run.bytes}-${r}` }));
      print({ bench: 'scaling', concurrency: run.concurrency, payload_bytes: run.bytes, jobs: run.jobs, ...summary(costs) });
    }
  }
  if (parts.has('memory')) print(await memory(servers, 100_000));
  if (parts.has('isolation')) {
    const out: Record<string, unknown> = { bench: 'isolation_cost', jobs: 5000, concurrency: CONCURRENCY, handler: 'a + b' };
    for (const isolation of ['none', 'thread', 'process'] as const) {
      const c = await processRun('taskline', servers, { jobs: 5000, concurrency: CONCURRENCY, tag: `iso-${isolation}`, isolation });
      out[`${isolation}_jobs_per_s`] = Math.round(c.jobsPerSecond);
      out[`${isolation}_cpu_us_per_job`] = c.workerCpuUsPerJob;
      out[`${isolation}_worker_rss_mb`] = c.workerRssMb;
    }
    out['thread_cost_us_per_job'] = round((out['thread_cpu_us_per_job'] as number) - (out['none_cpu_us_per_job'] as number), 0);
    out['process_cost_us_per_job'] = round((out['process_cpu_us_per_job'] as number) - (out['none_cpu_us_per_job'] as number), 0);
    print(out);
  }
  if (parts.has('e2e')) print(await e2eCli(servers, 10_000, CONCURRENCY));
  if (parts.has('connections')) print(await connectionsUnderLoad(servers, 10_000));
} finally {
  await broker.stop();
  await backend.stop();
}
