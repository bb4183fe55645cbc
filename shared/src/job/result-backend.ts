import type { Redis } from 'ioredis';
import { ClosedError, TasklineError } from '../errors.js';
import { toConnectionError } from '../connection/index.js';
import { CommandBatcher } from './command-batcher.js';
import type { JobResultRecord } from './job-contract.js';
import { isJobState, isTerminalState, type FinalState, type JobState } from './job-states.js';
import { decodeRecord, encodeBase, recordKeys, type RecordBase, type RecordKeys, type RecordOutcome, type RevokeMarker } from './job-record.js';
import { createSilentLogger, type Logger } from '../process/index.js';
import type { RedisService } from '../connection/index.js';
import { REVOKE_SCRIPT, TRANSITION_SCRIPT, runScript } from './record-scripts.js';
import { backoffDelay, sleep } from '../process/index.js';
import { JobEvents, ResultTimeoutError, type JobEvent } from './job-events.js';

export { ResultTimeoutError };

/** A result could not be written before its deadline (the result backend is down). */
export class ResultWriteError extends TasklineError {
  override name = 'ResultWriteError';
  constructor(jobId: string, deadlineMs: number, cause: unknown) {
    super(
      'RESULT_WRITE_FAILED',
      `The result of job ${jobId} could not be stored in the result backend within ${deadlineMs} ms; the attempt is failed so the job runs again — check RESULT_REDIS_* and the result backend's health.`,
      { cause },
    );
  }
}

export interface ResultBackendOptions {
  /** The result-backend service of a process's connections (`connections.backend`). */
  service: RedisService;
  /** Key prefix. @defaultValue `taskline` */
  prefix?: string;
  /** Seconds a record lives after its last write, as the process resolved it (`resolveResultExpiresSeconds`). */
  expiresSeconds: number;
  /** How long a write keeps retrying through an outage before giving up. @defaultValue `30000` */
  writeDeadlineMs?: number;
  /** Re-reads pending waits this often, in case a notification was lost in a reconnect. @defaultValue `5000` */
  recheckIntervalMs?: number;
  logger?: Logger;
}

/** One compare-and-set on a job's record (see TRANSITION_SCRIPT for the rules). */
export interface TransitionOp {
  /** `write`: store `state`; `progress`: store progress only; `settle`: the broker failed the job on its own. */
  kind: 'write' | 'progress' | 'settle';
  id: string;
  /** The broker delivery making the write (BullMQ `attemptsStarted`); 0 for `settle`. */
  delivery: number;
  state: Exclude<JobState, 'PENDING' | 'REVOKED'>;
  base: RecordBase;
  outcome?: RecordOutcome;
  /** The outcome already serialised (saves a second JSON pass over a large result). */
  outcomeJson?: string;
  progress?: unknown;
}

/**
 * What a transition found: `OK`/`REDELIVERED` written; a final state the record has (now), whoever
 * wrote it; `STALE` a newer delivery owns the job; `SKIP` progress for a job not STARTED by this
 * delivery; `REFUSED` the state table allows no move to that state (nothing written).
 */
export type TransitionAnswer = 'OK' | 'REDELIVERED' | FinalState | 'STALE' | 'SKIP' | 'REFUSED';

/** What a revoke reached: `REVOKED`, or the final state that came first. */
export type RevokeAnswer = FinalState;

/**
 * A job's record in the result backend: its one owner. Workers change it only through
 * compare-and-set transitions (a final state is final; an older delivery cannot overwrite a
 * newer one; a revoke wins over any outcome not yet stored). Producers read it and revoke.
 * Every key written has a TTL.
 */
export class ResultBackend {
  readonly prefix: string;
  readonly expiresSeconds: number;
  readonly keys: RecordKeys;
  readonly #service: RedisService;
  readonly #writeDeadlineMs: number;
  readonly #logger: Logger;
  readonly #events: JobEvents;
  readonly #transitions = new CommandBatcher<TransitionOp, TransitionAnswer>(ops => this.#sendTransitions(ops));
  #closed = false;

