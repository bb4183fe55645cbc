import { PROCESS_SETTINGS } from '../settings/index.js';
import { resolveSetting } from '../settings/index.js';
import type { JobState } from './job-states.js';

/**
 * What producer, worker and beat agree on: how a job looks on the broker and how its result
 * looks in the result backend. BullMQ job name = task name; BullMQ job data = the task payload.
 */

/** A failure as stored: never a secret, never an object graph. */
export interface JobErrorInfo {
  /** The error's class name, e.g. `TypeError`, or `NonError` when a handler threw something else. */
  type: string;
  message: string;
  stack: string | null;
}

/** One job's record in the result backend. */
export interface JobResultRecord {
  id: string;
  task: string;
  queue: string;
  state: JobState;
  /** The handler's return value (SUCCESS only). */
  result?: unknown;
  /** The last error (RETRY, FAILURE). */
  error?: JobErrorInfo;
  /** Why it was revoked (REVOKED only). */
  reason?: string;
  /** 1-based attempt that produced this state (0 while PENDING). */
  attempt: number;
  /** Attempts allowed in all; `null` while PENDING when the task's own default will decide. */
  attempts: number | null;
  /**
   * The broker delivery that wrote this state (BullMQ's `attemptsStarted`: every hand-out of the
   * job to a worker, including redeliveries after a lost lock). Writes from an older delivery
   * than the stored one are refused, so a worker that lost its job cannot overwrite the record.
   */
  delivery?: number;
  /** True when this delivery followed one that ended without an outcome (a lost or stalled worker). */
  redelivered?: boolean;
  /** The failed job this one re-runs (`inspect retry`). */
  retryOf?: string;
  /** ISO timestamps. */
  enqueuedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
  /** The worker that ran it (host:pid). */
  worker?: string;
  progress?: unknown;
  /** The time limit in force for the attempt (ms): the lower of the task's and the job's; `null` = none. */
  timeoutMs?: number | null;
}

/** The queue a task goes to when neither the task nor the caller names one. */
export const DEFAULT_QUEUE = 'default';

/**
 * Seconds a job's record lives after its last write (and so how long an idempotency key answers
 * with its first job): `option`, else `RESULT_EXPIRES`, else one day. Every process resolves it
 * here; the result backend is given the result. @defaultValue `86400`
 */
export function resolveResultExpiresSeconds(env: Record<string, string | undefined> = process.env, option?: number): number {
  return resolveSetting('resultExpiresSeconds', PROCESS_SETTINGS.resultExpiresSeconds, { options: { resultExpiresSeconds: option }, env });
}

/**
 * Turns anything a handler threw into a storable error, with secrets scrubbed by the caller.
 * A thrown non-Error (`throw {password: 'x'}`, `throw 'oops'`) is reduced to a summary of its
 * kind and key names: its values are never stored, logged or shown.
 */
export function toJobErrorInfo(thrown: unknown): JobErrorInfo {
  // A key or class name as the summary may show it: short, and only name-like characters.
  const safeName = (name: unknown): string => (typeof name === 'string' && name ? name : '?').replace(/[^A-Za-z0-9_$.-]/g, '?').slice(0, 40);
  // Errors from another realm (vm, worker threads) fail instanceof but are still Errors.
  if (thrown instanceof Error || Object.prototype.toString.call(thrown) === '[object Error]') {
    const error = thrown as Error;
    return { type: error.name || error.constructor?.name || 'Error', message: String(error.message), stack: error.stack ?? null };
  }
  let what: string;
  if (thrown === null) what = 'null';
  else if (Array.isArray(thrown)) what = `an array of ${thrown.length} item${thrown.length === 1 ? '' : 's'}`;
  else if (typeof thrown === 'object') {
    try {
      const proto: unknown = Object.getPrototypeOf(thrown);
      const kind = proto === Object.prototype || proto === null ? 'an object' : `a ${safeName((thrown as object).constructor?.name)} object`;
      const keys = Object.keys(thrown);
      const shown = keys.slice(0, 10).map(safeName);
      what = keys.length === 0 ? `${kind} with no keys` : `${kind} with key${keys.length === 1 ? '' : 's'} ${shown.join(', ')}${keys.length > shown.length ? ` and ${keys.length - shown.length} more` : ''}`;
    } catch {
      what = 'an object that cannot be inspected'; // a Proxy whose traps throw
    }
  } else if (typeof thrown === 'string') what = `a string of ${thrown.length} characters`;
  else what = `a ${typeof thrown}`;
  return { type: 'NonError', message: `A non-Error value was thrown: ${what}; throw an Error so its message is kept.`, stack: null };
}

/**
 * What taskline carries on a BullMQ job beside BullMQ's own options, under `opts.taskline`
 * (BullMQ keeps option keys it does not know). The producer sets only what the caller set; the
 * worker fills the rest from the task definition on every attempt.
 */
export interface TasklineJobMeta {
  /** A per-job time limit (ms); it can only lower the task's own. */
  timeoutMs?: number;
  /** The failed job this one re-runs (`inspect retry`). */
  retryOf?: string;
  /** The enqueue span (W3C traceparent): the worker's span is its child. See tracing.ts. */
  traceparent?: string;
  tracestate?: string;
  /** A schedule's template: the beat span that declared it, which each tick's span links to. */
  traceLink?: string;
}

export const JOB_META_KEY = 'taskline';

/** Reads taskline's meta from a BullMQ job's options, ignoring anything malformed. */
export function jobMeta(opts: object): TasklineJobMeta {
  const raw = (opts as Record<string, unknown>)[JOB_META_KEY];
  if (raw === null || typeof raw !== 'object') return {};
  const meta = raw as Record<string, unknown>;
  const out: TasklineJobMeta = {};
  const timeoutMs = meta['timeoutMs'];
  if (typeof timeoutMs === 'number' && Number.isInteger(timeoutMs) && timeoutMs > 0) out.timeoutMs = timeoutMs;
  if (typeof meta['retryOf'] === 'string') out.retryOf = meta['retryOf'];
  for (const key of ['traceparent', 'tracestate', 'traceLink'] as const) {
    const value = meta[key];
    if (typeof value === 'string') out[key] = value;
  }
  return out;
}

/** BullMQ job options with taskline's meta added (unchanged when the meta is empty). */
export function withJobMeta<T extends object>(opts: T, meta: TasklineJobMeta): T {
  if (meta.timeoutMs === undefined && meta.retryOf === undefined && meta.traceparent === undefined && meta.traceLink === undefined) return opts;
  return { ...opts, [JOB_META_KEY]: meta };
}
