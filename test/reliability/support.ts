// Shared machinery of the reliability suites: a TLS broker + TLS result backend, worker and API
// processes started from their bins, execution accounting and RSS / connection sampling.
// The fault cases live in cases.ts and the load case in load-case.ts, parameterised by size, so the short default-suite
// versions (test/reliability) and the long ones (test/faults, `pnpm test:faults`) are one code.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createProducer, type Producer, type ProducerOptions } from '@taskline/producer';
import type { JobResultRecord } from '@taskline/shared';
import { expect } from 'chai';
import { runningRedisCount, startRedis, startTcpProxy, type RunningRedis, type TcpProxy } from '../harness/index.js';
import { completedRuns } from './exec-log.js';
import { expectHistoryClean, historyFigures, type HistoryReport } from './history.js';

const WORKER_BIN = fileURLToPath(new URL('../../worker/bin/taskline-worker.js', import.meta.url));
const PRODUCER_BIN = fileURLToPath(new URL('../../producer/bin/taskline-producer.js', import.meta.url));
export const TASKS = fileURLToPath(new URL('./fixtures/tasks.ts', import.meta.url));

/** A known password and token, asserted never to appear in any output. */
export const REDIS_PASSWORD = `rp-${randomBytes(12).toString('hex')}`;
export const API_TOKEN = `tok-${randomBytes(16).toString('hex')}`;

export interface ClusterOptions {
  /** AOF with fsync always on the broker (and backend), so a restart keeps acknowledged writes. */
  appendonly?: boolean;
  /** Workers reach the broker through a TCP proxy that can cut connections. */
  brokerProxy?: boolean;
}

/** Two TLS Redis servers with a password, a fresh prefix and an execution log. */
export interface Cluster {
  broker: RunningRedis;
  backend: RunningRedis;
  proxy: TcpProxy | null;
  prefix: string;
  dir: string;
  execLog: string;
  /** REDIS_* (broker, through the proxy if any) and RESULT_REDIS_* settings. */
  env: Record<string, string>;
}

const clusters = new Set<Cluster>();
const children = new Set<ChildProcess>();
const producers = new Set<Producer>();
/** Everything any child printed, for the secret scan. */
export const allOutput: string[] = [];

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const appendonly = options.appendonly ?? false;
  const [broker, backend] = await Promise.all([
    startRedis({ tls: true, password: REDIS_PASSWORD, appendonly }),
    startRedis({ tls: true, password: REDIS_PASSWORD, appendonly }),
  ]);
  const proxy = options.brokerProxy ? await startTcpProxy({ targetPort: broker.port }) : null;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'taskline-rel-'));
  const execLog = path.join(dir, 'executions.log');
  writeFileSync(execLog, '');
  const env = {
    ...broker.env('REDIS_'),
    ...backend.env('RESULT_REDIS_'),
    ...(proxy ? { REDIS_PORT: String(proxy.port), REDIS_TLS_SERVERNAME: 'localhost' } : {}),
  };
  const cluster: Cluster = { broker, backend, proxy, prefix: `rel${randomBytes(4).toString('hex')}`, dir, execLog, env };
  clusters.add(cluster);
  return cluster;
}

export interface WorkerProcess {
  child: ChildProcess;
  pid: number;
  output: string[];
  exited: Promise<number | null>;
  /** Resolves once the worker logged "Worker ready". */
  ready(timeoutMs?: number): Promise<void>;
  /** HTTP status of /readyz (0 when the request fails or takes over `timeoutMs`, default 5 s). */
  readyz(timeoutMs?: number): Promise<number>;
  /** VmRSS in KiB. */
  rssKb(): number;
}

