// The fault and race cases of issue 9 ("one truth per job"), each parameterised by size and each
// checked by the history checker: the short versions run in `pnpm test` (state.test.ts), the long
// ones in `pnpm test:faults` (test/faults/state.test.ts). Jobs are made the way users make them —
// the producer library, the HTTP API, the producer and scheduler bins — and run by worker
// processes started from their bin; a read-only BullMQ view only reads broker state.
import { randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { JobResultRecord } from '@taskline/shared';
import { BeatProcess } from '../scheduler/beat-process.js';
import { watch } from './cases.js';
import { readRuns, type HandlerRun } from './exec-log.js';
import { expectHistoryClean, historyFigures, type History, type HistoryReport } from './history.js';
import {
  allOutput,
  executions,
  clientsByName,
  producerFor,
  report,
  spawnApi,
  spawnProducerCli,
  spawnWorker,
  startCluster,
  until,
  type CliProcess,
  type Cluster,
  type WorkerProcess,
} from './support.js';

/** What every case returns: its name, the history checker's report, and what it measured. */
export type StateSummary = { case: string; history: HistoryReport } & Record<string, unknown>;

/** Prints the case's figures (a RELIABILITY line) and asserts every history invariant held. */
export function checkState(summary: StateSummary): void {
  report({ ...summary, history: historyFigures(summary.history) });
  expectHistoryClean(summary.history);
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));

async function startWorkers(cluster: Cluster, n: number, env: Record<string, string> = {}): Promise<WorkerProcess[]> {
  const workers = Array.from({ length: n }, () => spawnWorker(cluster, env));
  await Promise.all(workers.map(w => w.ready()));
  return workers;
}

/** SIGCONT + SIGTERM to every worker still running; their exit codes. */
async function stopWorkers(workers: WorkerProcess[]): Promise<Array<number | null>> {
  for (const w of workers) {
    if (w.child.exitCode !== null || w.child.signalCode !== null) continue;
    w.child.kill('SIGCONT');
    w.child.kill('SIGTERM');
  }
  return Promise.all(workers.map(w => w.exited));
}

function runsOf(cluster: Cluster, id: string): HandlerRun[] {
  return readRuns(cluster.execLog).get(id) ?? [];
}

async function used(cluster: Cluster, server: 'broker' | 'backend'): Promise<number> {
  const info = await cluster[server].cli('INFO', 'memory');
  return Number(/^used_memory:(\d+)/m.exec(info)?.[1] ?? 0);
}

/** `CONFIG SET maxmemory` on a server: 1 byte refuses every write, 0 lifts the limit. */
async function maxmemory(cluster: Cluster, server: 'broker' | 'backend', bytes: number): Promise<void> {
  await cluster[server].cli('CONFIG', 'SET', 'maxmemory', String(bytes));
}

function errorCode(reason: unknown): string {
  const e = reason as { code?: string; name?: string };
  return e?.code ?? e?.name ?? 'unknown';
}

function countBy<T>(items: T[], key: (item: T) => string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of items) out[key(item)] = (out[key(item)] ?? 0) + 1;
  return out;
}

/** Final records of the history's acknowledged jobs. */
function finals(history: History): JobResultRecord[] {
  return history.acknowledged.map(id => history.job(id)?.finalRecord).filter((r): r is JobResultRecord => !!r);
}

// ---------------------------------------------------------------------------------------------
// 0. The checker itself, end to end

/**
 * Three jobs end SUCCESS; then, behind the system's back, one record is rewritten to STARTED and
 * another deleted (raw redis-cli on the result backend): the history must report both.
 */
export async function tamperedRecords(): Promise<StateSummary> {
  const cluster = await startCluster();
  const workers = await startWorkers(cluster, 1);
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, { settleMs: 10_000 });
  const ids = (await history.enqueueBulk([0, 1, 2].map(n => ({ task: 'work', data: { n } })))).map(r => r.id);
  await until(async () => (await Promise.all(ids.map(id => producer.getResult(id)))).every(r => r?.state === 'SUCCESS'), 10_000, 'three jobs done');
  await sleep(600); // the sampler sees them final
  const [reopened = '', deleted = ''] = ids;
  await cluster.backend.cli('HSET', `${cluster.prefix}:result:{${reopened}}`, 'state', 'STARTED');
  await cluster.backend.cli('DEL', `${cluster.prefix}:result:{${deleted}}`);
  const checked = await history.check({ settleMs: 1500 });
  await stopWorkers(workers);
  return { case: 'checker self-test: a final record reopened, another deleted', history: checked, reopened, deleted };
}

