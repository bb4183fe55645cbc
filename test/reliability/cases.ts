// The fault and load cases, each parameterised by size. Every case returns a summary with exact
// accounting (jobs, completed, lost, duplicated) plus what it measured; the test files assert on it.
import { writeFileSync } from 'node:fs';
import { expect } from 'chai';
import type { Producer } from '@taskline/producer';
import { History, type HistoryOptions, type HistoryReport } from './history.js';
import { readRuns } from './exec-log.js';
import {
  account,
  enqueueWork,
  executions,
  inFlightOn,
  producerFor,
  spawnWorker,
  startCluster,
  until,
  API_TOKEN,
  type Accounting,
  type Cluster,
  type WorkerProcess,
} from './support.js';

/** Exact accounting, the history checker's report, and what the case measured. */
export type Summary = Accounting & { case: string; history: HistoryReport } & Record<string, unknown>;

export interface FaultSize {
  jobs: number;
  /** How long each job's handler runs. */
  jobMs: number;
  /** Worker processes. */
  workers: number;
  /** Jobs at once per worker process. */
  concurrency: number;
  /** How long the fault lasts (outage, pause). */
  faultMs: number;
  /** Bound on waiting for all jobs to complete. */
  settleMs: number;
}

async function startWorkers(cluster: Cluster, n: number, env: Record<string, string>): Promise<WorkerProcess[]> {
  const workers = Array.from({ length: n }, () => spawnWorker(cluster, env));
  await Promise.all(workers.map(w => w.ready()));
  return workers;
}

/** SIGTERMs every worker still running and returns their exit codes. */
async function stopWorkers(workers: WorkerProcess[]): Promise<Array<number | null>> {
  for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGTERM');
  return Promise.all(workers.map(w => w.exited));
}

/** Waits until every worker's /readyz answers 200; returns how long that took. */
async function allReady(workers: WorkerProcess[], timeoutMs: number): Promise<number> {
  const started = Date.now();
  await until(async () => (await Promise.all(workers.map(w => w.readyz()))).every(s => s === 200), timeoutMs, 'every worker /readyz 200', 200);
  return Date.now() - started;
}

/** Enqueues one quick job and returns how long until it has executed. */
async function probe(cluster: Cluster, history: History, timeoutMs: number): Promise<{ id: string; ms: number }> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  let id = '';
  // The enqueue itself may fail while the system recovers: retry until the deadline.
  while (!id) {
    try {
      id = (await history.enqueue('work', { ms: 0 })).id;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise(resolve => setTimeout(resolve, 200));
    }
  }
  await until(() => executions(cluster).has(id), Math.max(1000, deadline - Date.now()), `probe job ${id} executed`, 100);
  return { id, ms: Date.now() - started };
}

/** A history of the case's jobs, sampling from now on; its waiters outlast the case's settle bound. */
export function watch(cluster: Cluster, producer: Producer, size: { settleMs: number }, options: Partial<HistoryOptions> = {}): History {
  return new History({ cluster, producer, apiToken: API_TOKEN, waitTimeoutMs: size.settleMs + 60_000, ...options }).start();
}

function workerEnv(size: FaultSize, extra: Record<string, string> = {}): Record<string, string> {
  return { TASKLINE_CONCURRENCY: String(size.concurrency), ...extra };
}

/** A worker killed with SIGKILL mid-job: its jobs stall, are redelivered and complete. */
export async function sigkillWorker(size: FaultSize): Promise<Summary> {
  const cluster = await startCluster();
  const workers = await startWorkers(cluster, size.workers, workerEnv(size));
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, size);
  const ids = await enqueueWork(history, size.jobs, { ms: size.jobMs });
  await until(() => executions(cluster).size >= Math.ceil(size.jobs / 4), size.settleMs, 'a quarter of the jobs done');
  const victim = workers[0] as WorkerProcess;
  const inFlight = await inFlightOn(producer, ids, victim.pid);
  const killedAt = Date.now();
  victim.child.kill('SIGKILL');
  expect(await victim.exited).to.equal(null);
  const replacement = spawnWorker(cluster, workerEnv(size));
  await replacement.ready();
  const result = await account(cluster, producer, ids, size.settleMs);
  const allDoneMs = Date.now() - killedAt;
  const checked = await history.check({ settleMs: size.settleMs });
  const codes = await stopWorkers([...workers.slice(1), replacement]);
  expect(codes.every(c => c === 0), `exit codes ${JSON.stringify(codes)}`).to.equal(true);
  const inFlightExecuted = inFlight.filter(id => executions(cluster).has(id)).length;
  return { case: 'worker SIGKILL mid-job', ...result, history: checked, workers: size.workers, inFlightOnKilled: inFlight.length, inFlightOnKilledCompleted: inFlightExecuted, allDoneAfterKillMs: allDoneMs };
}