function track(child: ChildProcess, output: string[]): Promise<number | null> {
  children.add(child);
  const collect = (c: Buffer): void => {
    const text = c.toString();
    output.push(text);
    allOutput.push(text);
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  return new Promise(resolve =>
    child.once('exit', code => {
      children.delete(child);
      resolve(code);
    }),
  );
}

/** Worker settings for fault tests: short locks so a dead worker's jobs come back within seconds. */
export const FAST_RECOVERY_ENV = {
  TASKLINE_LOCK_DURATION_MS: '2000',
  TASKLINE_STALLED_INTERVAL_MS: '1000',
  TASKLINE_MAX_STALLED_COUNT: '5',
  TASKLINE_SHUTDOWN_GRACE_MS: '20000',
};

/** Starts `taskline-worker start` on the fixture tasks as a child process. */
export function spawnWorker(cluster: Cluster, env: Record<string, string> = {}): WorkerProcess {
  const child = spawn(process.execPath, [WORKER_BIN, 'start', '--tasks', TASKS, '--metrics-port', '0'], {
    env: {
      PATH: process.env['PATH'] ?? '',
      LOG_FORMAT: 'json',
      TASKLINE_PREFIX: cluster.prefix,
      RELIABILITY_EXEC_LOG: cluster.execLog,
      ...FAST_RECOVERY_ENV,
      ...cluster.env,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const exited = track(child, output);
  const metricsPort = (): number | undefined => {
    const line = output.join('').split('\n').find(l => l.includes('Serving /metrics'));
    return line ? (JSON.parse(line) as { port?: number }).port : undefined;
  };
  return {
    child,
    pid: child.pid ?? -1,
    output,
    exited,
    ready: (timeoutMs = 30_000) => until(() => output.join('').includes('"Worker ready"'), timeoutMs, `worker ${child.pid} ready`),
    readyz: async (timeoutMs = 5000) => {
      const port = metricsPort();
      if (port === undefined) return 0;
      try {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(timeoutMs) });
        await res.arrayBuffer();
        return res.status;
      } catch {
        return 0;
      }
    },
    rssKb: () => rssKb(child.pid ?? -1),
  };
}

export interface ApiProcess {
  child: ChildProcess;
  pid: number;
  output: string[];
  exited: Promise<number | null>;
  url: string;
}

/** Starts `taskline-producer serve` on a free loopback port with the known API token. */
export async function spawnApi(cluster: Cluster, env: Record<string, string> = {}): Promise<ApiProcess> {
  const child = spawn(process.execPath, [PRODUCER_BIN, 'serve', '--host', '127.0.0.1', '--port', '0'], {
    env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json', TASKLINE_PREFIX: cluster.prefix, PRODUCER_API_TOKEN: API_TOKEN, ...cluster.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const exited = track(child, output);
  let port = 0;
  await until(() => {
    const line = output.join('').split('\n').find(l => l.includes('Producer API listening'));
    if (line) port = (JSON.parse(line) as { port: number }).port;
    return port > 0;
  }, 30_000, 'producer API listening');
  return { child, pid: child.pid ?? -1, output, exited, url: `http://127.0.0.1:${port}` };
}

export interface CliProcess {
  child: ChildProcess;
  output: string[];
  stdout: string[];
  exited: Promise<number | null>;
}

/** Runs `taskline-producer <args>` (e.g. `enqueue work --idempotency-key k`) against the cluster. */
export function spawnProducerCli(cluster: Cluster, args: string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [PRODUCER_BIN, ...args], {
    env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json', TASKLINE_PREFIX: cluster.prefix, ...cluster.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const stdout: string[] = [];
  child.stdout?.on('data', (c: Buffer) => stdout.push(c.toString()));
  return { child, output, stdout, exited: track(child, output) };
}

/** A library producer on the cluster (closed by cleanup()). */
export function producerFor(cluster: Cluster, options: Partial<ProducerOptions> = {}): Producer {
  const producer = createProducer({ env: { ...cluster.env, REDIS_HEALTH_CHECK_INTERVAL: '0' }, prefix: cluster.prefix, ...options });
  producers.add(producer);
  return producer;
}

export function rssKb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /VmRSS:\s+(\d+)\s+kB/.exec(status);
  return match ? Number(match[1]) : 0;
}

/** TCP connections from `pid` to `port` on loopback (socket inodes of the process ∩ /proc/net/tcp). */
export function connectionsTo(pid: number, port: number): number {
  const inodes = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return 0;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m?.[1]) inodes.add(m[1]);
    } catch {
      // closed meanwhile
    }
  }
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  let count = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // cols: sl local rem st ... inode(9); st 01 = ESTABLISHED
      if (cols.length > 9 && cols[2]?.endsWith(`:${hexPort}`) && cols[3] === '01' && inodes.has(cols[9] ?? '')) count += 1;
    }
  }
  return count;
}

/** `CLIENT LIST` of a server as a count per client name. */
export async function clientsByName(server: RunningRedis): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const line of (await server.cli('CLIENT', 'LIST')).split('\n')) {
    const name = /\bname=(\S*)/.exec(line)?.[1] || '(unnamed)';
    out[name] = (out[name] ?? 0) + 1;
  }
  return out;
}

/** Completed executions per job id, from the fixture tasks' log (`end … ok` lines). */
export function executions(cluster: Cluster): Map<string, number> {
  return completedRuns(cluster.execLog);
}

export async function until(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise(resolve => setTimeout(resolve, everyMs));
  }
}

export interface Accounting {
  jobs: number;
  /** Jobs with a SUCCESS record and at least one recorded execution. */
  completed: number;
  /** Jobs never executed or without a SUCCESS record: must be 0. */
  lost: number;
  /** Executions beyond the first, summed over jobs (at-least-once redeliveries). */
  duplicated: number;
  /** Up to 5 lost ids with their last state, for the failure message. */
  lostSample: string[];
}

