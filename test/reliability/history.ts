// The history checker. A case makes its jobs through a History, which records every client call and
// its answer (enqueue, bulk with per-job outcomes, revoke, HTTP), starts a waiter (waitForResult)
// for every job a client was told exists, samples the records while the case runs, and at the end
// reads each job's final record and broker state and the handlers' start/end log. `check()` then
// tests the invariants of issue 9 over the whole history and returns a count per invariant (each
// job counted at most once per invariant) with samples; `expectHistoryClean()` asserts all are 0.
//
// Time stamps: a record read says what was true at some moment between sending the read and its
// answer. So a final observation counts from when its answer arrived, a non-final one from when
// its read was sent: a non-final state read *after* a final one is proof the final state changed,
// never an artefact of reply order. Two different final states seen at any times are proof too.
import { setMaxListeners } from 'node:events';
import { request as httpRequest } from 'node:http';
import { Queue } from 'bullmq';
import type { BulkJob, BulkJobOutcome, EnqueueResult, Producer } from '@taskline/producer';
import { createConnections, resolveConnectionOptions, type JobResultRecord, type JobState, type TasklineConnections } from '@taskline/shared';
import { ResultBackend } from '@taskline/shared/job';
import { expect } from 'chai';
import { readRuns, type HandlerRun } from './exec-log.js';

type FinalState = 'SUCCESS' | 'FAILURE' | 'REVOKED';
const FINAL: ReadonlySet<string> = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);
const BROKER_TYPES = ['active', 'wait', 'prioritized', 'delayed', 'waiting-children', 'completed', 'failed'] as const;
/** Broker states a job with a non-final (or no) record may be in. */
const BROKER_OPEN = new Set(['active', 'wait', 'waiting', 'paused', 'prioritized', 'delayed', 'waiting-children']);

/** One client call and what it answered (errors with name, code and, for bulks, per-job outcomes). */
export interface CallRecord {
  at: number;
  ms: number;
  kind: 'enqueue' | 'bulk' | 'revoke' | 'http-enqueue' | 'http-bulk' | 'adopt';
  jobs: number;
  ok: boolean;
  answer?: unknown;
  error?: { name: string; code: string | undefined; message: string; state?: string; outcomes?: BulkJobOutcome[]; status?: number };
}

export type RevokeAnswer = { at: number; answer: 'REVOKED' } | { at: number; answer: 'too-late'; state: string } | { at: number; answer: 'not-found' } | { at: number; answer: 'error'; code: string };

export interface FinalSeen {
  state: FinalState;
  /** Result or error (absent for state-only observations: events, revoke answers). */
  detail?: string;
  at: number;
  source: string;
}

/** Everything the history knows of one job. */
export interface JobHistory {
  id: string;
  queue: string;
  /** How a client learned the job exists: enqueue, bulk, dedup answer, HTTP, a bin, the beat. */
  via: Set<string>;
  acknowledged: boolean;
  /** An enqueue reported it `failed` (does not exist) or `unknown`. */
  reported: 'failed' | 'unknown' | null;
  revokes: RevokeAnswer[];
  finals: FinalSeen[];
  /** The latest non-final observation (its read's send time), for "non-final after final". */
  lastOpen: { at: number; state: string; source: string } | null;
  observations: number;
  waiter: { done: false } | { done: true; record?: JobResultRecord; error?: { name: string; code: string | undefined; message: string; afterMs: number } };
  finalRecord?: JobResultRecord | null;
  broker?: string;
}

export interface HistoryOptions {
  /** The case's key prefix and the fixture tasks' execution log. */
  cluster: { prefix: string; execLog: string; env: Record<string, string> };
  /** Bearer token for the HTTP calls. */
  apiToken?: string;
  /** The case's producer: every library call and every read goes through it. */
  producer: Producer;
  /** How long each waiter waits. */
  waitTimeoutMs: number;
  /** @defaultValue 250 */
  sampleEveryMs?: number;
  /** Records read per sample, round robin over the jobs. @defaultValue 1000 */
  sampleBatch?: number;
  /**
   * Waiters pending at once; later ones start as earlier ones answer (a waiter that starts after
   * its job ended gets the final record at once). Bounds the test process's own load in the
   * 50,000-job case. @defaultValue 5000
   */
  maxPendingWaiters?: number;
}