// ---------------------------------------------------------------------------------------------
// 1. Idempotency keys

/**
 * The broker at maxmemory: `parallel` enqueues with one key all fail (none may answer
 * "deduplicated" without a job); after memory is freed, `parallel` more with the same key make
 * exactly one job, which finishes; a keyed enqueue after it finished still names it.
 */
export async function idempotencyUnderOom(size: { parallel: number; settleMs: number }): Promise<StateSummary> {
  const cluster = await startCluster();
  const workers = await startWorkers(cluster, 1);
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, size);
  await history.enqueue('work', { n: -1 }); // a running producer: its queue is known and registered
  const key = `order-${randomUUID()}`;
  const data = { ms: 50, n: 1 };
  const keyed = (): Promise<{ id: string; deduplicated: boolean }> => history.enqueue('work', data, { idempotencyKey: key });

  await maxmemory(cluster, 'broker', 1);
  const during = await Promise.allSettled(Array.from({ length: size.parallel }, keyed));
  await maxmemory(cluster, 'broker', 0);
  const after = await Promise.allSettled(Array.from({ length: size.parallel }, keyed));
  const answered = after.flatMap(r => (r.status === 'fulfilled' ? [r.value] : []));
  const id = answered.find(a => !a.deduplicated)?.id ?? answered[0]?.id ?? '';
  await until(async () => (await producer.getResult(id))?.state === 'SUCCESS', size.settleMs, `keyed job ${id} done`).catch(() => undefined);
  const later = await keyed().catch((err: unknown) => ({ id: `error ${errorCode(err)}`, deduplicated: false }));
  const checked = await history.check({ settleMs: size.settleMs });
  await stopWorkers(workers);
  return {
    case: `idempotency key, broker at maxmemory, ${size.parallel} parallel enqueues`,
    history: checked,
    duringOom: {
      resolved: during.filter(r => r.status === 'fulfilled').length,
      deduplicated: during.filter(r => r.status === 'fulfilled' && r.value.deduplicated).length,
      rejectedByCode: countBy(during.filter((r): r is PromiseRejectedResult => r.status === 'rejected'), r => errorCode(r.reason)),
    },
    afterFreed: {
      rejected: after.filter(r => r.status === 'rejected').length,
      added: answered.filter(a => !a.deduplicated).length,
      deduplicated: answered.filter(a => a.deduplicated).length,
      distinctIds: new Set(answered.map(a => a.id)).size,
    },
    afterFinished: { sameId: later.id === id, deduplicated: later.deduplicated },
    keyedJobState: history.job(id)?.finalRecord?.state ?? null,
  };
}

/**
 * A keyed enqueue from a producer process that dies, then the same key retried from the bin, the
 * library and the bin with --wait: one job, it finishes, the waiting bin gets its result. Even
 * rounds: the broker SIGKILLed, the bin started and SIGKILLed `killAfterMs` later, the broker
 * restarted on its AOF. Odd rounds: the bin SIGKILLed 0–30 ms after its broker connection appears
 * (its add may or may not land), then the broker SIGKILLed and restarted on its AOF.
 */