  constructor(options: ResultBackendOptions) {
    this.#service = options.service;
    this.prefix = options.prefix ?? 'taskline';
    this.keys = recordKeys(this.prefix);
    this.expiresSeconds = options.expiresSeconds;
    this.#writeDeadlineMs = options.writeDeadlineMs ?? 30_000;
    this.#logger = options.logger ?? createSilentLogger();
    this.#events = new JobEvents({
      service: options.service,
      keys: this.keys,
      read: id => this.get(id),
      recheckIntervalMs: options.recheckIntervalMs ?? 5000,
      logger: this.#logger,
    });
  }

  #client(): Redis {
    if (this.#closed) throw new ClosedError('The result backend');
    return this.#service.client();
  }

  /** Rethrows `err` as an error naming the result backend, with its cause and fix. */
  #rethrowAsBackendError = (err: unknown): never => {
    throw err instanceof TasklineError ? err : toConnectionError(err, this.#service.target);
  };

  /** A job's record (a revoke marker overrules a state that is not final); `null` if neither exists. */
  async get(id: string): Promise<JobResultRecord | null> {
    return (await this.getMany([id])).get(id) ?? null;
  }

  /** Records of many jobs in one round trip. */
  async getMany(ids: string[]): Promise<Map<string, JobResultRecord | null>> {
    const out = new Map<string, JobResultRecord | null>();
    if (ids.length === 0) return out;
    const pipeline = this.#client().pipeline();
    for (const id of ids) pipeline.hgetall(this.keys.record(id)).get(this.keys.marker(id));
    const replies = (await pipeline.exec().catch(this.#rethrowAsBackendError)) ?? [];
    ids.forEach((id, i) => {
      const [hashErr, hash] = replies[2 * i] ?? [];
      const [markerErr, marker] = replies[2 * i + 1] ?? [];
      if (hashErr || markerErr) this.#rethrowAsBackendError(hashErr ?? markerErr);
      out.set(id, decodeRecord(id, (hash as Record<string, string> | null) ?? null, (marker as string | null) ?? null));
    });
    return out;
  }

  /**
   * Applies one transition (batched with others made in the same tick into one script call).
   * Retries with backoff through an outage (or an out-of-memory backend) until the write deadline,
   * then throws ResultWriteError. The answer says what the record is now.
   */
  transition(op: TransitionOp): Promise<TransitionAnswer> {
    if (this.#closed) return Promise.reject(new ClosedError('The result backend'));
    // The common case costs one batched submit; the retry loop starts only after a failure.
    return this.#transitions.submit(op).catch((err: unknown) => {
      this.#logger.warn('Result write failed; retrying with backoff', { jobId: op.id, error: toConnectionError(err, this.#service.target) });
      return retryUntilDeadline(
        () => {
          if (this.#closed) throw new ClosedError('The result backend');
          return this.#transitions.submit(op);
        },
        {
          deadlineMs: this.#writeDeadlineMs,
          final: e => e instanceof ClosedError,
          giveUp: e => new ResultWriteError(op.id, this.#writeDeadlineMs, toConnectionError(e, this.#service.target)),
        },
      );
    });
  }

  async #sendTransitions(ops: TransitionOp[]): Promise<TransitionAnswer[]> {
    const keys: string[] = [];
    const args: Array<string | number> = [this.expiresSeconds, `${this.prefix}:job:`];
    for (const op of ops) {
      keys.push(this.keys.record(op.id), this.keys.marker(op.id));
      args.push(
        op.kind,
        op.delivery,
        op.state,
        encodeBase(op.base),
        op.outcomeJson ?? (op.outcome === undefined ? '' : JSON.stringify(op.outcome)),
        op.progress === undefined ? '' : JSON.stringify(op.progress),
        op.id,
      );
    }
    const answers = (await runScript(this.#client(), TRANSITION_SCRIPT, keys, args)) as TransitionAnswer[];
    return answers;
  }

  /**
   * Revokes a job unless its record is already final: sets the revoke marker (kept
   * RESULT_EXPIRES seconds, so a restarted worker still sees it), indexes it, and tells running
   * workers and waiters. Answers the state actually reached.
   */
  async revoke(id: string, marker: Omit<RevokeMarker, 'at'>): Promise<RevokeAnswer> {
    const at = new Date().toISOString();
    const client = this.#client();
    const answer = (await runScript(client, REVOKE_SCRIPT, [this.keys.record(id), this.keys.marker(id)], [
      JSON.stringify({ ...marker, at }),
      this.expiresSeconds,
      this.keys.revokeChannel,
      this.keys.jobChannel(id),
      id,
    ]).catch(this.#rethrowAsBackendError)) as RevokeAnswer;
    if (answer === 'REVOKED') {
      const now = Date.now();
      await client
        .pipeline()
        .zadd(this.keys.revokedIndex, now + this.expiresSeconds * 1000, id)
        .zremrangebyscore(this.keys.revokedIndex, '-inf', now)
        .exec()
        .catch(this.#rethrowAsBackendError);
    }
    return answer;
  }

  /** Ids revoked within the last RESULT_EXPIRES seconds (a worker's start-up and reconnect read). */
  async revokedIds(): Promise<string[]> {
    return this.#client().zrangebyscore(this.keys.revokedIndex, Date.now(), '+inf').catch(this.#rethrowAsBackendError);
  }

  /**
   * Calls `listener(jobId)` whenever any process revokes a job, and `resync()` after the
   * subscription was re-made (a revoke may have been missed meanwhile: read `revokedIds()`).
   */
  onRevoke(listener: (jobId: string) => void, resync?: () => void): Promise<() => void> {
    return this.#events.onRevoke(listener, resync);
  }

  /**
   * Resolves with the record once the job is SUCCESS, FAILURE or REVOKED; `onEvent` sees every
   * state and progress change meanwhile.
   */
  waitFor(jobId: string, options: { timeoutMs: number; signal?: AbortSignal; onEvent?: (event: JobEvent) => void }): Promise<JobResultRecord> {
    return this.#events.waitFor(jobId, options);
  }

  /** Stops waiting (pending waits reject) and hands the subscriber connection back. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#events.close();
  }
}

/** True when an answer means the record is final. */
export function isFinalAnswer(answer: TransitionAnswer): answer is FinalState {
  return isJobState(answer) && isTerminalState(answer);
}

/**
 * Runs `attempt` until it succeeds, retrying with backoff through an outage until `deadlineMs`
 * has passed; then throws `giveUp(lastError)`. Errors for which `final` is true are thrown at once.
 */
export async function retryUntilDeadline<T>(
  attempt: () => Promise<T>,
  policy: { deadlineMs: number; giveUp: (err: unknown) => Error; final?: (err: unknown) => boolean; onFirstFailure?: (err: unknown) => void },
): Promise<T> {
  const started = Date.now();
  for (let n = 1; ; n++) {
    try {
      return await attempt();
    } catch (err) {
      if (policy.final?.(err)) throw err;
      const elapsed = Date.now() - started;
      if (elapsed >= policy.deadlineMs) throw policy.giveUp(err);
      if (n === 1) policy.onFirstFailure?.(err);
      await sleep(Math.min(backoffDelay(n, { baseMs: 100, capMs: 2000 }), policy.deadlineMs - elapsed));
    }
  }
}
