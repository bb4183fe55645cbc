import { createHash, randomUUID } from 'node:crypto';
import { Queue, type JobsOptions } from 'bullmq';
import {
  ClosedError,
  ConnectionError,
  ResultBackend,
  TasklineError,
  assertTaskName,
  createConnections,
  isTerminalState,
  resolveConnectionOptions,
  toConnectionError,
  type HealthReport,
  type JobResultRecord,
  type Logger,
  type ResolvedConnectionOptions,
  type ConnectionOptions,
  type TasklineConnections,
} from '@taskline/shared';
import { JobNotFoundError, JobStateError, PayloadTooLargeError, ValidationError } from './errors.js';
import { QueueInspector } from './inspector.js';
import { checkPayload } from './payload.js';
import { ProducerMetrics, type EnqueueErrorReason } from './producer-metrics.js';
import {
  resolveEnqueueOptions,
  resolveProducerOptions,
  type EnqueueOptions,
  type ProducerOptions,
  type ResolvedEnqueueOptions,
  type ResolvedProducerOptions,
} from './options.js';

export interface EnqueueResult {
  id: string;
  /** True when an earlier job with the same idempotency key was returned instead of a new one. */
  deduplicated: boolean;
}

export interface BulkJob {
  task: string;
  data: unknown;
  options?: EnqueueOptions;
}

export type ProducerState = 'idle' | 'ready' | 'closing' | 'closed';

interface PreparedJob {
  task: string;
  data: unknown;
  options: ResolvedEnqueueOptions;
  id: string;
  record: JobResultRecord;
  jobOptions: JobsOptions;
}

/** Job ids made from an idempotency key are stable: the same key always names the same job. */
export function idempotentJobId(key: string): string {
  return `idem-${createHash('sha256').update(key).digest('hex').slice(0, 40)}`;
}

function isResolved(options: ConnectionOptions | ResolvedConnectionOptions): options is ResolvedConnectionOptions {
  return Array.isArray((options as ResolvedConnectionOptions).warnings);
}

const REMOVABLE_STATES = new Set(['waiting', 'delayed', 'prioritized', 'paused', 'waiting-children']);

/**
 * What applications use to enqueue jobs: BullMQ on the broker, PENDING records (and results)
 * in the result backend, with payload checks, idempotency keys and revoke.
 */
export class Producer {
  readonly options: ResolvedProducerOptions;
  readonly connections: TasklineConnections;
  readonly results: ResultBackend;
  readonly metrics: ProducerMetrics;
  /** Queue counts, failed jobs, pause/resume. */
  readonly inspect: QueueInspector;
  readonly #logger: Logger;
  readonly #ownsConnections: boolean;
  readonly #queues = new Map<string, Promise<Queue>>();
  #state: ProducerState = 'idle';
  #connecting: Promise<void> | null = null;
  #closePromise: Promise<void> | null = null;