export async function idempotencyProducerCrash(size: { rounds: number; killAfterMs: number; settleMs: number }): Promise<StateSummary> {
  const cluster = await startCluster({ appendonly: true });
  const workers = await startWorkers(cluster, 1);
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, size);
  await history.enqueue('work', { n: -1 });
  const producerConnections = async (): Promise<number> =>
    Object.entries(await clientsByName(cluster.broker)).reduce((n, [name, count]) => n + (name.startsWith('taskline:producer:broker') ? count : 0), 0);
  const rounds: Array<Record<string, unknown>> = [];
  for (let i = 0; i < size.rounds; i++) {
    const midAdd = i % 2 === 1;
    const key = `crash-${i}-${randomUUID()}`;
    const args = ['enqueue', 'work', '--data', JSON.stringify({ ms: 200, n: i }), '--idempotency-key', key];
    let first: CliProcess;
    if (midAdd) {
      const before = await producerConnections();
      first = spawnProducerCli(cluster, args);
      await until(async () => first.child.exitCode !== null || (await producerConnections()) > before, 30_000, 'the producer bin connected', 5);
      await sleep(Math.random() * 30);
      first.child.kill('SIGKILL');
      await first.exited;
      cluster.broker.kill('SIGKILL');
      await sleep(200);
      await cluster.broker.restart();
    } else {
      cluster.broker.kill('SIGKILL');
      await sleep(200);
      first = spawnProducerCli(cluster, args);
      await sleep(size.killAfterMs);
      first.child.kill('SIGKILL');
      await first.exited;
      await cluster.broker.restart();
    }
    const firstExit = first.child.exitCode;
    // It may have finished before the kill: then a client was told the job exists.
    const firstId = first.stdout.join('').trim();
    if (firstExit === 0 && firstId) history.adopt(firstId, 'producer bin');

    const started = Date.now();
    const retry = spawnProducerCli(cluster, args);
    const retryExit = await retry.exited;
    const id = retry.stdout.join('').trim();
    if (retryExit === 0 && id) history.adopt(id, 'producer bin');
    const library = await history.enqueue('work', { ms: 200, n: i }, { idempotencyKey: key }).catch((err: unknown) => ({ id: `error ${errorCode(err)}`, deduplicated: false }));
    const waited = spawnProducerCli(cluster, [...args, '--wait', '--timeout', String(Math.round(size.settleMs / 1000))]);
    const waitExit = await waited.exited;
    let waitedState: string | null = null;
    try {
      waitedState = (JSON.parse(waited.stdout.join('')) as JobResultRecord).state;
    } catch {
      waitedState = null;
    }
    rounds.push({
      variant: midAdd ? 'killed as it connected' : 'killed while the broker was down',
      firstExit,
      firstOutput: first.output.join('').trim().slice(0, 200) || null,
      retryExit,
      // The killed producer's add landed (the retry named its job) or not (the retry added it).
      retryDeduplicated: retry.output.join('').includes('deduplicated'),
      libraryDeduplicated: library.deduplicated,
      sameIdEverywhere: library.id === id && waited.output.join('').includes(id),
      waitExit,
      waitedState,
      resultAfterRetryMs: Date.now() - started,
    });
  }
  const checked = await history.check({ settleMs: size.settleMs });
  await stopWorkers(workers);
  return { case: `idempotency key retried after the producer bin was SIGKILLed (broker down, or mid-add) and the broker restarted, ${size.rounds} rounds`, history: checked, rounds };
}

// ---------------------------------------------------------------------------------------------
// 2. Jobs the broker fails on its own

/**
 * TASKLINE_MAX_STALLED_COUNT=1 and the worker running `jobs` long jobs SIGKILLed twice: the broker
 * fails them (stalled more than allowed), a worker's failed-job settler records FAILURE (WorkerLostError)
 * and every waiter gets it.
 */