export interface CheckOptions {
  /** Bound on waiting for every job to be final and agree with the broker. */
  settleMs: number;
  /** Every acknowledged job must end with a final record. @defaultValue true */
  expectFinal?: boolean;
}

/** The invariants; each must be 0. */
export const INVARIANTS = [
  'lost',
  'untrueEnqueues',
  'finalChanged',
  'waiterWrong',
  'disagreements',
  'untrueRevokes',
  'successWithoutRun',
  'attemptAccounting',
  'redeliveryUnflagged',
] as const;
export type Invariant = (typeof INVARIANTS)[number];

export type HistoryReport = Record<Invariant, number> & {
  jobs: number;
  acknowledged: number;
  calls: number;
  callsFailed: number;
  observations: number;
  finalStates: Record<string, number>;
  brokerStates: Record<string, number>;
  runs: number;
  /** Completed runs beyond the first, over all jobs (at-least-once). */
  duplicates: number;
  /** Runs that started while an earlier delivery of the same job had not ended. */
  rerunsAfterStall: number;
  revokes: { revoked: number; tooLate: number; notFound: number; errors: number };
  /** Records or broker jobs no client was told about (see census). */
  unknownJobs: number;
  settleMs: number;
  samples: Partial<Record<Invariant | 'unknownJobs', string[]>>;
};

function finalDetail(record: JobResultRecord): string | undefined {
  if (record.state === 'SUCCESS') return JSON.stringify(record.result ?? null);
  if (record.state === 'FAILURE') return `${record.error?.type ?? '?'}: ${record.error?.message ?? ''}`;
  return undefined;
}

function errorOf(err: unknown): NonNullable<CallRecord['error']> {
  const e = err as Error & { code?: string; state?: string; outcomes?: BulkJobOutcome[] };
  return {
    name: e?.name ?? 'Error',
    code: e?.code,
    message: String(e?.message ?? err).slice(0, 300),
    ...(e?.state !== undefined ? { state: e.state } : {}),
    ...(Array.isArray(e?.outcomes) ? { outcomes: e.outcomes } : {}),
  };
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));

export class History {
  readonly calls: CallRecord[] = [];
  readonly #jobs = new Map<string, JobHistory>();
  readonly #order: string[] = [];
  readonly #o: Required<HistoryOptions>;
  readonly #abort = new AbortController();
  // One signal ends every waiter at the end of a case: thousands of listeners, on purpose.
  readonly #waiters = new Set<Promise<void>>();
  readonly #waiterQueue: Array<() => void> = [];
  #pendingWaiters = 0;
  #cursor = 0;
  #sampling: Promise<void> | null = null;
  #stopped = false;
  #sampleErrors = 0;

  /** The checker's own read-only view of both servers (not the producer's connections). */
  #view: { connections: TasklineConnections; results: ResultBackend } | null = null;

