import { ClosedError, TasklineError } from '../errors.js';
import type { JobResultRecord } from './job-contract.js';
import { isTerminalState, type JobState } from './job-states.js';
import type { RecordKeys } from './job-record.js';
import type { Logger } from '../process/index.js';
import type { LeasedConnection, RedisService } from '../connection/index.js';

/** Waiting for a result ran out of time; the job may still finish later. */
export class ResultTimeoutError extends TasklineError {
  override name = 'ResultTimeoutError';
  readonly jobId: string;
  constructor(jobId: string, timeoutMs: number) {
    super('RESULT_TIMEOUT', `Job ${jobId} did not finish within ${timeoutMs} ms; it may still run — wait longer or check it with \`taskline-producer result ${jobId}\`.`);
    this.jobId = jobId;
  }
}

/** A change of one job, as published by the transition script: its new state, and progress if any. */
export interface JobEvent {
  state: JobState;
  progress?: unknown;
}

type Waiter = {
  resolve: (record: JobResultRecord) => void;
  reject: (err: Error) => void;
  onEvent: ((event: JobEvent) => void) | undefined;
};

type RevokeListener = { listener: (jobId: string) => void; resync: (() => void) | undefined };

interface JobEventsDeps {
  service: RedisService;
  keys: RecordKeys;
  read(jobId: string): Promise<JobResultRecord | null>;
  recheckIntervalMs: number;
  logger: Logger;
}

function parseEvent(payload: string): JobEvent | null {
  try {
    const raw = JSON.parse(payload) as { s?: unknown; p?: unknown };
    if (typeof raw.s !== 'string') return null;
    return raw.p === undefined ? { state: raw.s as JobState } : { state: raw.s as JobState, progress: raw.p };
  } catch {
    return null;
  }
}

/**
 * Pub/sub of one process on the result backend: one subscriber connection, one channel per job
 * somebody waits for (subscribed while waited for, so a process hears only its own jobs), and the
 * revoke channel for workers. Waits never rely on a message alone: they read the record after
 * subscribing, after every reconnect, and every `recheckIntervalMs`.
 */
export class JobEvents {
  readonly #deps: JobEventsDeps;
  readonly #waiters = new Map<string, Set<Waiter>>();
  readonly #subscribed = new Map<string, Promise<unknown>>();
  readonly #revokeListeners = new Set<RevokeListener>();
  readonly #jobPrefix: string;
  #subscriber: Promise<LeasedConnection> | null = null;
  #recheckTimer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(deps: JobEventsDeps) {
    this.#deps = deps;
    this.#jobPrefix = deps.keys.jobChannel('');
  }

  async waitFor(jobId: string, options: { timeoutMs: number; signal?: AbortSignal; onEvent?: (event: JobEvent) => void }): Promise<JobResultRecord> {
    if (this.#closed) throw new ClosedError('The result backend');
    let waiter: Waiter | undefined;
    const done = new Promise<JobResultRecord>((resolve, reject) => {
      waiter = { resolve, reject, onEvent: options.onEvent };
    });
    const entry = waiter as Waiter;
    const set = this.#waiters.get(jobId) ?? new Set<Waiter>();
    set.add(entry);
    this.#waiters.set(jobId, set);
    const timer = setTimeout(() => entry.reject(new ResultTimeoutError(jobId, options.timeoutMs)), options.timeoutMs);
    const onAbort = (): void => entry.reject(new TasklineError('ABORTED', `Waiting for job ${jobId} was aborted.`));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted) onAbort();
    try {
      await Promise.race([this.#subscribe(this.#deps.keys.jobChannel(jobId)), done]);
      // Subscribed first, then read: a job that finished in between is seen by the read.
      await Promise.race([this.#check(jobId), done]);
      return await done;
    } finally {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      set.delete(entry);
      if (set.size === 0) {
        this.#waiters.delete(jobId);
        this.#unsubscribe(this.#deps.keys.jobChannel(jobId));
      }
    }
  }

  async onRevoke(listener: (jobId: string) => void, resync?: () => void): Promise<() => void> {
    const entry: RevokeListener = { listener, resync };
    this.#revokeListeners.add(entry);
    await this.#subscribe(this.#deps.keys.revokeChannel);
    return () => this.#revokeListeners.delete(entry);
  }

  async #check(jobId: string): Promise<void> {
    const waiters = this.#waiters.get(jobId);
    if (!waiters || waiters.size === 0) return;
    const record = await this.#deps.read(jobId);
    if (record && isTerminalState(record.state)) for (const w of [...waiters]) w.resolve(record);
  }

  #subscribe(channel: string): Promise<unknown> {
    let subscribed = this.#subscribed.get(channel);
    if (!subscribed) {
      subscribed = this.#ensureSubscriber().then(lease => lease.client.subscribe(channel));
      this.#subscribed.set(channel, subscribed);
      subscribed.catch(() => this.#subscribed.delete(channel));
    }
    return subscribed;
  }

  #unsubscribe(channel: string): void {
    const subscribed = this.#subscribed.get(channel);
    if (!subscribed || this.#closed) return;
    this.#subscribed.delete(channel);
    subscribed
      .then(() => this.#subscriber)
      .then(lease => lease?.client.unsubscribe(channel))
      .catch(() => undefined);
  }

  #ensureSubscriber(): Promise<LeasedConnection> {
    if (this.#closed) return Promise.reject(new ClosedError('The result backend'));
    this.#subscriber ??= (async () => {
      const lease = await this.#deps.service.lease();
      const client = lease.client;
      client.on('message', (channel: string, message: string) => this.#onMessage(channel, message));
      // After a reconnect ioredis re-subscribes; re-read what we wait for, and let revoke
      // listeners re-read what they may have missed.
      client.on('ready', () => {
        this.#recheckAll();
        for (const { resync } of this.#revokeListeners) resync?.();
      });
      this.#recheckTimer = setInterval(() => this.#recheckAll(), this.#deps.recheckIntervalMs);
      this.#recheckTimer.unref();
      return lease;
    })();
    this.#subscriber.catch(() => {
      this.#subscriber = null;
    });
    return this.#subscriber;
  }

  #onMessage(channel: string, message: string): void {
    if (channel === this.#deps.keys.revokeChannel) {
      for (const { listener } of this.#revokeListeners) listener(message);
      return;
    }
    if (!channel.startsWith(this.#jobPrefix)) return;
    const jobId = channel.slice(this.#jobPrefix.length);
    const event = parseEvent(message);
    const waiters = this.#waiters.get(jobId);
    if (!waiters || !event) return;
    for (const w of waiters) {
      try {
        w.onEvent?.(event);
      } catch (err) {
        this.#deps.logger.warn('A job event listener threw', { jobId, error: err });
      }
    }
    if (isTerminalState(event.state)) this.#check(jobId).catch(() => undefined);
  }

  #recheckAll(): void {
    for (const jobId of this.#waiters.keys()) this.#check(jobId).catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#recheckTimer) clearInterval(this.#recheckTimer);
    for (const set of this.#waiters.values()) for (const w of set) w.reject(new ClosedError('The result backend'));
    const subscriber = this.#subscriber;
    this.#subscriber = null;
    this.#subscribed.clear();
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
