import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { type JobErrorInfo, type Logger, type Routes } from '@taskline/shared';
import { checkSchema, describeSchemaProblem, isFinalAnswer, jobMeta, toJobErrorInfo, type RecordBase, type ResultBackend, type TransitionAnswer, type TransitionOp } from '@taskline/shared/job';
import { scrubSecrets } from '@taskline/shared/process';
import { type RedisService } from '@taskline/shared/connection';
import type { Counter, Histogram } from 'prom-client';
import { encodeBackoff } from './backoff.js';
import { InvalidJobDataError, JobRevokedError, StaleDeliveryError, TimeLimitError, UnknownTaskError, WorkerShutdownError } from './errors.js';
import { AttemptAbort, type Abortable } from './attempt-abort.js';
import { runHandler, serialiseResult, type AttemptInput, type AttemptMetrics, type AttemptOutcome as HandlerOutcome } from './attempt.js';
import { decideOutcome, type JobOutcome, type OutcomeDecision, type WrittenState } from './attempt-outcome.js';
import type { HandlerPool } from './isolation/handler-pool.js';
import { PendingStart } from './pending-start.js';
import type { RevokedJobs } from './revoked-jobs.js';
import { logJobSucceeded } from './job-log.js';
import type { TaskRateLimiter } from './rate-limiter.js';
import type { IsolationKind, ResolvedTask, TaskSet } from './tasks.js';
import type { WorkerMetrics } from './worker-metrics.js';

export interface JobRunnerDeps {
  tasks: TaskSet;
  queue: string;
  broker: RedisService;
  results: ResultBackend;
  revoked: RevokedJobs;
  rateLimiter: TaskRateLimiter;
  metrics: WorkerMetrics;
  logger: Logger;
  /** `host:pid`, stored on each record. */
  workerId: string;
  /** Running attempts by job id, shared by all queues (revokes and forced shutdowns abort them). */
  running: Map<string, Abortable>;
  /** How long STARTED is held back; a job done sooner writes only its final record. */
  startedDelayMs: number;
  maxResultBytes: number;
  progressIntervalMs: number;
  /** The shared routes: a task consumed from a queue its route does not name is warned about once. */
  routes: Routes;
  /** Where each task's handler runs (`null`: here), and the pool of runners of a kind. */
  isolationOf(task: ResolvedTask): IsolationKind | null;
  pool(kind: IsolationKind): HandlerPool;
  killGraceMs: number;
  /** Per-job hooks of a bridge that feeds these queues (the Celery intake); none by default. */
  bridge?: JobBridge | null;
}

/**
 * What a bridge may change per job, decided from the job itself: a gate before the handler (an
 * error it answers ends the job as FAILURE with that error, the handler not run), and the result
 * backend the job's transitions go through (to write them elsewhere too).
 */
export interface JobBridge {
  beforeStart(job: Job): Promise<Error | null> | null;
  resultsFor(job: Job): ResultBackend | null;
}

/**
 * The BullMQ processor for one queue. Per job: rate limit (broker); the in-memory revoke check;
 * STARTED (held back briefly, or awaited first for a redelivered job); the handler under its
 * signal; then the outcome as one compare-and-set on the record, and the broker told to agree
 * with whatever the record says (decideOutcome: completed for SUCCESS, failed for FAILURE or REVOKED).
 */
export function createJobProcessor(deps: JobRunnerDeps) {
  const runner = new JobRunner(deps);
  // Two parameters on purpose: BullMQ then makes no AbortController of its own per job (it only
  // aborts through cancelJob, which taskline does not use; forced shutdowns abort through `running`).
  return function processJob(job: Job, token?: string): Promise<null> {
    return runner.process(job, token);
  };
}

/** One delivery of one job, as the runner's steps share it. */
interface Delivery {
  job: Job;
  id: string;
  /** BullMQ's `attemptsStarted`, at least 1: the record refuses writes from older ones. */
  number: number;
  /** The record's base, updated as the attempt goes; each write sends a copy. */
  base: RecordBase;
  logger: () => Logger;
  /** Where this job's transitions go: the result backend, or a bridge's wrapper of it. */
  results: ResultBackend;
}