/** A worker given SIGTERM under load: drains its in-flight jobs, exits 0; nothing lost or repeated. */
export async function sigtermWorker(size: FaultSize): Promise<Summary> {
  const cluster = await startCluster();
  const workers = await startWorkers(cluster, size.workers, workerEnv(size));
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, size);
  const ids = await enqueueWork(history, size.jobs, { ms: size.jobMs });
  await until(() => executions(cluster).size >= Math.ceil(size.jobs / 4), size.settleMs, 'a quarter of the jobs done');
  const victim = workers[0] as WorkerProcess;
  const inFlight = await inFlightOn(producer, ids, victim.pid);
  const signalledAt = Date.now();
  victim.child.kill('SIGTERM');
  const code = await victim.exited;
  const drainMs = Date.now() - signalledAt;
  expect(code, victim.output.join('').slice(-3000)).to.equal(0);
  const result = await account(cluster, producer, ids, size.settleMs);
  const checked = await history.check({ settleMs: size.settleMs });
  await stopWorkers(workers.slice(1));
  const runs = readRuns(cluster.execLog);
  const drainedThere = inFlight.filter(id => runs.get(id)?.some(r => r.pid === victim.pid && r.outcome === 'ok')).length;
  return { case: 'worker SIGTERM under load', ...result, history: checked, exitCode: code, drainMs, inFlightOnSignalled: inFlight.length, finishedByTheDrainingWorker: drainedThere };
}

interface EnqueueAttempt {
  ok: boolean;
  ids: string[];
  ms: number;
  error?: { name: string; code: string | undefined; message: string };
}

/**
 * Enqueues bulks of `bulk` jobs one after another until `stop()`; every call's outcome (and how
 * long a failing call took to reject) is kept.
 */
