import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import {
  scrubSecrets,
  toJobErrorInfo,
  type JobErrorInfo,
  type JobResultRecord,
  type Logger,
  type RedisService,
  type ResultBackend,
} from '@taskline/shared';
import { encodeBackoff } from './backoff.js';
import { JobRevokedError, ResultNotSerializableError, TimeLimitError, UnknownTaskError, WorkerShutdownError } from './errors.js';
import { AttemptAbort, type Abortable } from './attempt-abort.js';
import type { JobStartRecorder } from './job-start.js';
import type { TaskRateLimiter } from './rate-limiter.js';
import type { ResolvedTask, TaskContext, TaskSet } from './tasks.js';
import type { WorkerMetrics } from './worker-metrics.js';

export interface JobRunnerDeps {
  tasks: TaskSet;
  queue: string;
  broker: RedisService;
  results: ResultBackend;
  starts: JobStartRecorder;
  rateLimiter: TaskRateLimiter;
  metrics: WorkerMetrics;
  logger: Logger;
  /** `host:pid`, stored on each record. */
  workerId: string;
  /** Running attempts by job id, shared by all queues (revokes and forced shutdowns abort them). */
  running: Map<string, Abortable>;
}

type Stored = Pick<JobResultRecord, 'state'> & Partial<JobResultRecord>;

/**
 * The BullMQ processor for one queue. Per job: rate limit (broker), then one backend round trip
 * that skips revoked jobs and records STARTED, the handler under its signal, then the outcome.
 * Result writes retry through an outage until their deadline; then the attempt fails with a
 * ResultWriteError and BullMQ retries the job (so a handler may run again: at-least-once).
 */
