import type { Registry } from 'prom-client';
import { Queue } from 'bullmq';
import { ClosedError, ConnectionError, TasklineError, createConnections, isTerminalState, resolveConnectionOptions, type HealthReport, type JobEvent, type JobResultRecord, type LifecycleState, type Logger, type TasklineConnections } from '@taskline/shared';
import type { JobId, TaskData, TaskMap, TaskMapOf, TaskName, UntypedTasks } from '@taskline/shared';
import { QueueRegistry, ResultBackend, canTransition, isJobId } from '@taskline/shared/job';
import { toConnectionError } from '@taskline/shared/connection';
import { closeInOrder, withTimeout } from '@taskline/shared/process';
import { isResolvedConnectionOptions } from '@taskline/shared/connection';
import { QueueInspector } from '@taskline/shared/ops';
import { schemaProblem } from './known-tasks.js';
import type { RecordOf, TypedBulkJob } from './producer-types.js';
import { addJobs, EnqueueBulkError, prepareJob, type BulkJob, type EnqueueResult, type PreparedJob } from './enqueue.js';
import { endEnqueueSpans, startEnqueueSpans } from './enqueue-tracing.js';
import { JobNotFoundError, JobStateError, ValidationError } from './errors.js';
import { findOnBroker, recordFromBroker, type BrokerJob } from './job-lookup.js';
import { watchJob, type JobWatchEvent } from './job-watch.js';
import { ProducerMetrics, enqueueErrorReason } from './producer-metrics.js';
import { resolveProducerOptions, type EnqueueOptions, type ProducerOptions, type ResolvedProducerOptions } from './options.js';

export type { EnqueueResult, BulkJob, JobWatchEvent };
export type { AnyProducer, RecordOf, TypedBulkJob } from './producer-types.js';

/** `idle` → `starting` (connecting) → `ready` → `closing` → `closed`. */
export type ProducerState = Extract<LifecycleState, 'idle' | 'starting' | 'ready' | 'closing' | 'closed'>;

const REMOVABLE_STATES = new Set(['waiting', 'delayed', 'prioritized', 'paused', 'waiting-children']);
/** How long the list of queues (for finding a job that has no record yet) is reused. */
const QUEUE_LIST_CACHE_MS = 2000;
/** How long `close()` gives the queues, the result backend and the connections, together. */
const CLOSE_GRACE_MS = 10_000;

/**
 * What applications use to enqueue jobs: BullMQ on the broker (deduplication of idempotency keys
 * included, atomically), job records read from the result backend, revoke as compare-and-set.
 * Typed by the tasks (`createProducer<typeof tasks>()`), a wrong task name or data shape does not
 * compile and results have their task's type; untyped, any task and data are accepted.
 */
export class Producer<Tasks extends TaskMap = UntypedTasks> {
  readonly options: ResolvedProducerOptions;
  /** Where the producer's metrics go (expose it at /metrics; the HTTP API does). */
  readonly registry: Registry;
  readonly metrics: ProducerMetrics;
  readonly #connections: TasklineConnections;
  readonly #results: ResultBackend;
  /** Queue counts, failed jobs, pause/resume. */
  readonly inspect: QueueInspector;
  readonly #logger: Logger;
  readonly #ownsConnections: boolean;
  readonly #queues = new Map<string, Promise<Queue>>();
  readonly #queueRegistry: QueueRegistry;
  #queueList: { at: number; names: Promise<string[]> } | null = null;
  #state: ProducerState = 'idle';
  #connecting: Promise<void> | null = null;
  #closePromise: Promise<void> | null = null;