export async function stallLimit(size: { jobs: number; settleMs: number }): Promise<StateSummary> {
  const cluster = await startCluster();
  const env = { TASKLINE_MAX_STALLED_COUNT: '1', TASKLINE_CONCURRENCY: String(size.jobs) };
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, size);
  const kill = async (): Promise<{ worker: WorkerProcess; ranAll: number }> => {
    const worker = spawnWorker(cluster, env);
    await worker.ready();
    if (history.acknowledged.length === 0) {
      await history.enqueueBulk(Array.from({ length: size.jobs }, (_, n) => ({ task: 'work', data: { ms: 600_000, n } })));
    }
    const ids = history.acknowledged;
    const ranHere = (): number => ids.filter(id => runsOf(cluster, id).some(r => r.pid === worker.pid)).length;
    await until(() => ranHere() === ids.length, size.settleMs, `all ${ids.length} jobs running on worker ${worker.pid}`, 200).catch(() => undefined);
    const ranAll = ranHere();
    worker.child.kill('SIGKILL');
    await worker.exited;
    return { worker, ranAll };
  };
  const first = await kill();
  const second = await kill();
  const killedAt = Date.now();
  const [survivor] = await startWorkers(cluster, 1, env);
  const checked = await history.check({ settleMs: size.settleMs });
  const settledMs = Date.now() - killedAt;
  await stopWorkers([survivor as WorkerProcess]);
  const records = finals(history);
  const secondRuns = history.acknowledged.flatMap(id => runsOf(cluster, id).filter(r => r.pid === second.worker.pid));
  return {
    case: `stall limit (TASKLINE_MAX_STALLED_COUNT=1), worker SIGKILLed twice mid-job, ${size.jobs} jobs`,
    history: checked,
    ranOnFirstWorker: first.ranAll,
    ranOnSecondWorker: second.ranAll,
    secondRunsRedelivered: secondRuns.filter(r => r.redelivered).length,
    finalErrorTypes: countBy(records, r => `${r.state} ${r.error?.type ?? ''}`.trim()),
    allSettledAfterSecondKillMs: settledMs,
  };
}

/**
 * The result backend at maxmemory for `faultMs` while `jobs` jobs run (half with attempts 1, so a
 * result that cannot be stored fails the job on the broker): every job reaches a final state and
 * record and broker agree; /readyz says 503 meanwhile.
 */
export async function backendOom(size: { jobs: number; workers: number; concurrency: number; jobMs: number; faultMs: number; writeDeadlineMs: number; settleMs: number }): Promise<StateSummary> {
  const cluster = await startCluster();
  const workers = await startWorkers(cluster, size.workers, { TASKLINE_CONCURRENCY: String(size.concurrency), RESULT_WRITE_DEADLINE_MS: String(size.writeDeadlineMs) });
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, size);
  const jobs = Array.from({ length: size.jobs }, (_, n) => ({ task: 'work', data: { ms: size.jobMs, n }, ...(n % 2 === 0 ? { options: { attempts: 1 } } : {}) }));
  for (let i = 0; i < jobs.length; i += 500) await history.enqueueBulk(jobs.slice(i, i + 500));
  await until(() => executions(cluster).size >= Math.ceil(size.jobs / 4), size.settleMs, 'a quarter of the jobs done');
  const doneBefore = executions(cluster).size;
  await maxmemory(cluster, 'backend', 1);
  const fullAt = Date.now();
  const readyz = await Promise.all(workers.map(w => w.readyz(10_000)));
  await sleep(Math.max(0, size.faultMs - (Date.now() - fullAt)));
  await maxmemory(cluster, 'backend', 0);
  const checked = await history.check({ settleMs: size.settleMs });
  await stopWorkers(workers);
  return {
    case: `result backend at maxmemory for ${size.faultMs / 1000} s under load, ${size.jobs} jobs`,
    history: checked,
    doneBeforeOom: doneBefore,
    readyzDuringOom: readyz,
    finalErrorTypes: countBy(finals(history), r => `${r.state} ${r.error?.type ?? ''}`.trim()),
    writeDeadlineMs: size.writeDeadlineMs,
  };
}

// ---------------------------------------------------------------------------------------------
// 3. A CPU-bound handler longer than the lock

/**
 * `jobs` handlers that busy-loop `loopMs` (the event loop, and so the lock renewal, stops) with
 * locks of `lockMs` on `workers` workers: each run loses its lock to another worker. The record's
 * final state never changes, record and broker agree, reruns have ctx.redelivered true.
 */
