import type { JobErrorInfo, JobResultRecord } from './job-contract.js';
import { isJobState, isTerminalState, type JobState } from './job-states.js';

/**
 * Where a job's truth lives in the result backend, and how a record is stored.
 *
 * - `<prefix>:result:{<id>}`: the record, a hash written only by workers through the transition
 *   script (fields `state`, `delivery`, `base`, `out`, `progress`, `reason`);
 * - `<prefix>:revoke:{<id>}`: the revoke marker, written only by a revoke (the producer role);
 *   while the record is not final, the marker makes the job REVOKED;
 * - `<prefix>:revoked`: a sorted set of revoked ids scored by the marker's expiry, so a worker
 *   can learn every live revoke at start-up and after a reconnect;
 * - channel `<prefix>:job:<id>`: every state and progress change of that job (waiters, watchers);
 * - channel `<prefix>:revoke`: the ids revoked (running workers abort them).
 *
 * The `{id}` hash tag keeps a record and its marker in one Cluster slot, so one script sees both.
 */
export interface RecordKeys {
  record(id: string): string;
  marker(id: string): string;
  readonly revokedIndex: string;
  jobChannel(id: string): string;
  readonly revokeChannel: string;
}

export function recordKeys(prefix: string): RecordKeys {
  return {
    record: id => `${prefix}:result:{${id}}`,
    marker: id => `${prefix}:revoke:{${id}}`,
    revokedIndex: `${prefix}:revoked`,
    jobChannel: id => `${prefix}:job:${id}`,
    revokeChannel: `${prefix}:revoke`,
  };
}

/**
 * The part of a record every transition rewrites: who, what, when. Times are epoch milliseconds
 * (records show them as ISO strings); it is stored as a compact JSON array (see `BASE_FIELDS`).
 */
export interface RecordBase {
  task: string;
  queue: string;
  attempt: number;
  attempts: number | null;
  enqueuedAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  updatedAt: number;
  worker?: string;
  timeoutMs?: number | null;
  redelivered?: boolean;
  retryOf?: string;
}

/**
 * The stored base's fields in their stored order: the only place a position is given. An array
 * of values is about a third of the bytes of an object with ISO times, on every write of every
 * job. A new field goes at the end (records already stored simply lack it).
 */
export const BASE_FIELDS = ['task', 'queue', 'attempt', 'attempts', 'enqueuedAt', 'startedAt', 'finishedAt', 'updatedAt', 'worker', 'timeoutMs', 'redelivered', 'retryOf'] as const satisfies ReadonlyArray<keyof RecordBase>;

type BaseField = (typeof BASE_FIELDS)[number];
// Compiles only while BASE_FIELDS names every field of RecordBase.
const _everyFieldListed: [Exclude<keyof RecordBase, BaseField>] extends [never] ? true : never = true;
/** Records shorter than this lack a field every base has (the later ones are optional). */
const REQUIRED_FIELDS = BASE_FIELDS.indexOf('updatedAt') + 1;

/** A base as stored: the values in `BASE_FIELDS` order; absent is `null`, a flag is `1` or `0`. */
export function encodeBase(b: RecordBase): string {
  return JSON.stringify(BASE_FIELDS.map(f => storedValue(b[f])));
}

const storedValue = (v: RecordBase[BaseField]): string | number | null => (typeof v === 'boolean' ? (v ? 1 : 0) : (v ?? null));

function decodeBase(text: string | undefined): RecordBase | undefined {
  const values = parse<unknown[]>(text);
  if (!Array.isArray(values) || values.length < REQUIRED_FIELDS) return undefined;
  const a = Object.fromEntries(BASE_FIELDS.map((f, i) => [f, values[i]])) as Record<BaseField, unknown>;
  const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
  const base: RecordBase = {
    task: String(a.task),
    queue: String(a.queue),
    attempt: num(a.attempt) ?? 0,
    attempts: num(a.attempts),
    enqueuedAt: num(a.enqueuedAt),
    startedAt: num(a.startedAt),
    finishedAt: num(a.finishedAt),
    updatedAt: num(a.updatedAt) ?? 0,
  };
  if (typeof a.worker === 'string') base.worker = a.worker;
  if (a.timeoutMs !== undefined) base.timeoutMs = num(a.timeoutMs);
  if (a.redelivered === 1) base.redelivered = true;
  if (typeof a.retryOf === 'string') base.retryOf = a.retryOf;
  return base;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** What a final (or RETRY) state carries besides the base. */
export type RecordOutcome = { result: unknown } | { error: JobErrorInfo };

/** A revoke marker's value. */
export interface RevokeMarker {
  reason: string;
  /** ISO time of the revoke. */
  at: string;
  task: string;
  queue: string;
}

function parse<T>(text: string | undefined | null): T | undefined {
  if (text === undefined || text === null || text === '') return undefined;
  try {
    return JSON.parse(text) as T;
  } catch {
    return undefined;
  }
}

/**
 * The record as callers see it: the stored hash, overruled by a revoke marker while the stored
 * state is not final. `null` when neither exists.
 */
export function decodeRecord(id: string, hash: Record<string, string> | null, markerText: string | null): JobResultRecord | null {
  const marker = parse<RevokeMarker>(markerText);
  const stored = hash && isJobState(hash['state']) ? hash : null;
  if (!stored) {
    if (!marker) return null;
    return {
      id,
      task: marker.task,
      queue: marker.queue,
      state: 'REVOKED',
      reason: marker.reason,
      attempt: 0,
      attempts: null,
      enqueuedAt: null,
      startedAt: null,
      finishedAt: marker.at,
      updatedAt: marker.at,
    };
  }
  const b = decodeBase(stored['base']) ?? { task: '', queue: '', attempt: 0, attempts: null, enqueuedAt: null, startedAt: null, finishedAt: null, updatedAt: 0 };
  let state = stored['state'] as JobState;
  const record: JobResultRecord = {
    id,
    task: b.task,
    queue: b.queue,
    state,
    attempt: b.attempt,
    attempts: b.attempts,
    enqueuedAt: iso(b.enqueuedAt),
    startedAt: iso(b.startedAt),
    finishedAt: iso(b.finishedAt),
    updatedAt: iso(b.updatedAt) ?? '',
  };
  if (b.worker !== undefined) record.worker = b.worker;
  if (b.timeoutMs !== undefined) record.timeoutMs = b.timeoutMs;
  if (b.redelivered) record.redelivered = true;
  if (b.retryOf !== undefined) record.retryOf = b.retryOf;
  const delivery = Number(stored['delivery']);
  if (Number.isInteger(delivery) && delivery > 0) record.delivery = delivery;
  if (stored['redelivered'] === '1') record.redelivered = true;
  const outcome = parse<RecordOutcome>(stored['out']);
  const progress = parse<unknown>(stored['progress']);
  if (progress !== undefined) record.progress = progress;
  if (state === 'REVOKED') {
    const storedMarker = parse<RevokeMarker>(stored['reason']);
    record.reason = storedMarker?.reason ?? 'revoked';
    record.finishedAt ??= storedMarker?.at ?? record.updatedAt;
    return record;
  }
  if (marker && !isTerminalState(state)) {
    state = 'REVOKED';
    record.state = state;
    record.reason = marker.reason;
    record.finishedAt = marker.at;
    record.updatedAt = marker.at;
    return record;
  }
  if (outcome && 'result' in outcome && state === 'SUCCESS') record.result = outcome.result;
  if (outcome && 'error' in outcome && (state === 'FAILURE' || state === 'RETRY' || state === 'STARTED')) record.error = outcome.error;
  return record;
}
