import { TasklineError } from '@taskline/shared';

/** An attempt ran past its task's `timeoutMs`: the signal aborted and the attempt failed. */
export class TimeLimitError extends TasklineError {
  override name = 'TimeLimitError';
  constructor(task: string, timeoutMs: number) {
    super('TIME_LIMIT', `Task "${task}" ran past its time limit of ${timeoutMs} ms and was aborted; make it faster, honour ctx.signal, or raise timeoutMs.`);
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

/** A handler returned something JSON cannot carry (a BigInt, a cycle...). */
export class ResultNotSerializableError extends TasklineError {
  override name = 'ResultNotSerializableError';
  constructor(task: string, cause: unknown) {
    super('RESULT_NOT_JSON', `Task "${task}" returned a value that is not JSON-serialisable (${cause instanceof Error ? cause.message : String(cause)}); return plain data.`, { cause });
  }
}
