import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { type JobErrorInfo, type Logger, type Routes } from '@taskline/shared';
import { isFinalAnswer, jobMeta, scrubSecrets, toJobErrorInfo, type RecordBase, type RedisService, type ResultBackend, type TransitionAnswer, type TransitionOp } from '@taskline/shared/internal';
import { encodeBackoff } from './backoff.js';
import { JobRevokedError, StaleDeliveryError, TimeLimitError, UnknownTaskError, WorkerShutdownError } from './errors.js';
import { AttemptAbort, type Abortable } from './attempt-abort.js';
import { runHandler, serialiseResult, type AttemptMetrics } from './attempt.js';
import type { HandlerPool } from './isolation/handler-pool.js';
import { PendingStart } from './pending-start.js';
import type { RevokedJobs } from './revoked-jobs.js';
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

type Intended = 'SUCCESS' | 'RETRY' | 'FAILURE';

/**
 * The BullMQ processor for one queue. Per job: rate limit (broker); the in-memory revoke check;
 * STARTED (held back briefly, or awaited first for a redelivered job); the handler under its
 * signal; then the outcome as one compare-and-set on the record, and the broker told to agree
 * with whatever the record says (completed for SUCCESS, failed for FAILURE or REVOKED).
 */
export function createJobProcessor(deps: JobRunnerDeps) {
  const { tasks, queue, metrics } = deps;
  const known = [...tasks.tasks.keys()];
  const misrouted = new Set<string>();
  // Made once per task (or label set) and kept: building these per job is measurable.
  const backoffOf = perKey((task: ResolvedTask) => encodeBackoff(task.backoff));
  const latency = metrics.latency.labels({ queue });
  const active = metrics.active.labels({ queue });
  const overrunning = metrics.overrunning.labels({ queue });
  const attemptMetrics = perKey((task: string): AttemptMetrics => ({ active, overrunning, duration: metrics.duration.labels({ task, queue }) }));
  const outcomeCounter = perKey((task: string) => perKey((outcome: Outcome) => metrics.jobs.labels({ task, queue, outcome })));
  const count = (task: string, outcome: Outcome): void => outcomeCounter(task)(outcome).inc();

  /** Makes the broker agree with the record: returns (completed) or throws (failed / retried). */
  function agree(answer: TransitionAnswer, intended: Intended, job: Job, task: string, thrown: unknown, logger: () => Logger): null {
    if (answer === 'OK' || answer === 'REDELIVERED') {
      if (intended === 'SUCCESS') return null;
      const error = thrown instanceof Error ? thrown : new Error(errorInfo(thrown).message);
      if (intended === 'RETRY') throw error;
      throw error instanceof UnrecoverableError ? error : new UnrecoverableError(error.message);
    }
    if (answer === 'STALE') {
      metrics.refusedWrites.inc({ queue, reason: 'stale' });
      logger().warn('This delivery lost the job to a newer one; its outcome was discarded', { delivery: job.attemptsStarted });
      throw new StaleDeliveryError(job.id ?? '', job.attemptsStarted);
    }
    if (answer === 'REVOKED') {
      count(task, 'revoked');
      logger().info('The job was revoked; stored REVOKED');
      throw new UnrecoverableError(new JobRevokedError(job.id ?? '').message);
    }
    // Final already (an earlier delivery stored it): follow the record.
    if (answer === 'SUCCESS' || answer === 'FAILURE') {
      if (intended !== answer) metrics.refusedWrites.inc({ queue, reason: 'final' });
      if (answer === 'SUCCESS') return null;
      throw new UnrecoverableError(`Job ${job.id ?? ''} already ended FAILURE in the result backend.`);
    }
    return null;
  }

  // Two parameters on purpose: BullMQ then makes no AbortController of its own per job (it only
  // aborts through cancelJob, which taskline does not use; forced shutdowns abort through `running`).
  return async function processJob(job: Job, token?: string): Promise<null> {
    const jobId = job.id ?? '';
    const delivery = job.attemptsStarted > 0 ? job.attemptsStarted : 1;
    const task = tasks.tasks.get(job.name);
    // The job's child logger is made on first use: one per job is measurable on the hot path.
    let bound: Logger | null = null;
    const logger = (): Logger => (bound ??= deps.logger.child({ jobId, task: job.name, queue }));
    const now = Date.now();
    const meta = jobMeta(job.opts);
    const base: RecordBase = {
      task: job.name,
      queue,
      attempt: job.attemptsMade + 1,
      attempts: job.opts.attempts || (task?.attempts ?? 1),
      enqueuedAt: job.timestamp,
      startedAt: now,
      finishedAt: null,
      updatedAt: now,
      worker: deps.workerId,
      ...(meta.retryOf ? { retryOf: meta.retryOf } : {}),
    };
    const results = deps.bridge?.resultsFor(job) ?? deps.results;
    const write = (kind: TransitionOp['kind'], state: TransitionOp['state'], extra: Pick<TransitionOp, 'outcome' | 'outcomeJson' | 'progress'> = {}) =>
      results.transition({ kind, id: jobId, delivery, state, base: { ...base }, ...extra });

    if (!task) {
      const error = new UnknownTaskError(job.name, queue, known);
      base.finishedAt = base.updatedAt;
      const answer = await write('write', 'FAILURE', { outcome: { error: errorInfo(error) } });
      if (answer === 'OK') count(job.name, 'failure');
      return agree(answer, 'FAILURE', job, job.name, new UnrecoverableError(error.message), logger);
    }
    const routed = deps.routes.queueFor(task.name);
    if (routed !== null && routed !== queue && !misrouted.has(task.name)) {
      misrouted.add(task.name);
      deps.logger.warn('Consuming a task from a queue its route does not name; check TASKLINE_ROUTES is the same for every process', {
        task: task.name,
        queue,
        routedTo: routed,
      });
    }
    // Only what the caller set travels with the job; the task's definition fills the rest, on
    // every attempt (BullMQ decides retries and backoff from these in-memory options).
    if (!job.opts.attempts) job.opts.attempts = task.attempts;
    job.opts.backoff ??= backoffOf(task);
    base.attempts = job.opts.attempts;
    const timeoutMs = meta.timeoutMs === undefined ? task.timeoutMs : Math.min(meta.timeoutMs, task.timeoutMs ?? meta.timeoutMs);
    base.timeoutMs = timeoutMs;

    if (task.rateLimit && token) {
      const retryAt = await deps.rateLimiter.acquire(deps.broker.client(), task.name, task.rateLimit);
      if (retryAt > 0) {
        await job.moveToDelayed(retryAt, token);
        throw new DelayedError(`Task "${task.name}" is over its rate limit; delayed until ${new Date(retryAt).toISOString()}.`);
      }
    }
    if (job.attemptsMade === 0 && job.attemptsStarted <= 1) {
      latency.observe(Math.max(0, Date.now() - job.timestamp - (job.opts.delay ?? 0)) / 1000);
    }
    // A job started before and not ended (lock lost, forced shutdown, rate limit) may have an
    // outcome already: read the record before running it again.
    const redelivery = job.attemptsStarted > job.attemptsMade + 1 || job.stalledCounter > 0;
    if (redelivery) base.redelivered = job.stalledCounter > 0;
    const startOp: TransitionOp = { kind: 'write', id: jobId, delivery, state: 'STARTED', base: { ...base } };
    const gate = deps.bridge?.beforeStart(job);
    const refused = gate ? await gate : null;
    if (refused) {
      base.finishedAt = base.updatedAt;
      const answer = await write('write', 'FAILURE', { outcome: { error: errorInfo(refused) } });
      if (answer === 'OK') count(task.name, 'failure');
      return agree(answer, 'FAILURE', job, task.name, new UnrecoverableError(refused.message), logger);
    }
    if (deps.revoked.has(jobId) || redelivery) {
      const answer = await results.transition(startOp);
      if (answer !== 'OK' && answer !== 'REDELIVERED') return agree(answer, 'SUCCESS', job, task.name, null, logger);
      if (answer === 'REDELIVERED') base.redelivered = true;
    }

    const controller = new AttemptAbort();
    deps.running.set(jobId, controller);
    const start =
      deps.revoked.has(jobId) || redelivery
        ? null
        : new PendingStart(results, startOp, deps.startedDelayMs, {
            onAnswer: answer => {
              if (answer === 'REVOKED') controller.abort(new JobRevokedError(jobId));
              else if (answer === 'STALE' || isFinalAnswer(answer)) controller.abort(new StaleDeliveryError(jobId, delivery));
            },
            onError: err => logger().warn('Could not store STARTED; the final state is still written', { error: err }),
          });
    const isolation = deps.isolationOf(task);
    try {
      const outcome = await runHandler({
        ...(isolation === null
          ? {}
          : {
              invoke: ctx =>
                deps.pool(isolation).run({
                  task: task.name,
                  data: job.data,
                  ctx: { jobId, task: task.name, queue, attempt: ctx.attempt, attempts: ctx.attempts, delivery, redelivered: ctx.redelivered },
                  // The hard limit: the task's own, or the soft one plus the kill grace.
                  hardTimeoutMs: minOf(task.hardTimeoutMs, timeoutMs === null ? null : timeoutMs + deps.killGraceMs),
                  killGraceMs: deps.killGraceMs,
                  signal: controller.signal,
                  onProgress: value => void ctx.progress(value as number | object).catch((err: unknown) => logger().warn('An isolated handler reported an invalid progress value', { error: err })),
                  onLog: (level, message, fields) => logger()[level](message, fields),
                }),
            }),
        task,
        job,
        queue,
        timeoutMs,
        controller,
        redelivered: base.redelivered === true,
        delivery,
        metrics: attemptMetrics(task.name),
        logger,
        progress: async value => {
          await start?.flush();
          await write('progress', 'STARTED', { progress: value });
        },
        progressIntervalMs: deps.progressIntervalMs,
      });
      start?.cancel();
      const finished = Date.now();
      base.updatedAt = finished;

      let thrown: unknown = outcome.ok ? undefined : outcome.error;
      if (outcome.ok) {
        const serialised = serialiseResult(task.name, outcome.value, deps.maxResultBytes);
        if (serialised.ok) {
          base.finishedAt = finished;
          const answer = await write('write', 'SUCCESS', { outcomeJson: serialised.json, ...progressOf(outcome) });
          if (answer === 'OK') count(task.name, 'success');
          return agree(answer, 'SUCCESS', job, task.name, null, logger);
        }
        thrown = serialised.error;
      }

      const reason: unknown = controller.reason;
      if (reason instanceof WorkerShutdownError) {
        // Hand the job straight back (without using up an attempt) rather than leave it to the
        // stalled check; if the broker is unreachable the lock expiry redelivers it instead.
        logger().warn('A job was aborted by a forced shutdown; it goes back to the queue');
        if (token) await job.moveToDelayed(Date.now(), token).catch(() => undefined);
        throw new DelayedError(reason.message);
      }
      if (reason instanceof TimeLimitError || reason instanceof JobRevokedError || reason instanceof StaleDeliveryError) thrown = reason;
      const error = errorInfo(thrown);
      const willRetry = !(thrown instanceof UnrecoverableError) && !(reason instanceof JobRevokedError) && base.attempt < (base.attempts ?? 1);
      const intended: Intended = willRetry ? 'RETRY' : 'FAILURE';
      if (!willRetry) base.finishedAt = finished;
      const answer = await write('write', intended, { outcome: { error }, ...progressOf(outcome) });
      if (answer === 'OK') {
        count(task.name, willRetry ? 'retry' : 'failure');
        logger().warn(willRetry ? 'Job attempt failed; it will be retried' : 'Job failed', { attempt: base.attempt, attempts: base.attempts, error: error.message });
      }
      return agree(answer, intended, job, task.name, thrown, logger);
    } finally {
      start?.cancel();
      deps.running.delete(jobId);
    }
  };
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

type Outcome = 'success' | 'failure' | 'retry' | 'revoked';

/** `make(key)` once per key, then the same value. */
function perKey<K, T>(make: (key: K) => T): (key: K) => T {
  const made = new Map<K, T>();
  return key => {
    let value = made.get(key);
    if (value === undefined) made.set(key, (value = make(key)));
    return value;
  };
}