export async function cpuBound(size: { jobs: number; workers: number; loopMs: number; lockMs: number; maxStalledCount: number; settleMs: number }): Promise<StateSummary> {
  const cluster = await startCluster();
  // One job per worker at a time, and more workers than jobs: some worker is always free to take
  // a job whose lock lapsed (workers all blocked at once would steal nothing).
  const workers = await startWorkers(cluster, size.workers, {
    TASKLINE_CONCURRENCY: '1',
    TASKLINE_LOCK_DURATION_MS: String(size.lockMs),
    TASKLINE_STALLED_INTERVAL_MS: String(Math.max(100, Math.round(size.lockMs / 2))),
    TASKLINE_MAX_STALLED_COUNT: String(size.maxStalledCount),
  });
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, size);
  const started = Date.now();
  await history.enqueueBulk(Array.from({ length: size.jobs }, (_, n) => ({ task: 'spin', data: { ms: size.loopMs, n } })));
  const checked = await history.check({ settleMs: size.settleMs });
  const tookMs = Date.now() - started;
  await stopWorkers(workers);
  const runs = history.acknowledged.map(id => runsOf(cluster, id));
  return {
    case: `CPU-bound handler (${size.loopMs / 1000} s busy loop) past a ${size.lockMs / 1000} s lock, ${size.workers} workers, ${size.jobs} jobs`,
    history: checked,
    runsPerJob: runs.map(r => r.length),
    reruns: runs.reduce((n, r) => n + Math.max(0, r.length - 1), 0),
    rerunsRedelivered: runs.flatMap(r => r.slice(1)).filter(r => r.redelivered).length,
    maxCtxAttempt: Math.max(0, ...runs.flat().map(r => r.attempt)),
    finalErrorTypes: countBy(finals(history), r => `${r.state} ${r.error?.type ?? ''}`.trim()),
    allFinalAfterMs: tookMs,
  };
}

// ---------------------------------------------------------------------------------------------
// 4. Revoke racing completion

/**
 * `jobs` jobs of ~`jobMs` each, each revoked at a random 0–250 ms after its enqueue answered
 * (library and HTTP API alternately): every revoke answer is true.
 */
export async function revokeRace(size: { jobs: number; workers: number; concurrency: number; jobMs: number; settleMs: number }): Promise<StateSummary> {
  const cluster = await startCluster();
  const workers = await startWorkers(cluster, size.workers, { TASKLINE_CONCURRENCY: String(size.concurrency) });
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, size);
  const revokes: Array<Promise<unknown>> = [];
  const wave = 20;
  for (let i = 0; i < size.jobs; i += wave) {
    const n = Math.min(wave, size.jobs - i);
    const res = await history.enqueueBulk(Array.from({ length: n }, (_, k) => ({ task: 'work', data: { ms: size.jobMs, n: i + k } })));
    for (const { id } of res) revokes.push(sleep(Math.random() * 250).then(() => history.revoke(id, 'race').catch(() => undefined)));
    // About as fast as the workers take them, so revokes meet waiting, running and finished jobs.
    await sleep(Math.round((n * size.jobMs) / (size.workers * size.concurrency)));
  }
  await Promise.all(revokes);
  const checked = await history.check({ settleMs: size.settleMs });
  await stopWorkers(workers);
  const revoked = history.acknowledged.filter(id => history.job(id)?.finalRecord?.state === 'REVOKED');
  const runs = readRuns(cluster.execLog);
  return {
    case: `revoke racing completion, ${size.jobs} jobs of ~${size.jobMs} ms revoked at 0–250 ms`,
    history: checked,
    revokedBeforeStart: revoked.filter(id => (runs.get(id) ?? []).length === 0).length,
    revokedWhileRunning: revoked.filter(id => (runs.get(id) ?? []).length > 0).length,
    revokedHandlersCompleted: revoked.filter(id => (runs.get(id) ?? []).some(r => r.outcome === 'ok')).length,
  };
}

// ---------------------------------------------------------------------------------------------
// 5. Per-job time limit on every attempt

/**
 * `jobs` jobs sleeping 4 s with `timeoutMs: 1000, attempts: 3` (half through the library, half
 * through the HTTP API): every attempt is cut at 1 s; all end FAILURE TimeLimitError on attempt 3.
 */