export async function records(producer: Producer, ids: string[]): Promise<Map<string, JobResultRecord | null>> {
  const out = new Map<string, JobResultRecord | null>();
  for (let i = 0; i < ids.length; i += 1000) {
    const batch = ids.slice(i, i + 1000);
    const got = await Promise.all(batch.map(id => producer.getResult(id)));
    batch.forEach((id, j) => out.set(id, got[j] ?? null));
  }
  return out;
}

/**
 * Waits (bounded) until every id has executed and has a SUCCESS record, then counts. Never
 * throws on a shortfall: the test asserts `lost === 0` with the sample in the message.
 */
export async function account(cluster: Cluster, producer: Producer, ids: string[], timeoutMs: number): Promise<Accounting> {
  const deadline = Date.now() + timeoutMs;
  let executed = executions(cluster);
  while (Date.now() < deadline && !ids.every(id => executed.has(id))) {
    await new Promise(resolve => setTimeout(resolve, 250));
    executed = executions(cluster);
  }
  let states = await records(producer, ids);
  while (Date.now() < deadline && ids.some(id => states.get(id)?.state !== 'SUCCESS')) {
    await new Promise(resolve => setTimeout(resolve, 500));
    states = await records(producer, ids.filter(id => states.get(id)?.state !== 'SUCCESS')).then(m => new Map([...states, ...m]));
  }
  executed = executions(cluster);
  let completed = 0;
  let duplicated = 0;
  const lostSample: string[] = [];
  for (const id of ids) {
    const runs = executed.get(id) ?? 0;
    duplicated += Math.max(0, runs - 1);
    if (runs > 0 && states.get(id)?.state === 'SUCCESS') completed += 1;
    else if (lostSample.length < 5) lostSample.push(`${id}: runs=${runs} state=${states.get(id)?.state ?? 'none'}`);
  }
  return { jobs: ids.length, completed, lost: ids.length - completed, duplicated, lostSample };
}

/** Prints one JSON summary line per case (copied into docs/RELIABILITY.md). */
export function report(summary: Record<string, unknown>): void {
  console.log(`RELIABILITY ${JSON.stringify(summary)}`);
}

/** Enqueues `count` work jobs through the library (or a History) in bulks of `bulk`; returns their ids. */
export async function enqueueWork(producer: Pick<Producer, 'enqueueBulk'>, count: number, data: { ms?: number }, bulk = 500): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += bulk) {
    const n = Math.min(bulk, count - i);
    const jobs = Array.from({ length: n }, (_, j) => ({ task: 'work', data: { ...data, n: i + j } }));
    for (const r of await producer.enqueueBulk(jobs)) ids.push(r.id);
  }
  return ids;
}

/** Children still running, producers, clusters: all ended. Returns how many were left (want 0). */
export async function cleanup(): Promise<number> {
  const leftChildren = children.size;
  for (const child of children) child.kill('SIGKILL');
  await until(() => children.size === 0, 10_000, 'child processes gone');
  for (const p of producers) await p.close().catch(() => undefined);
  producers.clear();
  for (const c of clusters) {
    await c.proxy?.close();
    await Promise.all([c.broker.stop(), c.backend.stop()]);
    rmSync(c.dir, { recursive: true, force: true });
  }
  clusters.clear();
  return leftChildren;
}

/** Lines of all captured output that contain a secret (want none). */
export function linesWithSecrets(texts: string[] = allOutput): string[] {
  return texts.join('').split('\n').filter(l => l.includes(REDIS_PASSWORD) || l.includes(API_TOKEN));
}

/** Jobs whose record says STARTED by the worker process `pid` (in flight there now). */
export async function inFlightOn(producer: Producer, ids: string[], pid: number): Promise<string[]> {
  const states = await records(producer, ids);
  return ids.filter(id => {
    const r = states.get(id);
    return r?.state === 'STARTED' && r.worker?.endsWith(`:${pid}`) === true;
  });
}

/**
 * The checks every fault suite (short and long) runs: nothing left running after each case,
 * no secret in any output line, and exact accounting of each case's jobs.
 */
export function installFaultSuiteChecks(): void {
  afterEach(async function () {
    expect(await cleanup(), 'worker/API processes left running').to.equal(0);
    expect(runningRedisCount()).to.equal(0);
  });
  after(function () {
    expect(linesWithSecrets(), 'output lines with the Redis password or API token').to.deep.equal([]);
  });
}

/** Reports a case's figures and fails on any lost or unfinished job or any broken history invariant. */
export function checkSummary(summary: { lost: number; completed: number; jobs: number; lostSample: string[]; history: HistoryReport }): void {
  report({ ...summary, history: historyFigures(summary.history) });
  expect(summary.lost, `lost jobs: ${summary.lostSample.join('; ')}`).to.equal(0);
  expect(summary.completed).to.equal(summary.jobs);
  expectHistoryClean(summary.history);
}
