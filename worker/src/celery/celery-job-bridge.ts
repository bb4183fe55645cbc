import type { Job } from 'bullmq';
import { TasklineError, type JobResultRecord, type Logger } from '@taskline/shared';
import type { ResultBackend, TransitionAnswer, TransitionOp } from '@taskline/shared/job';
import type { JobBridge } from '../job-runner.js';
import { celeryInfoOf, type CeleryJobInfo } from './celery-job.js';
import { celeryException, revokedException, type CeleryResultWriter } from './celery-results.js';
import type { CeleryCanvas } from './celery-canvas.js';

export interface CeleryJobBridgeDeps {
  results: ResultBackend;
  writer: CeleryResultWriter;
  canvas: CeleryCanvas;
  logger: Logger;
}

/**
 * A Celery job due after its `expires`: it ends without running. Taskline's record says FAILURE
 * with this error (a worker may not write revoke markers: only producers revoke); Celery's record
 * says REVOKED, as a Celery worker would write it.
 */
export class CeleryTaskExpiredError extends TasklineError {
  override name = 'CeleryTaskExpiredError';
  constructor(taskId: string, expiresMs: number) {
    super('CELERY_TASK_EXPIRED', `Celery task ${taskId} expired at ${new Date(expiresMs).toISOString()} (its expires) before it could start; it was not run.`);
  }
}

/**
 * What the job runner does differently for a job that came from Celery: an expired job ends
 * before it starts, and every state the runner stores in taskline's record is also
 * written as Celery's record (unless the message said `ignore_result`), after taskline's own write
 * and before the broker hears of the outcome. A worker killed between the two writes leaves a
 * redelivery that finds taskline's final record and writes Celery's from it.
 */
export class CeleryJobBridge implements JobBridge {
  readonly #deps: CeleryJobBridgeDeps;

  constructor(deps: CeleryJobBridgeDeps) {
    this.#deps = deps;
  }

  beforeStart(job: Job): Promise<Error | null> | null {
    const info = celeryInfoOf(job);
    if (info?.expiresMs == null || Date.now() <= info.expiresMs) return null;
    return Promise.resolve(new CeleryTaskExpiredError(info.taskId, info.expiresMs));
  }

  resultsFor(job: Job): ResultBackend | null {
    const info = celeryInfoOf(job);
    if (!info) return null;
    const results = this.#deps.results;
    const transition = async (op: TransitionOp): Promise<TransitionAnswer> => {
      const answer = await results.transition(op);
      await this.#mirror(job, info, op, answer);
      return answer;
    };
    // Every other member is the backend's own, called on it (its private fields need that receiver).
    return new Proxy(results, {
      get(target, key) {
        if (key === 'transition') return transition;
        const value: unknown = Reflect.get(target, key, target);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  /** A job the broker failed on its own (it stalled too often): Celery's record says FAILURE too. */
  async settled(job: { id: string; opts: object }, error: { type: string; message: string; stack: string | null }): Promise<void> {
    const info = celeryInfoOf(job);
    if (!info || info.ignoreResult) return;
    await this.#deps.writer.write(info.taskId, 'FAILURE', celeryException(error), { parentId: info.parentId, group: info.group, traceback: error.stack });
  }

  async #mirror(job: Job, info: CeleryJobInfo, op: TransitionOp, answer: TransitionAnswer): Promise<void> {
    if (op.kind === 'progress') return;
    const extra = { parentId: info.parentId, group: info.group };
    const { writer } = this.#deps;
    if (answer === 'OK' || answer === 'REDELIVERED') {
      if (op.state === 'SUCCESS') {
        const result = op.outcomeJson ? (JSON.parse(op.outcomeJson) as { result: unknown }).result : op.outcome && 'result' in op.outcome ? op.outcome.result : null;
        if (!info.ignoreResult) await writer.write(info.taskId, 'SUCCESS', result, extra);
        await this.#deps.canvas.afterSuccess(job, result);
        return;
      }
      const error = op.outcome && 'error' in op.outcome ? op.outcome.error : { type: 'Error', message: 'unknown error', stack: null };
      if (error.type === 'CeleryTaskExpiredError') {
        if (!info.ignoreResult) await writer.write(info.taskId, 'REVOKED', revokedException(error.message), extra);
        return;
      }
      if (!info.ignoreResult) await writer.write(info.taskId, op.state, op.state === 'STARTED' ? null : celeryException(error), { ...extra, traceback: op.state === 'STARTED' ? null : error.stack });
      if (op.state === 'FAILURE') await this.#deps.canvas.afterFailure(job, error);
      return;
    }
    if (info.ignoreResult) return;
    if (answer === 'REVOKED') {
      const record = await this.#deps.results.get(job.id ?? '');
      await writer.write(info.taskId, 'REVOKED', revokedException(record?.reason ?? 'revoked'), extra);
    } else if (answer === 'SUCCESS' || answer === 'FAILURE') {
      // An earlier delivery stored the outcome (a redelivery's STARTED finds it); it may have died
      // before Celery's record was written: write it (again) from taskline's record.
      const record = await this.#deps.results.get(job.id ?? '');
      if (record) await writeFromRecord(writer, info, record);
      // The callbacks may not have been sent either: send them (again; chain links keep their ids).
      if (record?.state === 'SUCCESS') await this.#deps.canvas.afterSuccess(job, record.result ?? null);
    }
  }
}

async function writeFromRecord(writer: CeleryResultWriter, info: CeleryJobInfo, record: JobResultRecord): Promise<void> {
  const extra = { parentId: info.parentId, group: info.group };
  if (record.state === 'SUCCESS') await writer.write(info.taskId, 'SUCCESS', record.result ?? null, extra);
  else if (record.state === 'FAILURE' && record.error?.type === 'CeleryTaskExpiredError') await writer.write(info.taskId, 'REVOKED', revokedException(record.error.message), extra);
  else if (record.state === 'FAILURE' && record.error) await writer.write(info.taskId, 'FAILURE', celeryException(record.error), { ...extra, traceback: record.error.stack });
}
