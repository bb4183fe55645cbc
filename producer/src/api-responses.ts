import { ConnectionError, PoolExhaustedError, PoolQueueFullError, ResultTimeoutError, TasklineError, type JobResultRecord } from '@taskline/shared';
import { SERVICE_LABEL } from '@taskline/shared/connection';
import { JobNotFoundError, JobStateError, PayloadTooLargeError, ValidationError } from './errors.js';
import { BodyError } from './http-body.js';

/** An answer the API gives on purpose: status, stable code, and a message meant for the client. */
export class HttpError extends TasklineError {
  override name = 'HttpError';
  readonly status: number;
  /** The request field at fault (`data.to`, `options.delay`), when one is. */
  readonly field: string | undefined;
  constructor(status: number, code: string, message: string, field?: string) {
    super(code, message);
    this.status = status;
    this.field = field;
  }
}

/**
 * What a client is told about a failure. Errors about the request (4xx) say what to fix; errors
 * inside taskline (5xx) give only their code and where to look: host names, ports, stacks and
 * settings stay in the producer's log.
 */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof BodyError) return new HttpError(err.status, err.code, err.message);
  if (err instanceof PayloadTooLargeError) return new HttpError(413, err.code, err.message);
  if (err instanceof ValidationError) return new HttpError(400, err.code, err.message, err.field);
  if (err instanceof JobNotFoundError) return new HttpError(404, err.code, err.message);
  if (err instanceof JobStateError) return new HttpError(409, err.code, err.message);
  if (err instanceof ResultTimeoutError) return new HttpError(504, err.code, 'No result within the time allowed; ask again later.');
  if (err instanceof ConnectionError) {
    return new HttpError(503, err.code, `The ${SERVICE_LABEL[err.service]} is unavailable; retry later (the producer's log has the cause).`);
  }
  if (err instanceof PoolExhaustedError || err instanceof PoolQueueFullError) {
    return new HttpError(503, err.code, 'The producer is overloaded; retry later (the producer\'s log has the cause).');
  }
  if (err instanceof TasklineError) return new HttpError(500, err.code, 'The producer could not complete the request; the producer\'s log has the cause.');
  return new HttpError(500, 'INTERNAL', 'Internal error; the producer\'s log has the cause.');
}

/** A job record as API clients see it: no stack trace, no worker host:pid. */
export type PublicJobRecord = Omit<JobResultRecord, 'worker' | 'error'> & { error?: { type: string; message: string } };

/**
 * Copies the fields a client may see, by name: a field added to the record later stays internal
 * until it is added here.
 */
export function toPublicRecord(record: JobResultRecord): PublicJobRecord {
  const { id, task, queue, state, attempt, attempts, enqueuedAt, startedAt, finishedAt, updatedAt } = record;
  return {
    id,
    task,
    queue,
    state,
    ...('result' in record ? { result: record.result } : {}),
    ...(record.error ? { error: { type: record.error.type, message: record.error.message } } : {}),
    ...(record.reason !== undefined ? { reason: record.reason } : {}),
    attempt,
    attempts,
    enqueuedAt,
    startedAt,
    finishedAt,
    updatedAt,
    ...(record.progress !== undefined ? { progress: record.progress } : {}),
    ...(record.timeoutMs !== undefined ? { timeoutMs: record.timeoutMs } : {}),
    ...(record.delivery !== undefined ? { delivery: record.delivery } : {}),
    ...(record.redelivered ? { redelivered: true } : {}),
    ...(record.retryOf !== undefined ? { retryOf: record.retryOf } : {}),
  };
}
