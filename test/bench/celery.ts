/**
 * `pnpm bench:celery` — Celery messages/s through the taskline bridge against a Celery worker, on
 * the same TLS broker and result backend, the same task (`tasks.add`), the same messages (sent by
 * Python Celery beforehand, results kept). Each consumer starts on a full queue; the rate is taken
 * between the first and the last result's `date_done`, so start-up does not count. Prints JSON
 * lines; not a test. BENCH_CELERY_JOBS (2000), BENCH_CELERY_CONCURRENCY (Celery prefork processes, 2).
 */
import { spawn } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import path from 'node:path';
import { ROOT, celeryMissing, celeryVersion, python, startCeleryServers, startCeleryWorker, type CeleryServers } from '../celery/celery-helpers.js';
import { print, round } from './lib.js';

const JOBS = Number(process.env['BENCH_CELERY_JOBS'] ?? 2000);
const CELERY_CONCURRENCY = Number(process.env['BENCH_CELERY_CONCURRENCY'] ?? 2);

async function finished(servers: CeleryServers, prefix: string): Promise<number[]> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    const keys = Array.from({ length: JOBS }, (_, n) => `celery-task-meta-${prefix}-${n}`);
    const done: number[] = [];
    for (let i = 0; i < keys.length; i += 500) {
      const values = (await servers.pair.backend.cli('MGET', ...keys.slice(i, i + 500))).split('\n');
      for (const v of values) {
        if (!v) continue;
        const meta = JSON.parse(v) as { status: string; date_done: string | null };
        if (meta.status === 'SUCCESS' && meta.date_done) done.push(Date.parse(`${meta.date_done.slice(0, 23)}Z`));
      }
    }
    if (done.length === JOBS) return done.sort((a, b) => a - b);
    if (Date.now() > deadline) throw new Error(`only ${done.length} of ${JOBS} results after 300 s`);
    await new Promise(resolve => setTimeout(resolve, 250));
  }
}

function rate(done: number[]): { jobs_per_s: number; seconds: number } {
  const seconds = ((done[done.length - 1] ?? 0) - (done[0] ?? 0)) / 1000;
  return { jobs_per_s: round((done.length - 1) / seconds, 0), seconds: round(seconds, 2) };
}

const missing = celeryMissing();
if (missing) {
  print({ bench: 'celery', skipped: missing });
  process.exit(0);
}
const servers = await startCeleryServers();
try {
  // taskline: a worker process on a full Celery queue.
  await python(servers, ['send-add', String(JOBS), 'bench', 'bt'], 300_000);
  const worker = spawn(process.execPath, [path.join(ROOT, 'worker/bin/taskline-worker.js'), 'start', '--tasks', path.join(ROOT, 'test/celery/fixtures/celery-tasks.ts'), '--queues', 'default', '--celery-queues', 'bench', '--metrics-port', '0'], {
    env: { PATH: process.env['PATH'] ?? '', LOG_LEVEL: 'error', TASKLINE_PREFIX: servers.prefix, ...servers.pair.env },
    stdio: 'ignore',
  });
  const taskline = rate(await finished(servers, 'bt'));
  worker.kill('SIGTERM');
  await new Promise(resolve => worker.once('exit', resolve));

  // Celery: a prefork worker on the same kind of full queue.
  await python(servers, ['send-add', String(JOBS), 'bench-celery', 'bc'], 300_000);
  const celery = startCeleryWorker(servers, ['bench-celery'], {}, ['--pool', 'prefork', '-c', String(CELERY_CONCURRENCY)]);
  const celeryRate = rate(await finished(servers, 'bc'));
  await celery.stop();

  print({ bench: 'celery', jobs: JOBS, celery_version: celeryVersion, tls: true, cpus: availableParallelism(), load_average_1m: round(loadavg()[0] ?? 0, 2),
    taskline: { ...taskline, concurrency: 10, note: 'taskline-worker process, --celery-queues' },
    celery: { ...celeryRate, concurrency: CELERY_CONCURRENCY, note: 'celery worker --pool prefork' },
    ratio: round(taskline.jobs_per_s / celeryRate.jobs_per_s, 2) });
} finally {
  await servers.stop();
}