export async function perJobTimeout(size: { jobs: number; settleMs: number }): Promise<StateSummary> {
  const cluster = await startCluster();
  const workers = await startWorkers(cluster, 2);
  const api = await spawnApi(cluster);
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, size);
  const options = { timeoutMs: 1000, attempts: 3, backoff: { type: 'fixed' as const, delay: 100 } };
  for (let n = 0; n < size.jobs; n++) {
    const job = { task: 'work', data: { ms: 4000, n }, options };
    if (n % 2 === 0) await history.enqueue(job.task, job.data, job.options);
    else await history.httpEnqueue(api.url, job);
  }
  const checked = await history.check({ settleMs: size.settleMs });
  api.child.kill('SIGTERM');
  await Promise.all([stopWorkers(workers), api.exited]);
  const runs = history.acknowledged.map(id => runsOf(cluster, id));
  const records = finals(history);
  return {
    case: `per-job timeoutMs 1000 on every attempt (4 s jobs, attempts 3), ${size.jobs} jobs`,
    history: checked,
    finalErrorTypes: countBy(records, r => `${r.state} ${r.error?.type ?? ''} attempt ${r.attempt}`),
    runsPerJob: countBy(runs, r => String(r.length)),
    runOutcomes: countBy(runs.flat(), r => r.outcome ?? 'not ended'),
    longestRunMs: Math.max(0, ...runs.flat().map(r => (r.endedAt ?? Infinity) - r.startedAt)),
    attemptsSeen: [...new Set(runs.flat().map(r => r.attempt))].sort(),
  };
}

// ---------------------------------------------------------------------------------------------
// 6. Out of memory, reported

/**
 * The broker at maxmemory: enqueue (library, HTTP) rejects with REDIS_OOM; workers' /readyz says
 * 503 and their error log stays bounded; after it is freed /readyz says 200. Then at the edge of
 * maxmemory a bulk (library, HTTP) partly fails and says per job; resending only the `failed`
 * ones makes each job exactly once.
 */
