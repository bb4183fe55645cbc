/**
 * The public API of @taskline/shared: what an application needs besides the producer, worker
 * and scheduler packages. Everything taskline's own packages share beyond it is in
 * `@taskline/shared/internal`.
 */
export { resolveConnectionOptions } from './config.js';
export type { ConnectionOptions, RedisEndpointOptions, ResolvedConnectionOptions, ResolvedEndpoint, ResolvedTlsOptions } from './config.js';
export { DEFAULT_TLS_CIPHERS } from './tls-policy.js';
export type { TlsVersion } from './tls-policy.js';
export { isProduction } from './environment.js';
export { TimeoutError } from './lifecycle.js';
export type { LifecycleState } from './lifecycle.js';
export { createConnections, TasklineConnections } from './connections.js';
export type { CreateConnectionsOptions, HealthReport, ConnectionsState } from './connections.js';
export { TasklineError, ConfigError, ConnectionError, TlsError, AuthError, PoolExhaustedError, PoolQueueFullError, ClosedError } from './errors.js';
export type { Backoff } from './job-backoff.js';
export { Secret } from './secret.js';
export { createLogger, createSilentLogger } from './logger.js';
export type { Logger, LoggerOptions } from './logger.js';
export { createMetricsRegistry } from './metrics.js';
export { ResultTimeoutError, ResultWriteError } from './result-backend.js';
export type { JobEvent } from './job-events.js';
export { DEFAULT_QUEUE } from './job-contract.js';
export type { JobResultRecord, JobErrorInfo } from './job-contract.js';
export { isTerminalState, TERMINAL_STATES } from './job/job-states.js';
export type { JobState } from './job/job-states.js';
export { isQueueName, isTaskName, InvalidNameError } from './names.js';
export { createRoutes, resolveRoutes } from './routes.js';
export type { Routes, RouteTable } from './routes.js';
export type { StandardSchemaV1 } from './standard-schema.js';
export type { TaskSignature, TaskMap, UntypedTasks, TypedTaskSet, TaskMapOf, TaskName, TaskData, TaskResult, JobId, TaskRecord } from './task-types.js';
