import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { ClosedError, TasklineError } from './errors.js';
import { toConnectionError } from './error-mapping.js';
import { CommandBatcher } from './command-batcher.js';
import { isTerminalState, type JobResultRecord } from './job-contract.js';
import { createSilentLogger, type Logger } from './logger.js';
import type { Lease, RedisService } from './redis-service.js';
import { backoffDelay, sleep } from './retry-policy.js';
import { parseIntegerSetting } from './env-parsing.js';

/** Waiting for a result ran out of time; the job may still finish later. */
export class ResultTimeoutError extends TasklineError {
  override name = 'ResultTimeoutError';
  readonly jobId: string;
  constructor(jobId: string, timeoutMs: number) {
    super('RESULT_TIMEOUT', `Job ${jobId} did not finish within ${timeoutMs} ms; it may still run — wait longer or check it with \`taskline-producer result ${jobId}\`.`);
    this.jobId = jobId;
  }
}

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
  /** Seconds a record lives after its last write. @defaultValue `RESULT_EXPIRES` or 86400 */
  expiresSeconds?: number;
  /** How long a write keeps retrying through an outage before giving up. @defaultValue `30000` */
  writeDeadlineMs?: number;
  /** Re-reads pending waits this often, in case a notification was lost in a reconnect. @defaultValue `5000` */
  recheckIntervalMs?: number;
  logger?: Logger;
}

/**
 * Stores a batch of records with their TTL; for each final one, wakes the waiters.
 * KEYS: the record keys. ARGV: ttl, channel, then per key its JSON and its id ('' = no wake-up).
 */
const STORE_SCRIPT = `
local ttl = ARGV[1]
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[2 * i + 1], 'EX', ttl)
  local id = ARGV[2 * i + 2]
  if id ~= '' then redis.call('PUBLISH', ARGV[2], id) end
end
return #KEYS
`;
const STORE_SHA = createHash('sha1').update(STORE_SCRIPT).digest('hex');

interface StoreItem {
  key: string;
  json: string;
  /** The job id to publish on the results channel, or '' for a non-final state. */
  wake: string;
}

/** Runs a script by its SHA, loading it on the first NOSCRIPT. */
export async function evalScript(client: Redis, sha: string, script: string, keys: string[], args: Array<string | number>): Promise<unknown> {
  try {
    return await client.evalsha(sha, keys.length, ...keys, ...args);
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
    return client.eval(script, keys.length, ...keys, ...args);
  }
}

type Waiter = { resolve: (record: JobResultRecord) => void; reject: (err: Error) => void };

/**
 * Job states and results in the result backend (its own Redis, its own connections). Every key
 * written has a TTL. Waiting uses one subscriber connection per process, not polling per waiter.
 */