  constructor(options: ProducerOptions = {}) {
    this.options = resolveProducerOptions(options);
    this.#logger = this.options.logger;
    this.#ownsConnections = this.options.connections === null;
    this.#connections =
      this.options.connections ??
      createConnections({
        options: isResolvedConnectionOptions(this.options.connection)
          ? this.options.connection
          : resolveConnectionOptions(this.options.connection, this.options.env),
        role: 'producer',
        component: 'producer',
        logger: this.#logger,
        ...(this.options.registry ? { registry: this.options.registry } : {}),
      });
    this.metrics = new ProducerMetrics(this.options.registry ?? this.#connections.registry);
    this.registry = this.options.registry ?? this.#connections.registry;
    this.#results = new ResultBackend({
      service: this.#connections.backend,
      prefix: this.options.prefix,
      expiresSeconds: this.options.resultExpiresSeconds,
      logger: this.#logger,
    });
    this.#queueRegistry = new QueueRegistry(this.options.prefix);
    this.inspect = new QueueInspector({
      queue: name => this.#queue(name),
      queues: async () => this.#queueRegistry.list(await this.#broker()),
      reenqueue: jobs => this.#enqueue(jobs),
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
      if (this.#state === 'idle') this.#state = 'starting';
      const connecting = this.#ownsConnections && this.#connections.state === 'idle' ? this.#connections.connect() : Promise.resolve();
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

  async #broker() {
    await this.#ready();
    return this.#connections.broker.client();
  }

  #queue(name: string): Promise<Queue> {
    let queue = this.#queues.get(name);
    if (!queue) {
      queue = (async () => {
        await this.#ready();
        const connection = await this.#connections.broker.bullmqConnection(0);
        // The queue is listed for operators and for finding jobs, before its first job exists.
        await this.#queueRegistry.register(connection, [name]);
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

  /**
   * Adds a job. Bad input throws ValidationError before anything reaches Redis; a failure of
   * Redis rejects with a ConnectionError naming the cause (e.g. REDIS_OOM) and the fix.
   */
  async enqueue<Task extends TaskName<Tasks>>(task: Task, data: TaskData<Tasks, Task>, options?: EnqueueOptions): Promise<EnqueueResult<Task>> {
    const [result] = await this.#enqueue([{ task, data, ...(options ? { options } : {}) }]);
    return result as EnqueueResult<Task>;
  }

  /**
   * Adds many jobs: every job is validated first (all or none), then each queue gets one BullMQ
   * addBulk. Results come back in input order. If some adds fail, it rejects with
   * EnqueueBulkError, whose `outcomes` say per job whether it exists (so a retry duplicates nothing).
   */
  enqueueBulk(jobs: Array<TypedBulkJob<Tasks>>): Promise<EnqueueResult[]> {
    return this.#enqueue(jobs);
  }

  async #enqueue(jobs: Array<BulkJob & { retryOf?: string }>): Promise<EnqueueResult[]> {
    const now = Date.now();
    let prepared: PreparedJob[];
    try {
      if (!Array.isArray(jobs)) throw new ValidationError('INVALID_OPTION', 'jobs', 'enqueueBulk takes an array of { task, data, options }.');
      prepared = jobs.map((job, i) => {
        if (job === null || typeof job !== 'object') throw new ValidationError('INVALID_OPTION', `jobs[${i}]`, `jobs[${i}] must be an object { task, data, options }.`);
        return prepareJob(job.task, job.data, job.options, this.options, now, job.retryOf);
      });
    } catch (err) {
      this.#countError(err);
      throw err;
    }
    if (prepared.length === 0) return [];
    await this.#checkSchemas(prepared);
    const spans = startEnqueueSpans(prepared);
    try {
      await this.#ready();
      const results = await this.#withDeadline(
        addJobs(prepared, { queue: name => this.#queue(name), broker: () => this.#connections.broker.client(), results: this.#results, prefix: this.options.prefix }),
      );
      prepared.forEach((p, i) => {
        if (!results[i]?.deduplicated) this.metrics.enqueued.inc({ task: p.task, queue: p.options.queue });
      });
      if (this.#logger.isDebugEnabled()) {
        prepared.forEach((p, i) => this.#logger.debug('Job enqueued', { jobId: results[i]?.id, task: p.task, queue: p.options.queue }));
      }
      endEnqueueSpans(spans, results);
      return results;
    } catch (err) {
      this.#countError(err);
      const mapped = this.#mapError(err);
      endEnqueueSpans(spans, null, mapped);
      throw mapped;
    }
  }

  /** Data that breaks its task's schema (when the producer has the tasks) is refused, all or none. */
  async #checkSchemas(prepared: PreparedJob[]): Promise<void> {
    const error = await schemaProblem(this.options.knownTasks, prepared);
    if (!error) return;
    this.#countError(error);
    throw error;
  }

  #withDeadline<T>(work: Promise<T>): Promise<T> {
    const ms = this.options.enqueueTimeoutMs;
    const { host, port } = this.#connections.broker.target;
    return withTimeout(
      work,
      ms,
      () =>
        new ConnectionError(
          `The enqueue got no answer from Redis within ${ms} ms, so whether its jobs were added is unknown; check the broker (taskline-producer health) or raise the producer's enqueueTimeoutMs, and retry with idempotency keys to be safe.`,
          { code: 'ENQUEUE_TIMEOUT', kind: 'network', retryable: true, service: 'broker', host, port },
        ),
    );
  }

  #mapError(err: unknown): Error {
    // A partial bulk keeps its outcomes; its cause is named like any other error (e.g. REDIS_OOM).
    if (err instanceof EnqueueBulkError && !(err.cause instanceof TasklineError)) return new EnqueueBulkError(err.outcomes, this.#mapError(err.cause));
    if (err instanceof TasklineError) return err;
    return toConnectionError(err, this.#connections.broker.target);
  }

  #countError(err: unknown): void {
    this.metrics.enqueueErrors.inc({ reason: enqueueErrorReason(err) });
  }

  /** Every queue of the deployment (the broker's registry), plus the ones this process uses. */
  #knownQueues(): Promise<string[]> {
    const now = Date.now();
    if (!this.#queueList || now - this.#queueList.at > QUEUE_LIST_CACHE_MS) {
      const names = this.#broker()
        .then(client => this.#queueRegistry.list(client))
        .then(listed => [...new Set([...this.#queues.keys(), this.options.defaultQueue, ...listed])]);
      names.catch(() => (this.#queueList = null));
      this.#queueList = { at: now, names };
    }
    return this.#queueList.names;
  }

  async #findOnBroker(id: string): Promise<BrokerJob | null> {
    try {
      return await findOnBroker(await this.#broker(), this.options.prefix, id, await this.#knownQueues(), name => this.#queue(name));
    } catch (err) {
      throw this.#mapError(err);
    }
  }

  /**
   * The job's record, or `null` if no job has this id. A job that has no record yet reads from
   * the broker: PENDING while it waits, STARTED while a worker holds it.
   */
  async getResult<Task extends TaskName<Tasks> = never>(id: JobId<Task>): Promise<RecordOf<Tasks, Task> | null> {
    return (await this.#getResult(id)) as RecordOf<Tasks, Task> | null;
  }

  async #getResult(id: string): Promise<JobResultRecord | null> {
    // Only job ids reach Redis: another string could name a queue's own keys.
    if (!isJobId(id)) return null;
    await this.#ready();
    const record = await this.#results.get(id);
    if (record) return record;
    const found = await this.#findOnBroker(id);
    if (found && !found.finished) return recordFromBroker(found);
    // It may have ended (or left the broker) between the two reads: its record is written before
    // the broker hears of the outcome, so a second read sees it.
    const again = await this.#results.get(id);
    if (again || !found) return again;
    return recordFromBroker(found);
  }

  /**
   * Resolves with the record once the job is SUCCESS, FAILURE or REVOKED (pub/sub on the job's
   * own channel, one subscriber connection per process). `onEvent` hears every state and progress
   * change meanwhile. Rejects with ResultTimeoutError, or JobNotFoundError for an unknown id.
   */
  async waitForResult<Task extends TaskName<Tasks> = never>(
    id: JobId<Task>,
    options: { timeoutMs: number; signal?: AbortSignal; onProgress?: (progress: unknown) => void; onEvent?: (event: JobEvent) => void },
  ): Promise<RecordOf<Tasks, Task>> {
    return (await this.#waitForResult(id, options)) as RecordOf<Tasks, Task>;
  }

  async #waitForResult(
    id: string,
    options: { timeoutMs: number; signal?: AbortSignal; onProgress?: (progress: unknown) => void; onEvent?: (event: JobEvent) => void },
  ): Promise<JobResultRecord> {
    const timeoutMs = options?.timeoutMs;
    if (typeof timeoutMs !== 'number' || !Number.isInteger(timeoutMs) || timeoutMs < 1) {
      throw new ValidationError('INVALID_OPTION', 'timeoutMs', 'waitForResult needs { timeoutMs }, a whole number of milliseconds ≥ 1.');
    }
    if (!isJobId(id)) throw new JobNotFoundError(id, ' (it is not a job id)');
    await this.#ready();
    const record = await this.#results.get(id);
    if (record && isTerminalState(record.state)) return record;
    // Only a record ends a wait: a job the broker failed without one gets it from a worker's failed-job settler.
    // The broker only tells an unknown id apart: if it cannot answer now, the (bounded) wait goes on.
    if (!record && !(await this.#findOnBroker(id).catch(() => 'unreachable')) && !(await this.#results.get(id))) {
      throw new JobNotFoundError(id, ' in the result backend or on the broker');
    }
    const { onProgress, onEvent } = options;
    return this.#results.waitFor(id, {
      timeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
      onEvent: event => {
        onEvent?.(event);
        if (event.progress !== undefined) onProgress?.(event.progress);
      },
    });
  }

  /**
   * Yields the job's changes as they happen: first its current state, then every state and
   * progress change, ending with an event that carries the final record (`final: true`).
   * Ends early (without a final event) on `signal` or after `timeoutMs` (default: 1 hour).
   */
  watch(id: string, options: { timeoutMs?: number; signal?: AbortSignal } = {}): AsyncGenerator<JobWatchEvent> {
    return watchJob({ current: () => this.#getResult(id), results: this.#results }, id, options);
  }

  /**
   * Cancels a job, as a compare-and-set on its record: if the job has not ended, it becomes
   * REVOKED for good (no later outcome is ever stored; a running handler is told through
   * `ctx.signal`; a waiting or delayed job leaves the broker) and the REVOKED record is returned.
   * If it already ended, nothing changes and JobStateError says in which state.
   */
  async revoke(id: string, reason = 'revoked'): Promise<JobResultRecord> {
    if (!isJobId(id)) throw new JobNotFoundError(id, ' (it is not a job id)');
    await this.#ready();
    const record = await this.#results.get(id);
    if (record?.state === 'REVOKED') return record;
    if (record && !canTransition(record.state, 'REVOKED')) {
      throw new JobStateError(id, record.state, `Job ${id} already finished (${record.state}); there is nothing to revoke.`);
    }
    const found = record ? null : await this.#findOnBroker(id);
    if (!record && !found) {
      // It may have ended and left the broker between the two reads: its record, written first, says how.
      if (await this.#results.get(id)) return this.revoke(id, reason);
      throw new JobNotFoundError(id, ' in the result backend or on the broker');
    }
    // A job the broker failed before any record was stored (its worker lost, a settle pass not yet
    // run) has no outcome yet: the compare-and-set below decides, as for any job not ended.
    if (found?.brokerState === 'completed') {
      throw new JobStateError(id, found.brokerState, `Job ${id} already ${found.brokerState}; there is nothing to revoke.`);
    }
    const queueName = record?.queue ?? found?.queue ?? this.options.defaultQueue;
    const task = record?.task ?? found?.job.name ?? 'unknown';
    const answer = await this.#results.revoke(id, { reason, task, queue: queueName });
    if (answer !== 'REVOKED') {
      throw new JobStateError(id, answer, `Job ${id} finished (${answer}) before the revoke landed; nothing changed.`);
    }
    // The marker is in place: a waiting or delayed job can leave the broker. One that a worker
    // took meanwhile cannot (0): the marker turns whatever it does into REVOKED.
    const queue = await this.#queue(queueName);
    const state = found?.brokerState ?? (await queue.getJobState(id).catch(() => 'unknown'));
    if (REMOVABLE_STATES.has(state)) await queue.remove(id).catch(() => 0);
    this.#logger.info('Job revoked', { jobId: id, queue: queueName, state });
    const revoked = await this.#results.get(id);
    return revoked ?? { id, task, queue: queueName, state: 'REVOKED', reason, attempt: 0, attempts: null, enqueuedAt: null, startedAt: null, finishedAt: new Date().toISOString(), updatedAt: new Date().toISOString() };
  }

  /** PINGs the broker and the result backend. */
  checkHealth(): Promise<HealthReport> {
    return this.#connections.checkHealth();
  }

  /**
   * Closes the BullMQ queues, the result backend's subscriber, then the connections (only if
   * the producer made them), within 10 s in all. Safe to call twice.
   */
  close(): Promise<void> {
    this.#closePromise ??= (async () => {
      this.#state = 'closing';
      await closeInOrder(
        [
          {
            name: 'queues',
            close: async () => {
              const queues = await Promise.allSettled([...this.#queues.values()]);
              await Promise.all(queues.map(q => (q.status === 'fulfilled' ? q.value.close() : undefined)));
            },
          },
          { name: 'result backend', close: () => this.#results.close() },
          { name: 'connections', close: () => (this.#ownsConnections ? this.#connections.close() : undefined) },
        ],
        CLOSE_GRACE_MS,
        { logger: this.#logger, owner: 'the producer' },
      );
      this.#queues.clear();
      this.#state = 'closed';
    })();
    return this.#closePromise;
  }
}

/**
 * Builds a producer; connections open on first use (or `await producer.connect()`). Typed by the
 * tasks module: `createProducer<typeof tasks>()` (with `import type tasks from './tasks.js'`),
 * or `createProducer({ tasks })`, which also validates data with the tasks' schemas.
 */
export function createProducer<T = UntypedTasks>(options?: ProducerOptions & { tasks?: T & ProducerOptions['tasks'] }): Producer<TaskMapOf<T>> {
  return new Producer<TaskMapOf<T>>(options);
}
