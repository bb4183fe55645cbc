import { TasklineError } from '@taskline/shared';

/** Bad input from the caller (task name, options, payload). Nothing was written to Redis. */
export class ValidationError extends TasklineError {
  override name = 'ValidationError';
  /** The field at fault, e.g. `options.delay` or `data.user.callback`. */
  readonly field: string;
  constructor(code: string, field: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.field = field;
  }
}

/** The payload, serialised as JSON, is larger than the limit. */
export class PayloadTooLargeError extends ValidationError {
  override name = 'PayloadTooLargeError';
  readonly bytes: number;
  readonly limit: number;
  constructor(bytes: number, limit: number) {
    super(
      'PAYLOAD_TOO_LARGE',
      'data',
      `The job payload is ${bytes} bytes as JSON, over the limit of ${limit} bytes; store large data elsewhere (S3, a database) and pass a reference, or raise TASKLINE_MAX_PAYLOAD_BYTES.`,
    );
    this.bytes = bytes;
    this.limit = limit;
  }
}

/** No job with this id is known to the result backend or the broker. */
export class JobNotFoundError extends TasklineError {
  override name = 'JobNotFoundError';
  readonly jobId: string;
  constructor(jobId: string, where = '') {
    super('JOB_NOT_FOUND', `No job with id "${jobId}"${where}; check the id (results expire after RESULT_EXPIRES seconds).`);
    this.jobId = jobId;
  }
}

/** The job already finished, so revoking (or retrying) it cannot apply. */
export class JobStateError extends TasklineError {
  override name = 'JobStateError';
  readonly jobId: string;
  readonly state: string;
  constructor(jobId: string, state: string, message: string) {
    super('JOB_STATE_CONFLICT', message);
    this.jobId = jobId;
    this.state = state;
  }
}