export async function oomReporting(size: { workers: number; backlog: number; faultMs: number; bulk: number; payloadBytes: number; settleMs: number }): Promise<StateSummary> {
  const cluster = await startCluster();
  const workers = await startWorkers(cluster, size.workers);
  const api = await spawnApi(cluster);
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, size);
  await history.enqueue('work', { n: -1 });
  await history.httpEnqueue(api.url, { task: 'work', data: { n: -2 } });

  // Out of memory, with a backlog the workers keep trying to take and finish: every write refused.
  await history.enqueueBulk(Array.from({ length: size.backlog }, (_, k) => ({ task: 'work', data: { ms: 200, n: -100 - k } })));
  // The per-job success lines (info, one per job that still finishes) are not the log flood this bounds.
  const linesOf = (w: (typeof workers)[number]): string[] => w.output.join('').split('\n').filter(l => !/"message":"Task \S+ succeeded in /.test(l));
  const linesBefore = workers.map(w => linesOf(w).length);
  await maxmemory(cluster, 'broker', 1);
  const fullAt = Date.now();
  const library = await history.enqueue('work', { n: -3 }).then(() => 'resolved', errorCode);
  const libraryBulk = await history.enqueueBulk([{ task: 'work', data: { n: -4 } }, { task: 'work', data: { n: -5 } }]).then(
    () => ({ code: 'resolved', statuses: {} }),
    (err: { code?: string; outcomes?: Array<{ status: string }> }) => ({ code: err.code, statuses: countBy(err.outcomes ?? [], o => o.status) }),
  );
  const http = await history.httpEnqueue(api.url, { task: 'work', data: { n: -6 } });
  let unreadyMs = -1;
  await until(async () => (await Promise.all(workers.map(w => w.readyz()))).every(s => s === 503), 15_000, 'every worker /readyz 503', 200)
    .then(() => (unreadyMs = Date.now() - fullAt))
    .catch(() => undefined);
  await sleep(Math.max(0, size.faultMs - (Date.now() - fullAt)));
  const linesDuring = workers.map((w, i) => linesOf(w).length - (linesBefore[i] ?? 0));
  const messagesDuring = countBy(
    workers.flatMap((w, i) => linesOf(w).slice((linesBefore[i] ?? 1) - 1).filter(Boolean)),
    line => {
      try {
        const l = JSON.parse(line) as { level?: string; message?: string; error?: { code?: string; message?: string } | string };
        const code = typeof l.error === 'object' ? (l.error?.code ?? l.error?.message?.split(' ')[0]) : l.error?.split(' ')[0];
        return `${l.level} ${l.message}${code ? ` (${code})` : ''}`;
      } catch {
        return line.slice(0, 80);
      }
    },
  );
  const oomMs = Date.now() - fullAt;
  await maxmemory(cluster, 'broker', 0);
  const freedAt = Date.now();
  let readyAgainMs = -1;
  await until(async () => (await Promise.all(workers.map(w => w.readyz()))).every(s => s === 200), 15_000, 'every worker /readyz 200 again', 200)
    .then(() => (readyAgainMs = Date.now() - freedAt))
    .catch(() => undefined);

  // At the edge of maxmemory: part of a bulk fits. Resend only what was reported `failed`.
  const pad = 'x'.repeat(size.payloadBytes);
  const partial = async (via: 'library' | 'http', first: number): Promise<Record<string, unknown>> => {
    const jobs = Array.from({ length: size.bulk }, (_, k) => ({ task: 'work', data: { n: first + k, pad } }));
    // Every job so far finishes first: while workers take and finish jobs the broker's memory
    // moves under the edge (in one dry run all 60 fit), so the edge is set on a quiet broker.
    await until(
      async () => Object.values(await producer.inspect.counts()).every(c => c.waiting + c.prioritized + c.delayed + c.active === 0),
      size.settleMs,
      'no job waiting or active',
      100,
    );
    await maxmemory(cluster, 'broker', (await used(cluster, 'broker')) + Math.round((size.bulk * size.payloadBytes) / 3));
    let outcomes: Array<{ id: string; status: string }> = [];
    let code: string | undefined;
    let status = 0;
    if (via === 'library') {
      await history.enqueueBulk(jobs).catch((err: { code?: string; outcomes?: Array<{ id: string; status: string }> }) => {
        code = err.code;
        outcomes = err.outcomes ?? [];
      });
    } else {
      const res = await history.httpBulk(api.url, jobs);
      status = res.status;
      code = res.body['code'] as string | undefined;
      outcomes = (res.body['jobs'] as Array<{ id: string; status: string }> | undefined) ?? [];
    }
    await maxmemory(cluster, 'broker', 0);
    const resend = jobs.filter((_, i) => outcomes[i]?.status === 'failed');
    let resent = 0;
    if (resend.length > 0) {
      if (via === 'library') resent = (await history.enqueueBulk(resend)).length;
      else resent = ((await history.httpBulk(api.url, resend)).body['jobs'] as unknown[] | undefined)?.length ?? 0;
    }
    return { ...(via === 'http' ? { status } : {}), code, statuses: countBy(outcomes, o => o.status), resent };
  };
  const libraryPartial = await partial('library', 0);
  const httpPartial = await partial('http', size.bulk);

  const checked = await history.check({ settleMs: size.settleMs });
  api.child.kill('SIGTERM');
  await Promise.all([stopWorkers(workers), api.exited]);
  // Each job of the two bulks (n = 0 … 2·bulk−1) must have run as exactly one job: every job that
  // exists is acknowledged (the census counts the others as unknownJobs), so count those.
  const made = countBy(
    finals(history).filter(r => r.state === 'SUCCESS' && ((r.result as { n?: number } | undefined)?.n ?? -1) >= 0),
    r => String((r.result as { n: number }).n),
  );
  return {
    case: `broker out of memory: enqueue errors, /readyz, bounded logs, partial bulks (${size.bulk} jobs of ${size.payloadBytes} B)`,
    history: checked,
    enqueueDuringOom: library,
    bulkDuringOom: libraryBulk,
    httpDuringOom: { status: http.status, code: http.body['code'] },
    allUnreadyAfterMs: unreadyMs,
    oomMs,
    backlog: size.backlog,
    workerLogLinesDuringOom: linesDuring,
    workerLogDuringOom: messagesDuring,
    allReadyAgainAfterMs: readyAgainMs,
    libraryPartial,
    httpPartial,
    bulkJobs: 2 * size.bulk,
    bulkJobsMade: Object.keys(made).length,
    bulkJobsMadeTwice: Object.values(made).filter(n => n > 1).length,
  };
}

