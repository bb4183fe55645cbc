/**
 * The public API of @taskline/shared: what an application needs besides the producer, worker
 * and scheduler packages. Everything taskline's own packages share beyond it is in
 * `@taskline/shared/{process,settings,connection,job,tracing,ops}`.
 */
export { resolveConnectionOptions } from './connection/config.js';
export type { ConnectionOptions, RedisEndpointOptions, ResolvedConnectionOptions, ResolvedEndpoint, ResolvedTlsOptions } from './connection/config.js';
export { DEFAULT_TLS_CIPHERS } from './connection/tls-policy.js';
export type { TlsVersion } from './connection/tls-policy.js';
export { isProduction } from './process/environment.js';
export { TimeoutError } from './process/lifecycle.js';
export type { LifecycleState } from './process/lifecycle.js';
export { createConnections, TasklineConnections } from './connection/connections.js';
export type { CreateConnectionsOptions, HealthReport, ConnectionsState } from './connection/connections.js';
export { TasklineError, ConfigError, ConnectionError, TlsError, AuthError, PoolExhaustedError, PoolQueueFullError, ClosedError, ValidationError, JobNotFoundError, JobStateError } from './errors.js';
export type { Backoff } from './job/job-backoff.js';
export { Secret } from './process/secret.js';
export { createLogger, createSilentLogger } from './process/logger.js';
export type { Logger, LoggerOptions } from './process/logger.js';
export { createMetricsRegistry } from './process/metrics.js';
export { ResultTimeoutError, ResultWriteError } from './job/result-backend.js';
export type { JobEvent } from './job/job-events.js';
export { DEFAULT_QUEUE } from './job/job-contract.js';
export type { JobResultRecord, JobErrorInfo } from './job/job-contract.js';
export { isTerminalState, TERMINAL_STATES } from './job/job-states.js';
export type { JobState } from './job/job-states.js';
export { isQueueName, isTaskName, InvalidNameError } from './names.js';
export { createRoutes, resolveRoutes } from './job/routes.js';
export type { Routes, RouteTable } from './job/routes.js';
export type { StandardSchemaV1 } from './job/standard-schema.js';
export type { TaskSignature, TaskMap, UntypedTasks, TypedTaskSet, TaskMapOf, TaskName, TaskData, TaskResult, JobId, TaskRecord } from './job/task-types.js';