  constructor(options: ProducerOptions = {}) {
    this.options = resolveProducerOptions(options);
    this.#logger = this.options.logger;
    this.#ownsConnections = this.options.connections === null;
    this.connections =
      this.options.connections ??
      createConnections({
        options: isResolved(this.options.connection)
          ? this.options.connection
          : resolveConnectionOptions(this.options.connection, this.options.env),
        role: 'producer',
        component: 'producer',
        logger: this.#logger,
        ...(this.options.registry ? { registry: this.options.registry } : {}),
      });
    this.metrics = new ProducerMetrics(this.options.registry ?? this.connections.registry);
    this.results = new ResultBackend({ service: this.connections.backend, prefix: this.options.prefix, logger: this.#logger });
    this.inspect = new QueueInspector({
      queue: name => this.#queue(name),
      markRetried: async jobs => {
        const now = new Date().toISOString();
        for (const job of jobs) {
          await this.results.write({ ...job, state: 'PENDING', attempt: 0, enqueuedAt: now, startedAt: null, finishedAt: null, updatedAt: now });
        }
      },
      broker: () => this.#ready().then(() => this.connections.broker.client()),
      prefix: this.options.prefix,
    });
  }

  get state(): ProducerState {
    return this.#state;
  }

  /** Opens both connections now (otherwise the first call does). Rejects with a ConnectionError. */
  connect(): Promise<void> {
    return this.#ready();
  }

  #ready(): Promise<void> {
    if (this.#closePromise) return Promise.reject(new ClosedError('The producer'));
    if (!this.#connecting) {
      const connecting = this.#ownsConnections && this.connections.state === 'idle' ? this.connections.connect() : Promise.resolve();
      this.#connecting = connecting.then(() => {
        this.#state = 'ready';
      });
      // A failed start may be retried by the next call.
      this.#connecting.catch(() => {
        this.#connecting = null;
      });
    }
    return this.#connecting;
  }

  #queue(name: string): Promise<Queue> {
    let queue = this.#queues.get(name);
    if (!queue) {
      queue = (async () => {
        await this.#ready();
        const connection = await this.connections.broker.bullmqConnection(0);
        const q = new Queue(name, {
          connection,
          prefix: this.options.prefix,
          defaultJobOptions: {
            // Results live in the result backend; failed jobs stay (bounded) for `inspect`.
            removeOnComplete: true,
            removeOnFail: { age: this.options.keepFailedSeconds, count: this.options.keepFailedCount },
          },
        });
        q.on('error', err => this.#logger.warn('BullMQ queue error', { queue: name, error: err }));
        return q;
      })();
      this.#queues.set(name, queue);
      queue.catch(() => this.#queues.delete(name));
    }
    return queue;
  }

  #prepare(task: string, data: unknown, input: EnqueueOptions | undefined, now: number): PreparedJob {
    try {
      assertTaskName(task);
    } catch (err) {
      throw new ValidationError('INVALID_TASK', 'task', (err as Error).message);
    }
    const options = resolveEnqueueOptions(input, this.options, now);
    checkPayload(data, this.options.maxPayloadBytes);
    const id = options.idempotencyKey === undefined ? randomUUID() : idempotentJobId(options.idempotencyKey);
    const at = new Date(now).toISOString();
    const record: JobResultRecord = {
      id,
      task,
      queue: options.queue,
      state: 'PENDING',
      attempt: 0,
      attempts: options.attempts,
      enqueuedAt: at,
      startedAt: null,
      finishedAt: null,
      updatedAt: at,
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    };
    const jobOptions: JobsOptions = {
      jobId: id,
      timestamp: now,
      attempts: options.attempts,
      backoff: options.backoff,
      ...(options.delay > 0 ? { delay: options.delay } : {}),
      ...(options.priority !== undefined ? { priority: options.priority } : {}),
    };
    return { task, data, options, id, record, jobOptions };
  }

  /**
   * Adds a job. The PENDING record is written before the BullMQ add (so a fast worker's STARTED
   * is never overwritten) and removed again if the add fails. Bad input throws ValidationError
   * before anything reaches Redis; an unreachable Redis rejects with a ConnectionError.
   */
  async enqueue(task: string, data: unknown, options?: EnqueueOptions): Promise<EnqueueResult> {
    const [result] = await this.enqueueBulk([{ task, data, ...(options ? { options } : {}) }]);
    return result as EnqueueResult;
  }

  /**
   * Adds many jobs: every job is validated first (all or none), PENDING records go in one
   * pipeline, and each queue gets one BullMQ addBulk. Results come back in input order.
   */
  async enqueueBulk(jobs: BulkJob[]): Promise<EnqueueResult[]> {
    const now = Date.now();
    let prepared: PreparedJob[];
    try {
      if (!Array.isArray(jobs)) throw new ValidationError('INVALID_OPTION', 'jobs', 'enqueueBulk takes an array of { task, data, options }.');
      prepared = jobs.map((job, i) => {
        if (job === null || typeof job !== 'object') throw new ValidationError('INVALID_OPTION', `jobs[${i}]`, `jobs[${i}] must be an object { task, data, options }.`);
        return this.#prepare(job.task, job.data, job.options, now);
      });
    } catch (err) {
      this.#countError(err);
      throw err;
    }
    if (prepared.length === 0) return [];
    try {
      return await this.#withDeadline(this.#add(prepared));
    } catch (err) {
      this.#countError(err);
      throw this.#mapError(err);
    }
  }

  async #add(prepared: PreparedJob[]): Promise<EnqueueResult[]> {
    await this.#ready();
    // Keyed jobs need the PENDING claim's answer (is this a repeat?) before the add. Fresh ids
    // cannot repeat, so their claim and their add go out together: one round trip, not two.
    // SET NX keeps it safe: a worker's STARTED that lands first is never overwritten.
    const keyed = prepared.filter(p => p.options.idempotencyKey !== undefined);
    const fresh = prepared.filter(p => p.options.idempotencyKey === undefined);
    const created = new Map<PreparedJob, boolean>();
    const freshClaim = this.results.claimPending(fresh.map(p => p.record));
    const keyedClaim = this.results.claimPending(keyed.map(p => p.record));
    (await keyedClaim).forEach((ok, i) => created.set(keyed[i] as PreparedJob, ok));
    for (const p of fresh) created.set(p, true);
    const results: EnqueueResult[] = prepared.map(p => ({ id: p.id, deduplicated: !created.get(p) }));
    const byQueue = new Map<string, PreparedJob[]>();
    for (const p of prepared) {
      if (!created.get(p)) continue;
      const list = byQueue.get(p.options.queue) ?? [];
      list.push(p);
      byQueue.set(p.options.queue, list);
    }
    const outcomes = await Promise.allSettled([
      freshClaim,
      ...[...byQueue].map(async ([name, list]) => {
        try {
          const queue = await this.#queue(name);
          if (list.length === 1 && list[0]) await queue.add(list[0].task, list[0].data, list[0].jobOptions);
          else await queue.addBulk(list.map(p => ({ name: p.task, data: p.data, opts: p.jobOptions })));
        } catch (err) {
          await freshClaim.catch(() => undefined);
          await this.results.discard(list.map(p => p.id)).catch((undo: unknown) =>
            this.#logger.warn('Could not remove the PENDING records of jobs that failed to enqueue', { queue: name, error: undo }),
          );
          throw err;
        }
        await this.#detectBrokerDuplicates(name, list, results, prepared);
        for (const p of list) this.metrics.enqueued.inc({ task: p.task, queue: name });
      }),
    ]);
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (outcomes[0]?.status === 'rejected') {
      // The broker took jobs whose PENDING records could not be stored: take them back, so a
      // failed enqueue never leaves a job behind that the caller will enqueue again.
      await this.#removeAdded(byQueue, outcomes.slice(1));
    }
    if (failed) throw failed.reason;
    if (this.#logger.isDebugEnabled()) {
      for (const p of prepared) this.#logger.debug('Job enqueued', { jobId: p.id, task: p.task, queue: p.options.queue });
    }
    return results;
  }

  async #removeAdded(byQueue: Map<string, PreparedJob[]>, adds: Array<PromiseSettledResult<unknown>>): Promise<void> {
    const queues = [...byQueue];
    await Promise.all(
      adds.map(async (outcome, i) => {
        const entry = queues[i];
        if (outcome.status !== 'fulfilled' || !entry) return;
        const queue = await this.#queue(entry[0]);
        await Promise.all(entry[1].map(p => queue.remove(p.id).catch(() => 0)));
      }),
    );
  }

  /**
   * A keyed job whose result record expired may still sit on the broker (a failed job kept for
   * inspect); BullMQ then silently ignores the add. Its stored timestamp tells us.
   */
  async #detectBrokerDuplicates(queueName: string, list: PreparedJob[], results: EnqueueResult[], all: PreparedJob[]): Promise<void> {
    const keyed = list.filter(p => p.options.idempotencyKey !== undefined);
    if (keyed.length === 0) return;
    const queue = await this.#queue(queueName);
    await Promise.all(
      keyed.map(async p => {
        const job = await queue.getJob(p.id);
        if (job && job.timestamp !== p.jobOptions.timestamp) {
          const result = results[all.indexOf(p)];
          if (result) result.deduplicated = true;
        }
      }),
    );
  }

  async #withDeadline<T>(work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const ms = this.options.enqueueTimeoutMs;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const { host, port } = this.connections.broker.target;
        reject(
          new ConnectionError(
            `The enqueue got no answer from Redis within ${ms} ms; check the broker and result backend (taskline-producer health), or raise the producer's enqueueTimeoutMs.`,
            { code: 'ENQUEUE_TIMEOUT', kind: 'network', retryable: true, service: 'broker', host, port },
          ),
        );
      }, ms);
    });
    try {
      return await Promise.race([work, deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  #mapError(err: unknown): Error {
    if (err instanceof TasklineError) return err;
    return toConnectionError(err, this.connections.broker.target);
  }

  #countError(err: unknown): void {
    const reason: EnqueueErrorReason =
      err instanceof PayloadTooLargeError
        ? 'too_large'
        : err instanceof ValidationError
          ? 'invalid'
          : err instanceof ConnectionError || !(err instanceof TasklineError)
            ? 'connection'
            : 'other';
    this.metrics.enqueueErrors.inc({ reason });
  }

  /** The job's record from the result backend, or `null` if unknown or expired. */
  async getResult(id: string): Promise<JobResultRecord | null> {
    await this.#ready();
    return this.results.get(id);
  }

  /**
   * Resolves with the record once the job is SUCCESS, FAILURE or REVOKED (pub/sub, one
   * subscriber connection per process). Rejects with ResultTimeoutError, or JobNotFoundError.
   */
  async waitForResult(id: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<JobResultRecord> {
    const timeoutMs = options?.timeoutMs;
    if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 1) {
      throw new ValidationError('INVALID_OPTION', 'timeoutMs', 'waitForResult needs { timeoutMs }, a whole number of milliseconds ≥ 1.');
    }
    await this.#ready();
    const record = await this.results.get(id);
    if (!record) throw new JobNotFoundError(id, ' in the result backend');
    if (isTerminalState(record.state)) return record;
    return this.results.waitFor(id, options);
  }

  /**
   * Cancels a job: REVOKED is recorded first (workers check it before running, and running ones
   * are told to abort), then a waiting or delayed job is removed from the broker.
   */
  async revoke(id: string, reason = 'revoked'): Promise<JobResultRecord> {
    await this.#ready();
    const record = await this.results.get(id);
    if (record?.state === 'REVOKED') return record;
    if (record && isTerminalState(record.state)) {
      throw new JobStateError(id, record.state, `Job ${id} already finished (${record.state}); there is nothing to revoke.`);
    }
    const queueName = record?.queue ?? this.options.defaultQueue;
    const queue = await this.#queue(queueName);
    const job = await queue.getJob(id);
    if (!record && !job) throw new JobNotFoundError(id, ` in the result backend or queue "${queueName}"`);
    const state = job ? await job.getState() : 'unknown';
    if (!record && (state === 'completed' || state === 'failed')) {
      throw new JobStateError(id, state, `Job ${id} already ${state}; there is nothing to revoke.`);
    }
    const revoked = await this.results.revoke(
      id,
      { task: record?.task ?? job?.name ?? 'unknown', queue: queueName, attempts: record?.attempts ?? job?.opts.attempts ?? 1 },
      reason,
    );
    if (REMOVABLE_STATES.has(state)) {
      // 0 means a worker took it meanwhile: the REVOKED record and its notification stop it.
      await queue.remove(id);
    }
    this.#logger.info('Job revoked', { jobId: id, queue: queueName, state });
    return revoked;
  }

  /** PINGs the broker and the result backend. */
  checkHealth(): Promise<HealthReport> {
    return this.connections.checkHealth();
  }

  /**
   * Closes the BullMQ queues, the result backend's subscriber, then the connections (only if
   * the producer made them). Safe to call twice.
   */
  close(): Promise<void> {
    this.#closePromise ??= (async () => {
      this.#state = 'closing';
      const steps: Array<[string, () => Promise<void>]> = [
        ['queues', async () => {
          const queues = await Promise.allSettled([...this.#queues.values()]);
          await Promise.all(queues.map(q => (q.status === 'fulfilled' ? q.value.close() : undefined)));
        }],
        ['result backend', () => this.results.close()],
        ['connections', () => (this.#ownsConnections ? this.connections.close() : Promise.resolve())],
      ];
      for (const [what, step] of steps) {
        try {
          await step();
        } catch (err) {
          this.#logger.warn(`Closing the producer's ${what} failed`, { error: err });
        }
      }
      this.#queues.clear();
      this.#state = 'closed';
    })();
    return this.#closePromise;
  }
}

/** Builds a producer; connections open on first use (or `await producer.connect()`). */
export function createProducer(options?: ProducerOptions): Producer {
  return new Producer(options);
}