// ---------------------------------------------------------------------------------------------
// 7. A beat tick on a worker frozen past its lock

/**
 * `ticks` one-off schedules (the scheduler bin, `every` with `limit: 1`) of a `tickMs` job; each
 * worker that starts one is SIGSTOPped past its lock, another worker runs the tick again
 * (ctx.redelivered), then the frozen one resumes and finishes too. The record ends final once.
 */
export async function beatTickFrozenWorker(size: { ticks: number; workers: number; tickMs: number; settleMs: number }): Promise<StateSummary> {
  const cluster = await startCluster();
  const workers = await startWorkers(cluster, size.workers);
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, size);
  const file = path.join(cluster.dir, 'schedule.json');
  const schedules = Array.from({ length: size.ticks }, (_, n) => ({ id: `tick-${n}`, task: 'work', every: '60s', limit: 1, data: { ms: size.tickMs, n } }));
  writeFileSync(file, JSON.stringify({ schedules }));
  const beat = new BeatProcess('beat', file, { ...cluster.env, TASKLINE_PREFIX: cluster.prefix });
  const frozen = new Set<WorkerProcess>();
  try {
    const tickIds = new Map<string, string>();
    const all = readRunsWithPrefix(cluster, 'repeat:beat:tick-');
    await until(
      () => {
        for (const run of all()) {
          const schedule = /^repeat:beat:(tick-\d+):/.exec(run.jobId)?.[1];
          if (!schedule || tickIds.has(schedule)) continue;
          tickIds.set(schedule, run.jobId);
          history.adopt(run.jobId, 'beat');
          const victim = workers.find(w => w.pid === run.pid);
          if (victim && !frozen.has(victim)) {
            victim.child.kill('SIGSTOP');
            frozen.add(victim);
          }
        }
        return tickIds.size === size.ticks;
      },
      size.settleMs,
      `all ${size.ticks} ticks started`,
      50,
    );
    const frozenAt = Date.now();
    const frozenPids = new Set([...frozen].map(w => w.pid));
    const rerunDone = (id: string): boolean => runsOf(cluster, id).some(r => !frozenPids.has(r.pid) && r.endedAt !== null);
    await until(() => [...tickIds.values()].every(rerunDone), size.settleMs, 'every tick run again elsewhere and ended', 200).catch(() => undefined);
    const rerunAfterMs = Date.now() - frozenAt;
    for (const w of frozen) w.child.kill('SIGCONT');
    await until(() => [...tickIds.values()].every(id => runsOf(cluster, id).every(r => r.endedAt !== null)), size.settleMs, 'the frozen runs ended too', 200).catch(() => undefined);
    const checked = await history.check({ settleMs: size.settleMs });
    const ticks = [...tickIds.values()].map(id => {
      const runs = runsOf(cluster, id);
      return {
        runs: runs.length,
        jobIds: new Set(runs.map(r => r.jobId)).size,
        completed: runs.filter(r => r.outcome === 'ok').length,
        laterRunsRedelivered: runs.slice(1).every(r => r.redelivered),
        firstRunRedelivered: runs[0]?.redelivered ?? null,
        deliveries: runs.map(r => r.delivery),
        finalState: history.job(id)?.finalRecord?.state ?? null,
      };
    });
    return {
      case: `beat tick on a worker SIGSTOPped past its lock, ${size.ticks} ticks, ${size.workers} workers`,
      history: checked,
      ticks,
      frozenWorkers: frozen.size,
      rerunEndedAfterFreezeMs: rerunAfterMs,
    };
  } finally {
    for (const w of frozen) w.child.kill('SIGCONT');
    await beat.stop();
    allOutput.push(beat.raw.join('\n'));
    await stopWorkers(workers);
  }
}

/** Every run whose job id starts with `prefix`, re-read on each call. */
function readRunsWithPrefix(cluster: Cluster, prefix: string): () => HandlerRun[] {
  return () => [...readRuns(cluster.execLog)].filter(([id]) => id.startsWith(prefix)).flatMap(([, runs]) => runs);
}