type WriteExtra = Pick<TransitionOp, 'outcome' | 'outcomeJson' | 'progress'>;
type JobMeta = ReturnType<typeof jobMeta>;

class JobRunner {
  readonly #deps: JobRunnerDeps;
  readonly #known: string[];
  readonly #misrouted = new Set<string>();
  // Made once per task (or label set) and kept: building these per job is measurable.
  readonly #backoffOf = perKey((task: ResolvedTask) => encodeBackoff(task.backoff));
  readonly #latency: Histogram.Internal<string>;
  readonly #attemptMetrics: (task: string) => AttemptMetrics;
  readonly #outcomeCounter: (task: string) => (outcome: JobOutcome) => Counter.Internal;

  constructor(deps: JobRunnerDeps) {
    const { metrics, queue } = deps;
    this.#deps = deps;
    this.#known = [...deps.tasks.byName.keys()];
    this.#latency = metrics.latency.labels({ queue });
    const active = metrics.active.labels({ queue });
    const overrunning = metrics.overrunning.labels({ queue });
    this.#attemptMetrics = perKey((task: string): AttemptMetrics => ({ active, overrunning, duration: metrics.duration.labels({ task, queue }) }));
    this.#outcomeCounter = perKey((task: string) => perKey((outcome: JobOutcome) => metrics.jobs.labels({ task, queue, outcome })));
  }

  async process(job: Job, token: string | undefined): Promise<null> {
    const deps = this.#deps;
    const task = deps.tasks.byName.get(job.name);
    const meta = jobMeta(job.opts);
    const d = this.#delivery(job, task, meta);
    if (!task) return this.#failUnknownTask(d);
    if (task.schema) {
      const failed = await this.#failIfInvalid(d, task);
      if (failed !== undefined) return failed;
    }
    this.#warnIfMisrouted(task);
    const timeoutMs = this.#applyTaskDefaults(job, task, meta, d.base);
    await this.#rateLimit(job, task, token);
    if (job.attemptsMade === 0 && job.attemptsStarted <= 1) {
      this.#latency.observe(Math.max(0, Date.now() - job.timestamp - (job.opts.delay ?? 0)) / 1000);
    }
    // A job started before and not ended (lock lost, forced shutdown, rate limit) may have an
    // outcome already: read the record before running it again.
    const redelivery = job.attemptsStarted > job.attemptsMade + 1 || job.stalledCounter > 0;
    if (redelivery) d.base.redelivered = job.stalledCounter > 0;
    const startOp: TransitionOp = { kind: 'write', id: d.id, delivery: d.number, state: 'STARTED', base: { ...d.base } };
    const refused = await (deps.bridge?.beforeStart(job) ?? null);
    if (refused) return this.#failBeforeStart(d, task.name, refused);
    const startFirst = deps.revoked.has(d.id) || redelivery;
    if (startFirst) {
      const answer = await d.results.transition(startOp);
      const decision = decideOutcome('STARTED', answer);
      if (decision.step !== 'run') return this.#act(decision, 'STARTED', d, task.name, null);
      if (answer === 'REDELIVERED') d.base.redelivered = true;
    }
    return this.#runAttempt(d, task, timeoutMs, startFirst ? null : startOp, token);
  }

  #delivery(job: Job, task: ResolvedTask | undefined, meta: JobMeta): Delivery {
    const id = job.id ?? '';
    const { queue, workerId } = this.#deps;
    const now = Date.now();
    // The job's child logger is made on first use: one per job is measurable on the hot path.
    let bound: Logger | null = null;
    const logger = (): Logger => (bound ??= this.#deps.logger.child({ jobId: id, task: job.name, queue }));
    const base: RecordBase = {
      task: job.name,
      queue,
      attempt: job.attemptsMade + 1,
      attempts: job.opts.attempts || (task?.attempts ?? 1),
      enqueuedAt: job.timestamp,
      startedAt: now,
      finishedAt: null,
      updatedAt: now,
      worker: workerId,
      ...(meta.retryOf ? { retryOf: meta.retryOf } : {}),
    };
    const results = this.#deps.bridge?.resultsFor(job) ?? this.#deps.results;
    return { job, id, number: job.attemptsStarted > 0 ? job.attemptsStarted : 1, base, logger, results };
  }