function enqueueLoop(history: History, jobMs: number, bulk: number): { attempts: EnqueueAttempt[]; stop: () => Promise<void> } {
  const attempts: EnqueueAttempt[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const started = Date.now();
      const jobs = Array.from({ length: bulk }, () => ({ task: 'work', data: { ms: jobMs } }));
      try {
        const res = await history.enqueueBulk(jobs);
        attempts.push({ ok: true, ids: res.map(r => r.id), ms: Date.now() - started });
        await new Promise(resolve => setTimeout(resolve, 20));
      } catch (err) {
        const e = err as Error & { code?: string };
        attempts.push({ ok: false, ids: [], ms: Date.now() - started, error: { name: e.name, code: e.code, message: e.message } });
        await new Promise(resolve => setTimeout(resolve, 100));
      }
    }
  })();
  return {
    attempts,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

const ENQUEUE_TIMEOUT_MS = 3000;

function failedCalls(attempts: EnqueueAttempt[]): Record<string, unknown> {
  const failed = attempts.filter(a => !a.ok);
  return {
    enqueueCalls: attempts.length,
    enqueueCallsFailed: failed.length,
    failedCallMaxMs: failed.length ? Math.max(...failed.map(a => a.ms)) : 0,
    failedCallError: failed[0]?.error ?? null,
  };
}

/**
 * The broker killed (SIGKILL) mid-load and restarted on its AOF: no acknowledged job is lost,
 * workers and the producer reconnect, and enqueue calls during the outage reject within the
 * producer's enqueue deadline with a ConnectionError.
 */
export async function brokerRestart(size: FaultSize): Promise<Summary> {
  const cluster = await startCluster({ appendonly: true });
  const workers = await startWorkers(cluster, size.workers, workerEnv(size));
  const producer = producerFor(cluster, { enqueueTimeoutMs: ENQUEUE_TIMEOUT_MS });
  const history = watch(cluster, producer, size);
  const loop = enqueueLoop(history, size.jobMs, 20);
  await until(() => executions(cluster).size >= 40, size.settleMs, 'jobs flowing');
  cluster.broker.kill('SIGKILL');
  await new Promise(resolve => setTimeout(resolve, size.faultMs));
  await cluster.broker.restart();
  const restartedAt = Date.now();
  const readyMs = await allReady(workers, size.settleMs);
  const probed = await probe(cluster, history, size.settleMs);
  const probeMs = Date.now() - restartedAt;
  await until(() => loop.attempts.filter(a => a.ok).length > 0 && loop.attempts.at(-1)?.ok === true, size.settleMs, 'enqueues succeed again');
  await new Promise(resolve => setTimeout(resolve, 500));
  await loop.stop();
  const acknowledged = [...loop.attempts.flatMap(a => a.ids), probed.id];
  const result = await account(cluster, producer, acknowledged, size.settleMs);
  const checked = await history.check({ settleMs: size.settleMs });
  await stopWorkers(workers);
  return {
    case: 'broker SIGKILL + restart (AOF)',
    ...result,
    history: checked,
    outageMs: size.faultMs,
    workersReadyAfterRestartMs: readyMs,
    probeCompletedAfterRestartMs: probeMs,
    ...failedCalls(loop.attempts),
  };
}

/** The broker frozen with SIGSTOP longer than the command timeout, then resumed. */
export async function brokerPause(size: FaultSize): Promise<Summary> {
  const cluster = await startCluster();
  const workers = await startWorkers(cluster, size.workers, workerEnv(size, { REDIS_COMMAND_TIMEOUT_MS: '1000' }));
  const producer = producerFor(cluster, { enqueueTimeoutMs: ENQUEUE_TIMEOUT_MS });
  const history = watch(cluster, producer, size);
  const ids = await enqueueWork(history, size.jobs, { ms: size.jobMs });
  await until(() => executions(cluster).size >= Math.ceil(size.jobs / 4), size.settleMs, 'a quarter of the jobs done');
  cluster.broker.pause();
  const pausedAt = Date.now();
  let duringPause: EnqueueAttempt;
  try {
    await history.enqueue('work', { ms: 0 });
    duringPause = { ok: true, ids: [], ms: Date.now() - pausedAt };
  } catch (err) {
    const e = err as Error & { code?: string };
    duringPause = { ok: false, ids: [], ms: Date.now() - pausedAt, error: { name: e.name, code: e.code, message: e.message } };
  }
  await new Promise(resolve => setTimeout(resolve, Math.max(0, size.faultMs - (Date.now() - pausedAt))));
  cluster.broker.resume();
  const resumedAt = Date.now();
  const readyMs = await allReady(workers, size.settleMs);
  const probed = await probe(cluster, history, size.settleMs);
  const probeMs = Date.now() - resumedAt;
  const result = await account(cluster, producer, [...ids, probed.id], size.settleMs);
  const checked = await history.check({ settleMs: size.settleMs });
  await stopWorkers(workers);
  return { case: 'broker SIGSTOP > command timeout, SIGCONT', ...result, history: checked, pauseMs: size.faultMs, workersReadyAfterResumeMs: readyMs, probeCompletedAfterResumeMs: probeMs, ...failedCalls([duringPause]) };
}

/** Every client connection killed server-side on both servers, several times, mid-load. */
export async function clientKill(size: FaultSize, rounds: number): Promise<Summary> {
  const cluster = await startCluster();
  const workers = await startWorkers(cluster, size.workers, workerEnv(size));
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, size);
  const ids = await enqueueWork(history, size.jobs, { ms: size.jobMs });
  let killed = 0;
  for (let round = 0; round < rounds; round++) {
    await until(() => executions(cluster).size >= Math.ceil(((round + 1) * size.jobs) / (rounds + 2)), size.settleMs, `progress before kill round ${round + 1}`);
    for (const server of [cluster.broker, cluster.backend]) {
      killed += Number(await server.cli('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes'));
      killed += Number(await server.cli('CLIENT', 'KILL', 'TYPE', 'pubsub', 'SKIPME', 'yes'));
    }
  }
  const lastKillAt = Date.now();
  const readyMs = await allReady(workers, size.settleMs);
  const probed = await probe(cluster, history, size.settleMs);
  const probeMs = Date.now() - lastKillAt;
  const result = await account(cluster, producer, [...ids, probed.id], size.settleMs);
  const checked = await history.check({ settleMs: size.settleMs });
  const codes = await stopWorkers(workers);
  expect(codes.every(c => c === 0), `exit codes ${JSON.stringify(codes)}`).to.equal(true);
  return { case: 'CLIENT KILL (normal + pubsub) on both servers', ...result, history: checked, rounds, connectionsKilled: killed, workersReadyAfterKillMs: readyMs, probeCompletedAfterKillMs: probeMs };
}