  constructor(options: HistoryOptions) {
    this.#o = { sampleEveryMs: 250, sampleBatch: 1000, apiToken: '', maxPendingWaiters: 5000, ...options };
    setMaxListeners(0, this.#abort.signal);
  }

  #viewOf(): { connections: TasklineConnections; results: ResultBackend } {
    if (!this.#view) {
      const connections = createConnections({ options: resolveConnectionOptions({ healthCheckIntervalMs: 0 }, this.#o.cluster.env), role: 'cli', component: 'history' });
      this.#view = { connections, results: new ResultBackend({ service: connections.backend, prefix: this.#o.cluster.prefix, expiresSeconds: 86_400 }) };
    }
    return this.#view;
  }

  /** Closes the checker's view (after `check`). */
  async #closeView(): Promise<void> {
    const view = this.#view;
    this.#view = null;
    await view?.results.close();
    await view?.connections.close();
  }

  /** Starts sampling records every `sampleEveryMs` (a batch per tick, round robin). */
  start(): this {
    this.#sampling ??= (async () => {
      while (!this.#stopped) {
        const batch = this.#nextBatch();
        if (batch.length > 0) await this.#observe(batch, 'poll').catch(() => (this.#sampleErrors += 1));
        await sleep(this.#o.sampleEveryMs);
      }
    })();
    return this;
  }

  /** Ids of every job a client was told exists. */
  get acknowledged(): string[] {
    return this.#order.filter(id => this.#jobs.get(id)?.acknowledged);
  }

  /** What the history knows of one job (for case-specific assertions). */
  job(id: string): Readonly<JobHistory> | undefined {
    return this.#jobs.get(id);
  }

  #job(id: string, queue = 'default'): JobHistory {
    let job = this.#jobs.get(id);
    if (!job) {
      job = emptyJob(id, queue);
      this.#jobs.set(id, job);
      this.#order.push(id);
    }
    return job;
  }

  /** A client was told this job exists: track it and start its waiter. */
  #acknowledge(id: string, via: string, queue = 'default'): void {
    const job = this.#job(id, queue);
    job.via.add(via);
    if (job.acknowledged) return;
    job.acknowledged = true;
    const waiter = this.#waiterSlot().then(() => this.#wait(job));
    this.#waiters.add(waiter);
    void waiter.finally(() => this.#waiters.delete(waiter));
  }

  /** Resolves when fewer than maxPendingWaiters wait (at once, or when one answers). */
  #waiterSlot(): Promise<void> {
    if (this.#pendingWaiters < this.#o.maxPendingWaiters) {
      this.#pendingWaiters += 1;
      return Promise.resolve();
    }
    return new Promise(resolve => this.#waiterQueue.push(resolve));
  }

  #wait(job: JobHistory): Promise<void> {
    if (this.#abort.signal.aborted) return this.#release();
    const startedAt = Date.now();
    return this.#o.producer
      .waitForResult(job.id, {
        timeoutMs: this.#o.waitTimeoutMs,
        signal: this.#abort.signal,
        // Only final events: a non-final one may arrive after a later write (no time it was true is known).
        onEvent: event => {
          if (FINAL.has(event.state)) this.#see(job, event.state, undefined, Date.now(), 'event');
        },
      })
      .then(
        record => {
          job.waiter = { done: true, record };
          this.#see(job, record.state, finalDetail(record), Date.now(), 'waiter');
        },
        (err: unknown) => {
          const e = errorOf(err);
          if (e.code !== 'ABORTED') job.waiter = { done: true, error: { name: e.name, code: e.code, message: e.message.slice(0, 120), afterMs: Date.now() - startedAt } };
        },
      )
      .finally(() => this.#release());
  }

  #release(): Promise<void> {
    const next = this.#waiterQueue.shift();
    if (next) next();
    else this.#pendingWaiters -= 1;
    return Promise.resolve();
  }

  /** A job made by another process (a bin, the beat, the HTTP API): watched like any acknowledged job. */
  adopt(id: string, via: string, queue = 'default'): void {
    this.calls.push({ at: Date.now(), ms: 0, kind: 'adopt', jobs: 1, ok: true, answer: { id, via } });
    this.#acknowledge(id, via, queue);
  }