export class ResultBackend {
  readonly prefix: string;
  readonly expiresSeconds: number;
  readonly #service: RedisService;
  readonly #writeDeadlineMs: number;
  readonly #recheckIntervalMs: number;
  readonly #logger: Logger;
  readonly #waiters = new Map<string, Set<Waiter>>();
  readonly #revokeListeners = new Set<(jobId: string) => void>();
  #subscriber: Promise<Lease> | null = null;
  readonly #stores = new CommandBatcher<StoreItem, unknown>(items =>
    evalScript(this.#client(), STORE_SHA, STORE_SCRIPT, items.map(i => i.key), [
      this.expiresSeconds,
      this.#resultsChannel,
      ...items.flatMap(i => [i.json, i.wake]),
    ]).then(() => items.map(() => null)),
  );
  #recheckTimer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(options: ResultBackendOptions) {
    this.#service = options.service;
    this.prefix = options.prefix ?? 'taskline';
    this.expiresSeconds =
      options.expiresSeconds ?? parseIntegerSetting('RESULT_EXPIRES', process.env['RESULT_EXPIRES'], { min: 1, max: 31_536_000 }) ?? 86_400;
    this.#writeDeadlineMs = options.writeDeadlineMs ?? 30_000;
    this.#recheckIntervalMs = options.recheckIntervalMs ?? 5000;
    this.#logger = options.logger ?? createSilentLogger();
  }

  key(jobId: string): string {
    return `${this.prefix}:result:${jobId}`;
  }
  get #resultsChannel(): string {
    return `${this.prefix}:results`;
  }
  get #revokeChannel(): string {
    return `${this.prefix}:revoke`;
  }

  #client(): Redis {
    if (this.#closed) throw new ClosedError('The result backend');
    return this.#service.client();
  }

  /** Errors from the result backend name the result backend, with its cause and fix. */
  #named = (err: unknown): never => {
    throw err instanceof TasklineError ? err : toConnectionError(err, this.#service.target);
  };

  /** Reads a job's record; `null` if unknown or expired. */
  async get(jobId: string): Promise<JobResultRecord | null> {
    const raw = await this.#client().get(this.key(jobId)).catch(this.#named);
    return raw === null ? null : (JSON.parse(raw) as JobResultRecord);
  }

  /**
   * Stores a record (with the TTL) and, for a final state, wakes the waiters. Retries with
   * backoff through an outage until the write deadline, then throws ResultWriteError.
   */
  async write(record: JobResultRecord): Promise<void> {
    const json = JSON.stringify(record);
    const terminal = isTerminalState(record.state);
    await retryUntilDeadline(
      () => {
        if (this.#closed) throw new ClosedError('The result backend');
        // Writes made in the same tick by concurrent jobs go out as one command.
        return this.#stores.submit({ key: this.key(record.id), json, wake: terminal ? record.id : '' });
      },
      {
        deadlineMs: this.#writeDeadlineMs,
        final: err => err instanceof ClosedError,
        onFirstFailure: err => this.#logger.warn('Result write failed; retrying with backoff', { jobId: record.id, error: err }),
        giveUp: err => new ResultWriteError(record.id, this.#writeDeadlineMs, err),
      },
    );
  }

  /**
   * Stores PENDING records in one round trip, each only if the job has no record yet (SET NX),
   * and says per record whether this call created it (`true`) or one existed (`false`): the
   * producer's idempotency check, atomic in Redis; a worker's STARTED is never overwritten.
   */
  async claimPending(records: JobResultRecord[]): Promise<boolean[]> {
    if (records.length === 0) return [];
    const pipeline = this.#client().pipeline();
    for (const record of records) pipeline.set(this.key(record.id), JSON.stringify(record), 'EX', this.expiresSeconds, 'NX');
    const results = (await pipeline.exec().catch(this.#named)) ?? [];
    const failed = results.find(([err]) => err);
    if (failed?.[0]) this.#named(failed[0]);
    return records.map((_, i) => results[i]?.[1] === 'OK');
  }

  /** Deletes a job's record (the producer's undo when its BullMQ add failed). */
  async discard(jobIds: string[]): Promise<void> {
    if (jobIds.length > 0) await this.#client().del(...jobIds.map(id => this.key(id))).catch(this.#named);
  }

  /**
   * Marks a job REVOKED (kept in Redis, so every worker and a restarted one sees it) and tells
   * running workers to abort it. Returns the record written.
   */
  async revoke(jobId: string, fallback: { task: string; queue: string; attempts: number }, reason: string): Promise<JobResultRecord> {
    const existing = await this.get(jobId);
    const now = new Date().toISOString();
    const record: JobResultRecord = {
      id: jobId,
      task: existing?.task ?? fallback.task,
      queue: existing?.queue ?? fallback.queue,
      state: 'REVOKED',
      reason,
      attempt: existing?.attempt ?? 0,
      attempts: existing?.attempts ?? fallback.attempts,
      enqueuedAt: existing?.enqueuedAt ?? null,
      startedAt: existing?.startedAt ?? null,
      finishedAt: now,
      updatedAt: now,
    };
    await this.#client()
      .multi()
      .set(this.key(jobId), JSON.stringify(record), 'EX', this.expiresSeconds)
      .publish(this.#resultsChannel, jobId)
      .publish(this.#revokeChannel, jobId)
      .exec()
      .catch(this.#named);
    return record;
  }

  async isRevoked(jobId: string): Promise<boolean> {
    return (await this.get(jobId))?.state === 'REVOKED';
  }

  /** Calls `listener(jobId)` whenever any process revokes a job. */
  async onRevoke(listener: (jobId: string) => void): Promise<() => void> {
    this.#revokeListeners.add(listener);
    await this.#ensureSubscriber();
    return () => this.#revokeListeners.delete(listener);
  }

  /** Resolves with the record once the job is SUCCESS, FAILURE or REVOKED. */
  async waitFor(jobId: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<JobResultRecord> {
    let waiter: Waiter | undefined;
    const done = new Promise<JobResultRecord>((resolve, reject) => {
      waiter = { resolve, reject };
    });
    const entry = waiter as Waiter;
    const set = this.#waiters.get(jobId) ?? new Set<Waiter>();
    set.add(entry);
    this.#waiters.set(jobId, set);
    const timer = setTimeout(() => entry.reject(new ResultTimeoutError(jobId, options.timeoutMs)), options.timeoutMs);
    const onAbort = (): void => entry.reject(new TasklineError('ABORTED', `Waiting for job ${jobId} was aborted.`));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await this.#ensureSubscriber();
      // Subscribed first, then read: a job that finished in between is seen by the read.
      await this.#check(jobId);
      return await done;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      set.delete(entry);
      if (set.size === 0) this.#waiters.delete(jobId);
    }
  }

  async #check(jobId: string): Promise<void> {
    const waiters = this.#waiters.get(jobId);
    if (!waiters || waiters.size === 0) return;
    const record = await this.get(jobId);
    if (record && isTerminalState(record.state)) for (const w of [...waiters]) w.resolve(record);
  }

  #ensureSubscriber(): Promise<Lease> {
    this.#subscriber ??= (async () => {
      const lease = await this.#service.lease();
      const client = lease.client;
      client.on('message', (channel: string, jobId: string) => {
        if (channel === this.#resultsChannel) this.#check(jobId).catch(() => undefined);
        else if (channel === this.#revokeChannel) for (const listener of this.#revokeListeners) listener(jobId);
      });
      // After a reconnect ioredis re-subscribes; re-read what we wait for, in case we missed it.
      client.on('ready', () => this.#recheckAll());
      await client.subscribe(this.#resultsChannel, this.#revokeChannel);
      this.#recheckTimer = setInterval(() => this.#recheckAll(), this.#recheckIntervalMs);
      this.#recheckTimer.unref();
      return lease;
    })();
    this.#subscriber.catch(() => {
      this.#subscriber = null;
    });
    return this.#subscriber;
  }

  #recheckAll(): void {
    for (const jobId of this.#waiters.keys()) this.#check(jobId).catch(() => undefined);
  }

  /** Stops waiting (pending waits reject) and hands the subscriber connection back. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#recheckTimer) clearInterval(this.#recheckTimer);
    for (const set of this.#waiters.values()) for (const w of set) w.reject(new ClosedError('The result backend'));
    const subscriber = this.#subscriber;
    this.#subscriber = null;
    if (subscriber) {
      try {
        const lease = await subscriber;
        // A subscribed connection cannot go back to the pool: close it.
        lease.client.disconnect();
        lease.release();
      } catch {
        // never subscribed
      }
    }
  }
}

/**
 * Runs `attempt` until it succeeds, retrying with backoff through an outage until `deadlineMs`
 * has passed; then throws `giveUp(lastError)`. Errors for which `final` is true are thrown at once.
 * The result-write policy: shared by the result writes here and the worker's STARTED step.
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
