import { ValidationError } from '@taskline/shared';

export { JobNotFoundError, JobStateError, ValidationError } from '@taskline/shared';

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