  #write(d: Delivery, kind: TransitionOp['kind'], state: TransitionOp['state'], extra: WriteExtra = {}): Promise<TransitionAnswer> {
    return d.results.transition({ kind, id: d.id, delivery: d.number, state, base: { ...d.base }, ...extra });
  }

  /** A bridge's gate refused the job (a Celery task past its `expires`): FAILURE, the handler not run. */
  async #failBeforeStart(d: Delivery, task: string, refused: Error): Promise<null> {
    d.base.finishedAt = d.base.updatedAt;
    const answer = await this.#write(d, 'write', 'FAILURE', { outcome: { error: errorInfo(refused) } });
    return this.#act(decideOutcome('FAILURE', answer), 'FAILURE', d, task, new UnrecoverableError(refused.message));
  }

  async #failUnknownTask(d: Delivery): Promise<null> {
    const error = new UnknownTaskError(d.job.name, this.#deps.queue, this.#known);
    d.base.finishedAt = d.base.updatedAt;
    const answer = await this.#write(d, 'write', 'FAILURE', { outcome: { error: errorInfo(error) } });
    return this.#act(decideOutcome('FAILURE', answer), 'FAILURE', d, d.job.name, new UnrecoverableError(error.message));
  }

  /**
   * Data that breaks the task's schema fails at once (no retry could fix it); valid data is
   * replaced by the schema's output, which the handler gets (undefined: go on).
   */
  async #failIfInvalid(d: Delivery, task: ResolvedTask): Promise<null | undefined> {
    if (!task.schema) return undefined;
    const checked = await checkSchema(task.schema, d.job.data);
    if (checked.ok) {
      d.job.data = checked.value;
      return undefined;
    }
    const error = new InvalidJobDataError(describeSchemaProblem(task.name, checked), checked.problem.field);
    d.base.finishedAt = d.base.updatedAt;
    const answer = await this.#write(d, 'write', 'FAILURE', { outcome: { error: errorInfo(error) } });
    return this.#act(decideOutcome('FAILURE', answer), 'FAILURE', d, task.name, new UnrecoverableError(error.message));
  }

  #warnIfMisrouted(task: ResolvedTask): void {
    const { queue, routes } = this.#deps;
    const routed = routes.queueFor(task.name);
    if (routed === null || routed === queue || this.#misrouted.has(task.name)) return;
    this.#misrouted.add(task.name);
    this.#deps.logger.warn('Consuming a task from a queue its route does not name; check TASKLINE_ROUTES is the same for every process', {
      task: task.name,
      queue,
      routedTo: routed,
    });
  }

  /** Fills the job's options from the task; returns the time limit in force. */
  #applyTaskDefaults(job: Job, task: ResolvedTask, meta: JobMeta, base: RecordBase): number | null {
    // Only what the caller set travels with the job; the task's definition fills the rest, on
    // every attempt (BullMQ decides retries and backoff from these in-memory options).
    if (!job.opts.attempts) job.opts.attempts = task.attempts;
    job.opts.backoff ??= this.#backoffOf(task);
    base.attempts = job.opts.attempts;
    const timeoutMs = meta.timeoutMs === undefined ? task.timeoutMs : Math.min(meta.timeoutMs, task.timeoutMs ?? meta.timeoutMs);
    base.timeoutMs = timeoutMs;
    return timeoutMs;
  }

  /** Over the task's rate limit: the job goes back to the broker, delayed, and BullMQ is told so. */
  async #rateLimit(job: Job, task: ResolvedTask, token: string | undefined): Promise<void> {
    if (!task.rateLimit || !token) return;
    const retryAt = await this.#deps.rateLimiter.acquire(this.#deps.broker.client(), task.name, task.rateLimit);
    if (retryAt <= 0) return;
    await job.moveToDelayed(retryAt, token);
    throw new DelayedError(`Task "${task.name}" is over its rate limit; delayed until ${new Date(retryAt).toISOString()}.`);
  }

  async #runAttempt(d: Delivery, task: ResolvedTask, timeoutMs: number | null, startOp: TransitionOp | null, token: string | undefined): Promise<null> {
    const deps = this.#deps;
    const controller = new AttemptAbort();
    deps.running.set(d.id, controller);
    const start = startOp === null ? null : this.#pendingStart(d, startOp, controller);
    try {
      const outcome = await runHandler({
        ...this.#isolated(d, task, timeoutMs, controller),
        task,
        job: d.job,
        queue: deps.queue,
        timeoutMs,
        controller,
        redelivered: d.base.redelivered === true,
        delivery: d.number,
        metrics: this.#attemptMetrics(task.name),
        logger: d.logger,
        progress: async value => {
          await start?.flush();
          await this.#write(d, 'progress', 'STARTED', { progress: value });
        },
        progressIntervalMs: deps.progressIntervalMs,
      });
      start?.cancel();
      return await this.#finish(d, task, outcome, controller, token);
    } finally {
      start?.cancel();
      deps.running.delete(d.id);
    }
  }

  /** STARTED, held back; an answer saying the job is revoked, final or lost aborts the attempt. */
  #pendingStart(d: Delivery, startOp: TransitionOp, controller: AttemptAbort): PendingStart {
    return new PendingStart(d.results, startOp, this.#deps.startedDelayMs, {
      onAnswer: answer => {
        if (answer === 'REVOKED') controller.abort(new JobRevokedError(d.id));
        else if (answer === 'STALE' || isFinalAnswer(answer)) controller.abort(new StaleDeliveryError(d.id, d.number));
      },
      onError: err => d.logger().warn('Could not store STARTED; the final state is still written', { error: err }),
    });
  }

  /** Where the handler runs when the task is isolated: a pooled runner of its kind (`{}`: here). */
  #isolated(d: Delivery, task: ResolvedTask, timeoutMs: number | null, controller: AttemptAbort): Pick<AttemptInput, 'invoke'> {
    const kind = this.#deps.isolationOf(task);
    if (kind === null) return {};
    const { queue, killGraceMs } = this.#deps;
    return {
      invoke: ctx =>
        this.#deps.pool(kind).run({
          task: task.name,
          data: d.job.data,
          ctx: { jobId: d.id, task: task.name, queue, attempt: ctx.attempt, attempts: ctx.attempts, delivery: d.number, redelivered: ctx.redelivered },
          // The hard limit: the task's own, or the soft one plus the kill grace.
          hardTimeoutMs: minOf(task.hardTimeoutMs, timeoutMs === null ? null : timeoutMs + killGraceMs),
          killGraceMs,
          signal: controller.signal,
          onProgress: value => void ctx.progress(value as number | object).catch((err: unknown) => d.logger().warn('An isolated handler reported an invalid progress value', { error: err })),
          onLog: (level, message, fields) => d.logger()[level](message, fields),
        }),
    };
  }

  /** Stores how the handler ended (SUCCESS, RETRY or FAILURE) and makes the broker agree. */
  async #finish(d: Delivery, task: ResolvedTask, outcome: HandlerOutcome, controller: AttemptAbort, token: string | undefined): Promise<null> {
    const finished = Date.now();
    const { base } = d;
    base.updatedAt = finished;
    let thrown: unknown = outcome.ok ? undefined : outcome.error;
    if (outcome.ok) {
      const serialised = serialiseResult(task.name, outcome.value, this.#deps.maxResultBytes);
      if (serialised.ok) {
        base.finishedAt = finished;
        const answer = await this.#write(d, 'write', 'SUCCESS', { outcomeJson: serialised.json, ...progressOf(outcome) });
        const decision = decideOutcome('SUCCESS', answer);
        if (decision.count === 'success') logJobSucceeded(this.#deps.logger, task.name, d.id, this.#deps.queue, finished - (base.startedAt ?? finished));
        return this.#act(decision, 'SUCCESS', d, task.name, null);
      }
      thrown = serialised.error;
    }
    const reason: unknown = controller.reason;
    if (reason instanceof WorkerShutdownError) {
      // Hand the job straight back (without using up an attempt) rather than leave it to the
      // stalled check; if the broker is unreachable the lock expiry redelivers it instead.
      d.logger().warn('A job was aborted by a forced shutdown; it goes back to the queue');
      if (token) await d.job.moveToDelayed(Date.now(), token).catch(() => undefined);
      throw new DelayedError(reason.message);
    }
    if (reason instanceof TimeLimitError || reason instanceof JobRevokedError || reason instanceof StaleDeliveryError) thrown = reason;
    const error = errorInfo(thrown);
    const willRetry = !(thrown instanceof UnrecoverableError) && !(reason instanceof JobRevokedError) && base.attempt < (base.attempts ?? 1);
    const state = willRetry ? 'RETRY' : 'FAILURE';
    if (!willRetry) base.finishedAt = finished;
    const decision = decideOutcome(state, await this.#write(d, 'write', state, { outcome: { error }, ...progressOf(outcome) }));
    if (decision.count === 'retry' || decision.count === 'failure') {
      d.logger().warn(willRetry ? 'Job attempt failed; it will be retried' : 'Job failed', { attempt: base.attempt, attempts: base.attempts, error: error.message });
    }
    return this.#act(decision, state, d, task.name, thrown);
  }

  /** Counts, logs and returns (the broker completes the job) or throws (it fails or retries it). */
  #act(decision: OutcomeDecision, written: WrittenState, d: Delivery, task: string, thrown: unknown): null {
    const { metrics, queue } = this.#deps;
    if (decision.count) this.#outcomeCounter(task)(decision.count).inc();
    if (decision.refused) metrics.refusedWrites.inc({ queue, reason: decision.refused });
    switch (decision.step) {
      case 'run': // the caller goes on to the handler
      case 'complete':
        return null;
      case 'retry':
        throw asError(thrown);
      case 'fail': {
        const error = asError(thrown);
        // The cause keeps the handler's own error for the trace (job-tracing.ts).
        throw error instanceof UnrecoverableError ? error : Object.assign(new UnrecoverableError(error.message), { cause: error });
      }
      case 'stale':
        d.logger().warn('This delivery lost the job to a newer one; its outcome was discarded', { delivery: d.job.attemptsStarted });
        throw new StaleDeliveryError(d.id, d.job.attemptsStarted);
      case 'revoked':
        d.logger().info('The job was revoked; stored REVOKED');
        throw new UnrecoverableError(new JobRevokedError(d.id).message);
      case 'already-failed':
        throw new UnrecoverableError(`Job ${d.id} already ended FAILURE in the result backend.`);
      case 'refused':
        throw new Error(`The result backend stored nothing for the ${written} write of job ${d.id}, an answer that write never gets; please report this taskline bug.`);
    }
  }
}

function asError(thrown: unknown): Error {
  return thrown instanceof Error ? thrown : new Error(errorInfo(thrown).message);
}

function minOf(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.min(a, b);
}

function progressOf(outcome: { progress?: unknown }): { progress?: unknown } {
  return outcome.progress === undefined ? {} : { progress: outcome.progress };
}

function errorInfo(thrown: unknown): JobErrorInfo {
  const info = toJobErrorInfo(thrown);
  return { type: info.type, message: scrubSecrets(info.message), stack: info.stack === null ? null : scrubSecrets(info.stack) };
}

/** `make(key)` once per key, then the same value. */
function perKey<K, T>(make: (key: K) => T): (key: K) => T {
  const made = new Map<K, T>();
  return key => {
    let value = made.get(key);
    if (value === undefined) made.set(key, (value = make(key)));
    return value;
  };
}
