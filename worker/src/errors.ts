import { TasklineError } from '@taskline/shared';

/**
 * An attempt ran past its time limit. `soft` (`timeoutMs`): the signal aborted and the attempt
 * failed. `hard` (`hardTimeoutMs`, isolated tasks): the runner was killed.
 */
export class TimeLimitError extends TasklineError {
  override name = 'TimeLimitError';
  readonly limit: 'soft' | 'hard';
  constructor(task: string, timeoutMs: number, limit: 'soft' | 'hard' = 'soft') {
    super(
      'TIME_LIMIT',
      limit === 'soft'
        ? `Task "${task}" ran past its time limit of ${timeoutMs} ms and was aborted; make it faster, honour ctx.signal, or raise timeoutMs.`
        : `Task "${task}" ran past its hard time limit of ${timeoutMs} ms and its isolated runner was killed; make it faster, or raise hardTimeoutMs.`,
    );
    this.limit = limit;
  }
}

/** The job was revoked while it ran: its signal aborted, and it ends REVOKED without a retry. */
export class JobRevokedError extends TasklineError {
  override name = 'JobRevokedError';
  constructor(jobId: string) {
    super('REVOKED', `Job ${jobId} was revoked while running.`);
  }
}

/** The worker was forced to stop while the job ran; the job is redelivered once its lock expires. */
export class WorkerShutdownError extends TasklineError {
  override name = 'WorkerShutdownError';
  constructor() {
    super('WORKER_SHUTDOWN', 'The worker was forced to shut down while the job ran; it will be redelivered to another worker.');
  }
}

/**
 * A job named a task this worker does not define. The message (stored in the job's record, so
 * API clients read it) does not list the module's tasks; `knownTasks` has them for operators.
 */
export class UnknownTaskError extends TasklineError {
  override name = 'UnknownTaskError';
  readonly knownTasks: readonly string[];
  constructor(task: string, queue: string, known: string[]) {
    super(
      'UNKNOWN_TASK',
      `No task named "${task.slice(0, 200)}" is defined in the tasks module of the worker consuming queue "${queue}"; fix the task name or deploy the module that defines it.`,
    );
    this.knownTasks = known;
  }
}

/** A job's data does not match its task's schema: the job fails at once (no retry could fix it). */
export class InvalidJobDataError extends TasklineError {
  override name = 'InvalidJobDataError';
  /** The field at fault, e.g. `data.to`. */
  readonly field: string;
  constructor(message: string, field: string) {
    super('INVALID_DATA', message);
    this.field = field;
  }
}

/** A handler returned something JSON cannot carry (a BigInt, a cycle...). */
export class ResultNotSerializableError extends TasklineError {
  override name = 'ResultNotSerializableError';
  constructor(task: string, cause: unknown) {
    super('RESULT_NOT_JSON', `Task "${task}" returned a value that is not JSON-serialisable (${cause instanceof Error ? cause.message : String(cause)}); return plain data.`, { cause });
  }
}

/**
 * This delivery of the job lost it: the worker stopped renewing the lock (frozen, or a handler
 * blocking the event loop), and the broker handed the job to a newer delivery, which owns its record.
 */
export class StaleDeliveryError extends TasklineError {
  override name = 'StaleDeliveryError';
  constructor(jobId: string, delivery: number) {
    super(
      'STALE_DELIVERY',
      `Delivery ${delivery} of job ${jobId} lost the job to a newer delivery (its lock expired), so its outcome was discarded; keep handlers from blocking the event loop (run CPU-bound tasks isolated) or raise TASKLINE_LOCK_DURATION_MS.`,
    );
  }
}

/** The broker failed the job outside any handler (e.g. it stalled too often); stored as the job's FAILURE. */
export class WorkerLostError extends TasklineError {
  override name = 'WorkerLostError';
  constructor(jobId: string, brokerReason: string) {
    super(
      'WORKER_LOST',
      /stalled more than allowable limit/.test(brokerReason)
        ? `Job ${jobId} was taken back from its worker more often than TASKLINE_MAX_STALLED_COUNT allows (each worker was killed, frozen, or blocked by a handler past its lock), so the broker failed it; let handlers yield or run them isolated, or raise TASKLINE_LOCK_DURATION_MS.`
        : `The broker failed job ${jobId} outside its handler (${brokerReason}); see the worker logs for the cause.`,
    );
  }
}

/** The handler's result is larger than TASKLINE_MAX_RESULT_BYTES. */
export class ResultTooLargeError extends TasklineError {
  override name = 'ResultTooLargeError';
  constructor(task: string, bytes: number, limit: number) {
    super(
      'RESULT_TOO_LARGE',
      `Task "${task}" returned ${bytes} bytes of JSON, over TASKLINE_MAX_RESULT_BYTES (${limit}); store large results elsewhere (S3, a database) and return a reference, or raise the limit.`,
    );
  }
}
