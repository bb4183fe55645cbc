import type { JobErrorInfo, JobResultRecord, JobState } from './job-contract.js';

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

/** The part of a record every transition rewrites: who, what, when. */
export interface RecordBase {
  task: string;
  queue: string;
  attempt: number;
  attempts: number | null;
  enqueuedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  updatedAt: string;
  worker?: string;
  timeoutMs?: number | null;
  redelivered?: boolean;
  retryOf?: string;
}

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

const STATES: ReadonlySet<string> = new Set(['PENDING', 'STARTED', 'RETRY', 'SUCCESS', 'FAILURE', 'REVOKED']);

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
  const stored = hash && typeof hash['state'] === 'string' && STATES.has(hash['state']) ? hash : null;
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
  const base = parse<RecordBase>(stored['base']) ?? ({ task: '', queue: '', attempt: 0, attempts: null, enqueuedAt: null, startedAt: null, finishedAt: null, updatedAt: '' } as RecordBase);
  let state = stored['state'] as JobState;
  const record: JobResultRecord = { id, ...base, state };
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
  if (marker && state !== 'SUCCESS' && state !== 'FAILURE') {
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

/** Splits a record into the stored base (everything but state, outcome and progress). */
export function recordBase(record: JobResultRecord): RecordBase {
  const base: RecordBase = {
    task: record.task,
    queue: record.queue,
    attempt: record.attempt,
    attempts: record.attempts,
    enqueuedAt: record.enqueuedAt,
    startedAt: record.startedAt,
    finishedAt: record.finishedAt,
    updatedAt: record.updatedAt,
  };
  if (record.worker !== undefined) base.worker = record.worker;
  if (record.timeoutMs !== undefined) base.timeoutMs = record.timeoutMs;
  if (record.redelivered) base.redelivered = true;
  if (record.retryOf !== undefined) base.retryOf = record.retryOf;
  return base;
}