/**
 * The result backend killed while jobs run, for longer than RESULT_WRITE_DEADLINE_MS, then
 * restarted: writes retry until the deadline, the attempt fails, BullMQ retries it, and every
 * job ends SUCCESS once the backend is back.
 */
export async function backendDown(size: FaultSize, writeDeadlineMs: number): Promise<Summary> {
  const cluster = await startCluster({ appendonly: true });
  const workers = await startWorkers(cluster, size.workers, workerEnv(size, { RESULT_WRITE_DEADLINE_MS: String(writeDeadlineMs) }));
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, size);
  const jobs = Array.from({ length: size.jobs }, (_, n) => ({ task: 'work', data: { ms: size.jobMs, n }, options: { attempts: 20 } }));
  const ids = (await history.enqueueBulk(jobs)).map(r => r.id);
  await until(() => executions(cluster).size >= Math.ceil(size.jobs / 4), size.settleMs, 'a quarter of the jobs done');
  const startedBeforeOutage = ids.length - executions(cluster).size;
  cluster.backend.kill('SIGKILL');
  const downAt = Date.now();
  const readyzStarted = Date.now();
  const readyzDuring = await Promise.all(workers.map(w => w.readyz(15_000)));
  const readyzMs = Date.now() - readyzStarted;
  await new Promise(resolve => setTimeout(resolve, Math.max(0, size.faultMs - readyzMs)));
  await cluster.backend.restart();
  const upAt = Date.now();
  const readyMs = await allReady(workers, size.settleMs);
  const result = await account(cluster, producer, ids, size.settleMs);
  const records = await Promise.all(ids.map(id => producer.getResult(id)));
  const retried = records.filter(r => (r?.attempt ?? 0) > 1).length;
  const maxAttempt = Math.max(...records.map(r => r?.attempt ?? 0));
  const logs = workers.map(w => w.output.join('')).join('');
  if (process.env['RELIABILITY_KEEP_LOGS']) writeFileSync(process.env['RELIABILITY_KEEP_LOGS'], logs);
  // An attempt failed on its result write: its handler completed, yet the job ran again as a later attempt.
  const writeFailures = [...readRuns(cluster.execLog).values()].reduce((n, runs) => n + runs.filter(r => r.outcome === 'ok' && runs.some(l => l.attempt > r.attempt)).length, 0);
  const checked = await history.check({ settleMs: size.settleMs });
  await stopWorkers(workers);
  return {
    case: 'result backend down > write deadline, restarted',
    ...result,
    history: checked,
    notYetDoneWhenKilled: startedBeforeOutage,
    outageMs: upAt - downAt,
    writeDeadlineMs,
    readyzWhileDown: readyzDuring,
    readyzWhileDownMs: readyzMs,
    jobsRetried: retried,
    maxAttempt,
    attemptsFailedOnWrite: writeFailures,
    workersReadyAfterRestartMs: readyMs,
  };
}

/** Every broker connection cut by a TCP proxy, several times, mid-load. */
export async function networkCut(size: FaultSize, rounds: number): Promise<Summary> {
  const cluster = await startCluster({ brokerProxy: true });
  const proxy = cluster.proxy;
  if (!proxy) throw new Error('networkCut needs the broker proxy');
  const workers = await startWorkers(cluster, size.workers, workerEnv(size));
  const producer = producerFor(cluster);
  const history = watch(cluster, producer, size);
  const ids = await enqueueWork(history, size.jobs, { ms: size.jobMs });
  let cut = 0;
  for (let round = 0; round < rounds; round++) {
    await until(() => executions(cluster).size >= Math.ceil(((round + 1) * size.jobs) / (rounds + 2)), size.settleMs, `progress before cut ${round + 1}`);
    cut += proxy.connectionCount();
    proxy.cutAll();
  }
  const lastCutAt = Date.now();
  const readyMs = await allReady(workers, size.settleMs);
  const probed = await probe(cluster, history, size.settleMs);
  const probeMs = Date.now() - lastCutAt;
  const result = await account(cluster, producer, [...ids, probed.id], size.settleMs);
  const checked = await history.check({ settleMs: size.settleMs });
  await stopWorkers(workers);
  return { case: 'network cut (TCP proxy cutAll) to the broker', ...result, history: checked, rounds, connectionsCut: cut, workersReadyAfterCutMs: readyMs, probeCompletedAfterCutMs: probeMs };
}
