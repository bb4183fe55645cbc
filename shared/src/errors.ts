/**
 * Errors a taskline user can act on: each names the cause and the fix in one sentence,
 * carries a stable `code`, and says which connection (broker or result backend) it concerns.
 */

/** Which Redis service a connection belongs to. */
export type ServiceName = 'broker' | 'backend';

/** The kind used to label connection-error metrics and to decide on retries. */
export type ErrorKind = 'network' | 'auth' | 'tls' | 'config' | 'protocol' | 'memory';

export const SERVICE_LABEL: Record<ServiceName, string> = {
  broker: 'broker',
  backend: 'result backend',
};

export class TasklineError extends Error {
  override name = 'TasklineError';
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** A configuration value is missing, malformed or insecure. Raised before anything connects. */
export class ConfigError extends TasklineError {
  override name = 'ConfigError';
  /** The environment variable or option at fault, e.g. `REDIS_PORT`. */
  readonly variable: string;
  constructor(code: string, variable: string, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.variable = variable;
  }
}

export interface ConnectionErrorFields {
  code: string;
  kind: ErrorKind;
  service: ServiceName;
  host: string;
  port: number;
  /** Whether reconnecting can fix it (network blips) or not (bad password, untrusted certificate). */
  retryable: boolean;
  cause?: unknown;
}

/** A Redis connection could not be made or was lost. The message never contains a secret. */
export class ConnectionError extends TasklineError {
  override name = 'ConnectionError';
  readonly kind: ErrorKind;
  readonly service: ServiceName;
  readonly host: string;
  readonly port: number;
  readonly retryable: boolean;
  constructor(message: string, fields: ConnectionErrorFields) {
    super(fields.code, message, { cause: fields.cause });
    this.kind = fields.kind;
    this.service = fields.service;
    this.host = fields.host;
    this.port = fields.port;
    this.retryable = fields.retryable;
  }
}

/** A TLS failure: untrusted or expired certificate, host-name mismatch, protocol mismatch. */
export class TlsError extends ConnectionError {
  override name = 'TlsError';
}

/** Redis refused our credentials (WRONGPASS, NOAUTH, NOPERM). */
export class AuthError extends ConnectionError {
  override name = 'AuthError';
}

/**
 * Every connection of a service is in use: a lease waited `waitedMs` for one in vain, or (`null`)
 * a connection that cannot wait (the shared one, BullMQ's blocking ones) found no free slot.
 */
export class PoolExhaustedError extends TasklineError {
  override name = 'PoolExhaustedError';
  readonly service: ServiceName;
  readonly max: number;
  readonly waitedMs: number | null;
  constructor(service: ServiceName, max: number, waitedMs: number | null) {
    super(
      'POOL_EXHAUSTED',
      waitedMs === null
        ? `All ${max} ${SERVICE_LABEL[service]} connections of this process are in use; raise REDIS_MAX_CONNECTIONS or run fewer workers/queues per process.`
        : `All ${max} ${SERVICE_LABEL[service]} connections are in use and none was released within ${waitedMs} ms; ` +
            'raise REDIS_MAX_CONNECTIONS or REDIS_POOL_ACQUIRE_TIMEOUT_MS, or lower the number of concurrent blocking waits.',
    );
    this.service = service;
    this.max = max;
    this.waitedMs = waitedMs;
  }
}

/** A pool's wait queue is full: more callers are waiting than it is allowed to hold. */
export class PoolQueueFullError extends TasklineError {
  override name = 'PoolQueueFullError';
  readonly service: ServiceName;
  constructor(service: ServiceName, maxWaiting: number) {
    super(
      'POOL_QUEUE_FULL',
      `${maxWaiting} callers are already waiting for a ${SERVICE_LABEL[service]} connection; ` +
        'shed load or raise REDIS_MAX_CONNECTIONS.',
    );
    this.service = service;
  }
}

/** The operation was attempted after close() began. */
export class ClosedError extends TasklineError {
  override name = 'ClosedError';
  constructor(what: string) {
    super('CLOSED', `${what} is closed; create a new one instead of reusing it after close().`);
  }
}

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