  #record(call: CallRecord): CallRecord {
    this.calls.push(call);
    return call;
  }

  async enqueue(task: string, data: unknown, options?: BulkJob['options']): Promise<EnqueueResult> {
    const at = Date.now();
    try {
      const result = await this.#o.producer.enqueue(task, data, options);
      this.#record({ at, ms: Date.now() - at, kind: 'enqueue', jobs: 1, ok: true, answer: result });
      this.#acknowledge(result.id, result.deduplicated ? 'enqueue:deduplicated' : 'enqueue', options?.queue);
      return result;
    } catch (err) {
      this.#record({ at, ms: Date.now() - at, kind: 'enqueue', jobs: 1, ok: false, error: errorOf(err) });
      throw err;
    }
  }

  async enqueueBulk(jobs: BulkJob[]): Promise<EnqueueResult[]> {
    const at = Date.now();
    try {
      const results = await this.#o.producer.enqueueBulk(jobs);
      this.#record({ at, ms: Date.now() - at, kind: 'bulk', jobs: jobs.length, ok: true });
      results.forEach((r, i) => this.#acknowledge(r.id, r.deduplicated ? 'bulk:deduplicated' : 'bulk', jobs[i]?.options?.queue));
      return results;
    } catch (err) {
      const error = errorOf(err);
      this.#record({ at, ms: Date.now() - at, kind: 'bulk', jobs: jobs.length, ok: false, error });
      this.#outcomes(error.outcomes ?? [], jobs, 'bulk');
      throw err;
    }
  }

  #outcomes(outcomes: BulkJobOutcome[], jobs: BulkJob[], via: string): void {
    outcomes.forEach((o, i) => {
      const queue = jobs[i]?.options?.queue;
      if (o.status === 'added' || o.status === 'deduplicated') this.#acknowledge(o.id, `${via}:${o.status}`, queue);
      else this.#job(o.id, queue).reported ??= o.status;
    });
  }

  /** `producer.revoke`, with its answer kept as an observation (REVOKED, or the final state it met). */
  async revoke(id: string, reason?: string): Promise<JobResultRecord> {
    const job = this.#job(id);
    const at = Date.now();
    try {
      const record = await this.#o.producer.revoke(id, reason);
      const now = Date.now();
      this.#record({ at, ms: now - at, kind: 'revoke', jobs: 1, ok: true, answer: record.state });
      job.revokes.push(record.state === 'REVOKED' ? { at: now, answer: 'REVOKED' } : { at: now, answer: 'too-late', state: record.state });
      this.#see(job, record.state, undefined, now, 'revoke answer');
      return record;
    } catch (err) {
      const now = Date.now();
      const error = errorOf(err);
      this.#record({ at, ms: now - at, kind: 'revoke', jobs: 1, ok: false, error });
      if (error.name === 'JobStateError') {
        const state = error.state === 'completed' ? 'SUCCESS' : error.state === 'failed' ? 'FAILURE' : (error.state ?? '?');
        job.revokes.push({ at: now, answer: 'too-late', state });
        if (FINAL.has(state)) this.#see(job, state as JobState, undefined, now, 'revoke answer');
      } else if (error.name === 'JobNotFoundError') job.revokes.push({ at: now, answer: 'not-found' });
      else job.revokes.push({ at: now, answer: 'error', code: error.code ?? error.name });
      throw err;
    }
  }

  /**
   * One POST on a connection of its own: a kept-alive socket reused just as the server's
   * keep-alive timeout closes it fails the request ("other side closed"), which under a loaded
   * test process happened to a bulk POST, whose outcome is then unknown.
   */
  #post(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
    const payload = JSON.stringify(body);
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        url,
        {
          method: 'POST',
          agent: false,
          headers: { authorization: `Bearer ${this.#o.apiToken}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        },
        res => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            try {
              resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> });
            } catch (err) {
              reject(err instanceof Error ? err : new Error(String(err)));
            }
          });
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** POST /api/v1/jobs: 202 with the job, or an error status and code. */
  async httpEnqueue(apiUrl: string, job: BulkJob): Promise<{ status: number; body: Record<string, unknown> }> {
    const at = Date.now();
    const res = await this.#post(`${apiUrl}/api/v1/jobs`, job);
    const ok = res.status === 202;
    this.#record({
      at,
      ms: Date.now() - at,
      kind: 'http-enqueue',
      jobs: 1,
      ok,
      ...(ok ? { answer: res.body } : { error: { name: 'HTTP', status: res.status, code: res.body['code'] as string | undefined, message: String(res.body['error'] ?? '').slice(0, 300) } }),
    });
    if (ok) this.#acknowledge(res.body['id'] as string, res.body['deduplicated'] ? 'http:deduplicated' : 'http', job.options?.queue);
    return res;
  }

  /** POST /api/v1/jobs/bulk: 202 with every job, 207 with a status per job, or an error. */
  async httpBulk(apiUrl: string, jobs: BulkJob[]): Promise<{ status: number; body: Record<string, unknown> }> {
    const at = Date.now();
    const res = await this.#post(`${apiUrl}/api/v1/jobs/bulk`, { jobs });
    const listed = Array.isArray(res.body['jobs']) ? (res.body['jobs'] as Array<EnqueueResult & Partial<BulkJobOutcome>>) : [];
    const error =
      res.status === 202
        ? undefined
        : {
            name: 'HTTP',
            status: res.status,
            code: res.body['code'] as string | undefined,
            message: String(res.body['error'] ?? '').slice(0, 300),
            ...(res.status === 207 ? { outcomes: listed as BulkJobOutcome[] } : {}),
          };
    this.#record({ at, ms: Date.now() - at, kind: 'http-bulk', jobs: jobs.length, ok: res.status === 202, ...(error ? { error } : {}) });
    if (res.status === 202) listed.forEach((j, i) => this.#acknowledge(j.id, j.deduplicated ? 'http-bulk:deduplicated' : 'http-bulk', jobs[i]?.options?.queue));
    if (res.status === 207) this.#outcomes(listed as BulkJobOutcome[], jobs, 'http-bulk');
    return res;
  }

  #nextBatch(): string[] {
    const ids = this.#order;
    if (ids.length === 0) return [];
    const n = Math.min(this.#o.sampleBatch, ids.length);
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(ids[(this.#cursor + i) % ids.length] as string);
    this.#cursor = (this.#cursor + n) % ids.length;
    return out;
  }

  /** Reads records (1000 per round trip) and notes each as an observation. */
  async #observe(ids: string[], source: string): Promise<Map<string, JobResultRecord | null>> {
    const out = new Map<string, JobResultRecord | null>();
    for (let i = 0; i < ids.length; i += 1000) {
      const batch = ids.slice(i, i + 1000);
      const sent = Date.now();
      const got = await this.#viewOf().results.getMany(batch);
      const arrived = Date.now();
      for (const id of batch) {
        const record = got.get(id) ?? null;
        out.set(id, record);
        const job = this.#job(id);
        if (record && FINAL.has(record.state)) this.#see(job, record.state, finalDetail(record), arrived, source);
        else this.#see(job, record?.state ?? 'NONE', undefined, sent, source);
      }
    }
    return out;
  }

  #see(job: JobHistory, state: JobState | 'NONE', detail: string | undefined, at: number, source: string): void {
    job.observations += 1;
    if (FINAL.has(state)) job.finals.push({ state: state as FinalState, ...(detail !== undefined ? { detail } : {}), at, source });
    else if (!job.lastOpen || at > job.lastOpen.at) job.lastOpen = { at, state, source };
  }

  /** Broker state of every tracked job (a read-only BullMQ view): lists first, then each odd one confirmed by getJobState. */
  async #brokerStates(): Promise<{ states: Map<string, string>; all: Set<string> }> {
    const connection = await this.#viewOf().connections.broker.bullmqConnection(0);
    const queues = new Set([...this.#jobs.values()].map(j => j.queue));
    queues.add('default');
    const states = new Map<string, string>();
    const all = new Set<string>();
    for (const name of queues) {
      const view = new Queue(name, { connection, prefix: this.#o.cluster.prefix });
      try {
        const where = new Map<string, string>();
        for (const type of BROKER_TYPES) for (const id of await view.getRanges([type], 0, -1, true)) where.set(id, type === 'wait' ? 'waiting' : type);
        for (const id of where.keys()) all.add(id);
        for (const job of this.#jobs.values()) {
          if (job.queue !== name) continue;
          let state = where.get(job.id) ?? 'absent';
          // A job may move between two list reads: ask BullMQ for it alone when it looks wrong.
          if (!agrees(job.finalRecord ?? null, state)) state = String(await view.getJobState(job.id)).replace('unknown', 'absent');
          states.set(job.id, state);
        }
      } finally {
        await view.close();
      }
    }
    return { states, all };
  }

  /** Ids with a record or revoke marker in the result backend (SCAN, read-only). */
  async #recordIds(): Promise<Set<string>> {
    const client = this.#viewOf().connections.backend.client();
    const ids = new Set<string>();
    for (const kind of ['result', 'revoke']) {
      const prefix = `${this.#o.cluster.prefix}:${kind}:{`;
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
        cursor = next;
        for (const key of keys) ids.add(key.slice(prefix.length, -1));
      } while (cursor !== '0');
    }
    return ids;
  }

  /**
   * Waits (bounded) until every acknowledged job is final (if expected) and agrees with the
   * broker, stops sampling and the waiters, reads the final state of everything and checks the
   * invariants over the whole history. Never throws on a violation: it counts it.
   */
  async check(options: CheckOptions): Promise<HistoryReport> {
    const expectFinal = options.expectFinal ?? true;
    const started = Date.now();
    const deadline = started + options.settleMs;
    for (;;) {
      const ids = this.acknowledged;
      let open = 0;
      try {
        const records = await this.#observe(ids, 'settle');
        for (const id of ids) {
          const job = this.#job(id);
          job.finalRecord = records.get(id) ?? null;
          if (expectFinal && !FINAL.has(job.finalRecord?.state ?? '')) open += 1;
        }
        if (open === 0) {
          const { states } = await this.#brokerStates();
          open = ids.filter(id => !agrees(this.#job(id).finalRecord ?? null, states.get(id) ?? 'absent')).length;
        }
      } catch {
        open = -1;
      }
      const waiting = [...this.#jobs.values()].filter(j => j.acknowledged && !j.waiter.done && FINAL.has(j.finalRecord?.state ?? '')).length;
      if ((open === 0 && waiting === 0) || Date.now() > deadline) break;
      await sleep(500);
    }
    const settleMs = Date.now() - started;
    this.#stopped = true;
    await this.#sampling;
    this.#abort.abort();
    await Promise.allSettled([...this.#waiters]);

    const ids = [...this.#order];
    const records = await this.#observe(ids, 'final');
    for (const id of ids) this.#job(id).finalRecord = records.get(id) ?? null;
    const { states, all } = await this.#brokerStates();
    for (const id of ids) this.#job(id).broker = states.get(id) ?? 'absent';
    for (const id of await this.#recordIds()) all.add(id);
    await this.#closeView();
    return evaluateHistory({ jobs: [...this.#jobs.values()], calls: this.calls, runs: readRuns(this.#o.cluster.execLog), census: all, expectFinal, settleMs });
  }
}

/** A job nothing is known of yet. */
export function emptyJob(id: string, queue = 'default'): JobHistory {
  return { id, queue, via: new Set(), acknowledged: false, reported: null, revokes: [], finals: [], lastOpen: null, observations: 0, waiter: { done: false } };
}

export interface HistoryInput {
  jobs: JobHistory[];
  calls: CallRecord[];
  /** Handler runs from the execution log, by job id. */
  runs: Map<string, HandlerRun[]>;
  /** Every id with a record, a revoke marker or a broker job. */
  census: Set<string>;
  expectFinal: boolean;
  settleMs: number;
}

/** The invariants over a whole history (pure: unit-tested with made-up histories in history.test.ts). */
export function evaluateHistory(input: HistoryInput): HistoryReport {
  const { runs, census, expectFinal, settleMs } = input;
  const jobsById = new Map(input.jobs.map(j => [j.id, j]));
  const counts = Object.fromEntries(INVARIANTS.map(k => [k, 0])) as Record<Invariant, number>;
  const samples: HistoryReport['samples'] = {};
  const flag = (invariant: Invariant | 'unknownJobs', id: string, why: string): void => {
    if (invariant !== 'unknownJobs') counts[invariant] += 1;
    const list = (samples[invariant] ??= []);
    if (list.length < 5) list.push(`${id}: ${why}`);
  };
  const finalStates: Record<string, number> = {};
  const brokerStates: Record<string, number> = {};
  const revokes = { revoked: 0, tooLate: 0, notFound: 0, errors: 0 };
  let duplicates = 0;
  let rerunsAfterStall = 0;
  let observations = 0;
  let totalRuns = 0;
  let unknownJobs = 0;

  for (const job of input.jobs) {
    const record = job.finalRecord ?? null;
    const state = record?.state ?? 'NONE';
    const broker = job.broker ?? 'absent';
    const jobRuns = runs.get(job.id) ?? [];
    observations += job.observations;
    totalRuns += jobRuns.length;
    if (!job.acknowledged) {
      // A bulk said this job was not added ("send it again"): it must not exist.
      if (job.reported === 'failed' && (record || broker !== 'absent' || jobRuns.length > 0)) {
        flag('untrueEnqueues', job.id, `reported "failed" by an enqueue but exists (record ${state}, broker ${broker}, ${jobRuns.length} runs)`);
      }
      continue;
    }
    finalStates[state] = (finalStates[state] ?? 0) + 1;
    brokerStates[broker] = (brokerStates[broker] ?? 0) + 1;

    // 1. No acknowledged job missing.
    if (expectFinal ? !FINAL.has(state) : !record && !BROKER_OPEN.has(broker)) {
      flag('lost', job.id, `acknowledged via ${[...job.via].join('/')}, record ${state}, broker ${broker}, ${jobRuns.length} runs`);
    }

    // 2. No final state changed: one final state (and result) ever seen, nothing open after it.
    const finals = job.finals;
    if (finals.length > 0) {
      const statesSeen = new Set(finals.map(f => f.state));
      const details = new Set(finals.filter(f => f.detail !== undefined).map(f => `${f.state} ${f.detail}`));
      const firstFinal = Math.min(...finals.map(f => f.at));
      if (statesSeen.size > 1 || details.size > 1) {
        flag('finalChanged', job.id, `final states seen: ${finals.map(f => `${f.state}${f.detail ? ` ${f.detail.slice(0, 60)}` : ''} (${f.source})`).join(', ')}`);
      } else if (job.lastOpen && job.lastOpen.at > firstFinal) {
        flag('finalChanged', job.id, `${job.lastOpen.state} read ${job.lastOpen.at - firstFinal} ms after ${finals[0]?.state} (${job.lastOpen.source})`);
      }
    }

    // The waiter's answer is the final record; it does not time out on a job that ended.
    const waiter = job.waiter;
    if (waiter.done && waiter.record) {
      if (!record || waiter.record.state !== record.state || finalDetail(waiter.record) !== finalDetail(record)) {
        flag('waiterWrong', job.id, `waiter got ${waiter.record.state}, final record ${state}`);
      }
    } else if (FINAL.has(state) || expectFinal) {
      const e = waiter.done ? waiter.error : undefined;
      flag('waiterWrong', job.id, e ? `waiter failed after ${e.afterMs} ms: ${e.name} ${e.code} (${e.message}); record ${state}` : `waiter never answered (record ${state})`);
    }

    // 3. Record and broker agree.
    if (!agrees(record, broker) && !(record === null && broker === 'absent')) flag('disagreements', job.id, `record ${state}, broker ${broker}`);

    // 4. Revoke answers are true.
    for (const r of job.revokes) {
      if (r.answer === 'REVOKED') {
        revokes.revoked += 1;
        if (state !== 'REVOKED') flag('untrueRevokes', job.id, `revoke answered REVOKED, final record ${state}`);
        else if (finals.some(f => f.state === 'SUCCESS')) flag('untrueRevokes', job.id, `revoke answered REVOKED, SUCCESS was observed`);
      } else if (r.answer === 'too-late') {
        revokes.tooLate += 1;
        if (state !== r.state) flag('untrueRevokes', job.id, `revoke answered too late (${r.state}), final record ${state}`);
      } else if (r.answer === 'not-found') {
        revokes.notFound += 1;
        flag('untrueRevokes', job.id, `revoke answered not found for an acknowledged job (final record ${state})`);
      } else revokes.errors += 1;
    }

    // 5. A SUCCESS record has a completed handler run.
    const okRuns = jobRuns.filter(r => r.outcome === 'ok').length;
    duplicates += Math.max(0, okRuns - 1);
    if (state === 'SUCCESS' && okRuns === 0) flag('successWithoutRun', job.id, `SUCCESS with ${jobRuns.length} runs, none completed`);

    // 6. Attempt accounting.
    const deliveries = new Set<number>();
    for (const run of jobRuns) {
      if (run.attempt < 1 || run.attempt > run.attempts) flag('attemptAccounting', job.id, `ctx.attempt ${run.attempt} of ${run.attempts}`);
      if (deliveries.has(run.delivery)) flag('attemptAccounting', job.id, `two runs with ctx.delivery ${run.delivery}`);
      deliveries.add(run.delivery);
      const after = jobRuns.some(e => e !== run && e.delivery < run.delivery && e.startedAt <= run.startedAt && (e.endedAt === null || e.endedAt > run.startedAt));
      if (after) {
        rerunsAfterStall += 1;
        if (!run.redelivered) flag('redeliveryUnflagged', job.id, `run of delivery ${run.delivery} started while delivery ${jobRuns.find(e => e.delivery < run.delivery)?.delivery} had not ended, ctx.redelivered false`);
      }
    }
  }
  for (const id of census) {
    const job = jobsById.get(id);
    if (!job || (!job.acknowledged && job.reported !== 'unknown')) {
      unknownJobs += 1;
      flag('unknownJobs', id, 'exists (record or broker) but no client was told so');
    }
  }
  return {
    ...counts,
    jobs: input.jobs.length,
    acknowledged: input.jobs.filter(j => j.acknowledged).length,
    calls: input.calls.length,
    callsFailed: input.calls.filter(c => !c.ok).length,
    observations,
    finalStates,
    brokerStates,
    runs: totalRuns,
    duplicates,
    rerunsAfterStall,
    revokes,
    unknownJobs,
    settleMs,
    samples,
  };
}

/** The agreement mapping at rest: final record ↔ completed/failed or absent; open record ↔ an open broker state. */
export function agrees(record: JobResultRecord | null, broker: string): boolean {
  const state = record?.state;
  if (state === 'SUCCESS') return broker === 'completed' || broker === 'absent';
  if (state === 'FAILURE' || state === 'REVOKED') return broker === 'failed' || broker === 'absent';
  return BROKER_OPEN.has(broker);
}

/** Asserts every invariant held (0 violations), naming samples of what broke. */
export function expectHistoryClean(report: HistoryReport): void {
  for (const invariant of INVARIANTS) {
    expect(report[invariant], `${invariant}: ${(report.samples[invariant] ?? []).join('; ')}`).to.equal(0);
  }
}

/** The figures a case prints: every invariant count plus the context that makes them meaningful. */
export function historyFigures(report: HistoryReport): Record<string, unknown> {
  const { samples, ...rest } = report;
  const violated = Object.fromEntries(Object.entries(samples).filter(([, v]) => v && v.length > 0));
  return { ...rest, ...(Object.keys(violated).length ? { samples: violated } : {}) };
}