export function createJobProcessor(deps: JobRunnerDeps) {
  const { tasks, queue, metrics } = deps;
  const known = [...tasks.tasks.keys()];
  // Label-bound metric children, made once: looking labels up per job is measurable.
  const active = metrics.active.labels({ queue });
  const latency = metrics.latency.labels({ queue });
  const perTask = new Map<string, { duration: ReturnType<typeof metrics.duration.labels>; success: ReturnType<typeof metrics.jobs.labels> }>();
  const bound = (task: string) => {
    let entry = perTask.get(task);
    if (!entry) {
      entry = { duration: metrics.duration.labels({ task, queue }), success: metrics.jobs.labels({ task, queue, outcome: 'success' }) };
      perTask.set(task, entry);
    }
    return entry;
  };

  // Two parameters on purpose: BullMQ then makes no AbortController of its own per job (it only
  // aborts through cancelJob, which taskline does not use; forced shutdowns abort through
  // `running`).
  return async function processJob(job: Job, token?: string): Promise<null> {
    const jobId = job.id ?? '';
    const task = tasks.tasks.get(job.name);
    // The job's child logger is made on first use: one per job is measurable on the hot path.
    let bound: Logger | null = null;
    const logger = (): Logger => (bound ??= deps.logger.child({ jobId, task: job.name, queue }));
    if (!task) {
      const error = new UnknownTaskError(job.name, queue, known);
      await writeOutcome(job, null, { state: 'FAILURE', error: errorInfo(error) }, logger);
      metrics.jobs.inc({ task: job.name, queue, outcome: 'failure' });
      throw new UnrecoverableError(error.message);
    }
    // The enqueue call's attempts/backoff win; a job that carries none (BullMQ stores 0) gets the task's.
    if (!job.opts.attempts) job.opts.attempts = task.attempts;
    job.opts.backoff ??= encodeBackoff(task.backoff);
    const attempts = job.opts.attempts;
    const attempt = job.attemptsMade + 1;

    if (task.rateLimit && token) {
      const retryAt = await deps.rateLimiter.acquire(deps.broker.client(), task.name, task.rateLimit);
      if (retryAt > 0) {
        await job.moveToDelayed(retryAt, token);
        throw new DelayedError(`Task "${task.name}" is over its rate limit; delayed until ${new Date(retryAt).toISOString()}.`);
      }
    }
    if (job.attemptsMade === 0 && job.attemptsStarted <= 1) {
      const due = job.timestamp + (job.opts.delay ?? 0);
      latency.observe(Math.max(0, Date.now() - due) / 1000);
    }

    const controller = new AttemptAbort();
    deps.running.set(jobId, controller);
    const startedAt = new Date().toISOString();
    const base = baseRecord(job, task, queue, attempt, attempts, startedAt, deps.workerId);
    try {
      const { revoked, timeoutMs } = await deps.starts.start({ ...base, state: 'STARTED', updatedAt: startedAt });
      if (revoked || controller.reason instanceof JobRevokedError) {
        metrics.jobs.inc({ task: task.name, queue, outcome: 'revoked' });
        logger().info('Skipped a revoked job');
        return null;
      }
      // A time limit given at enqueue wins over the task's.
      const limited = timeoutMs === null ? task : { ...task, timeoutMs };
      return await runAttempt(job, token, limited, controller, base, logger);
    } finally {
      deps.running.delete(jobId);
    }
  };

  async function runAttempt(
    job: Job,
    token: string | undefined,
    task: ResolvedTask,
    controller: AttemptAbort,
    base: JobResultRecord,
    logger: () => Logger,
  ): Promise<null> {
    const timer = task.timeoutMs === null ? null : setTimeout(() => controller.abort(new TimeLimitError(task.name, task.timeoutMs ?? 0)), task.timeoutMs);
    const ctx: TaskContext = {
      jobId: base.id,
      task: task.name,
      queue,
      attempt: base.attempt,
      attempts: base.attempts,
      get signal() {
        return controller.signal;
      },
      get logger() {
        return logger();
      },
      progress: async value => {
        await job.updateProgress(value);
      },
    };
    active.inc();
    const started = performance.now();
    let result: unknown;
    let thrown: unknown;
    let failed = false;
    try {
      result = await untilAborted(() => task.run(job.data, ctx), controller);
    } catch (err) {
      failed = true;
      thrown = err;
    } finally {
      if (timer) clearTimeout(timer);
      active.dec();
      bound(task.name).duration.observe((performance.now() - started) / 1000);
    }

    if (!failed) {
      let json: unknown;
      try {
        json = result === undefined ? null : JSON.parse(JSON.stringify(result));
      } catch (err) {
        failed = true;
        thrown = new ResultNotSerializableError(task.name, err);
      }
      if (!failed) {
        await writeOutcome(job, base, { state: 'SUCCESS', result: json }, logger);
        bound(task.name).success.inc();
        return null;
      }
    }

    const reason: unknown = controller.reason;
    if (reason instanceof JobRevokedError) {
      // The revoker already stored REVOKED; keep it, and do not let BullMQ retry.
      metrics.jobs.inc({ task: task.name, queue, outcome: 'revoked' });
      logger().info('A revoked job was aborted');
      throw new UnrecoverableError(reason.message);
    }
    if (reason instanceof WorkerShutdownError) {
      // Hand the job straight back (without using up an attempt) rather than leave it to the
      // stalled check; if the broker is unreachable the lock expiry redelivers it instead.
      logger().warn('A job was aborted by a forced shutdown; it goes back to the queue');
      if (token) await job.moveToDelayed(Date.now(), token).catch(() => undefined);
      throw new DelayedError(reason.message);
    }
    if (reason instanceof TimeLimitError) thrown = reason;
    const error = errorInfo(thrown);
    const unrecoverable = thrown instanceof UnrecoverableError;
    const willRetry = !unrecoverable && base.attempt < base.attempts;
    await writeOutcome(job, base, { state: willRetry ? 'RETRY' : 'FAILURE', error }, logger);
    metrics.jobs.inc({ task: task.name, queue, outcome: willRetry ? 'retry' : 'failure' });
    logger().warn(willRetry ? 'Job attempt failed; it will be retried' : 'Job failed', { attempt: base.attempt, attempts: base.attempts, error: error.message });
    throw thrown instanceof Error ? thrown : Object.assign(new Error(error.message), { name: error.type });
  }

  async function writeOutcome(job: Job, base: JobResultRecord | null, outcome: Stored, logger: () => Logger): Promise<void> {
    const now = new Date().toISOString();
    const record: JobResultRecord = {
      ...(base ?? baseRecord(job, null, queue, job.attemptsMade + 1, job.opts.attempts ?? 1, null, deps.workerId)),
      ...outcome,
      finishedAt: outcome.state === 'RETRY' ? null : now,
      updatedAt: now,
    };
    try {
      await deps.results.write(record);
    } catch (err) {
      logger().error('Could not store the job state in the result backend; the attempt fails', { state: record.state, error: err });
      throw err;
    }
  }
}

function baseRecord(job: Job, task: ResolvedTask | null, queue: string, attempt: number, attempts: number, startedAt: string | null, worker: string): JobResultRecord {
  return {
    id: job.id ?? '',
    task: task?.name ?? job.name,
    queue,
    state: 'STARTED',
    attempt,
    attempts,
    enqueuedAt: new Date(job.timestamp).toISOString(),
    startedAt,
    finishedAt: null,
    updatedAt: startedAt ?? new Date().toISOString(),
    worker,
  };
}

function errorInfo(thrown: unknown): JobErrorInfo {
  const info = toJobErrorInfo(thrown);
  return { type: info.type, message: scrubSecrets(info.message), stack: info.stack === null ? null : scrubSecrets(info.stack) };
}

/**
 * Runs the handler, but settles as soon as the signal aborts even if the handler ignores it
 * (a never-settling handler cannot hold the slot past its time limit). Whatever the handler
 * does later is swallowed, so it can never become an unhandled rejection.
 */
function untilAborted<T>(run: () => Promise<T> | T, attempt: AttemptAbort): Promise<T> {
  let handler: Promise<T>;
  try {
    handler = Promise.resolve(run());
  } catch (err) {
    return Promise.reject(err);
  }
  handler.catch(() => undefined);
  if (attempt.aborted) return Promise.reject(attempt.reason);
  return new Promise<T>((resolve, reject) => {
    attempt.onAbort(reject);
    handler.then(
      value => {
        attempt.onAbort(null);
        resolve(value);
      },
      (err: unknown) => {
        attempt.onAbort(null);
        reject(err);
      },
    );
  });
}
