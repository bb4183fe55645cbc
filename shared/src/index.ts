export { resolveConnectionOptions } from './config.js';
export type {
  ConnectionOptions,
  RedisEndpointOptions,
  ResolvedConnectionOptions,
  ResolvedEndpoint,
  ResolvedTlsOptions,
} from './config.js';
export { DEFAULT_TLS_CIPHERS, checkCipherList, parseTlsVersion } from './tls-policy.js';
export type { TlsVersion } from './tls-policy.js';
export { isProduction } from './environment.js';
export { isJobId } from './job-id.js';
export { TimeoutError } from './lifecycle.js';
export type { LifecycleState } from './lifecycle.js';
export { createConnections, TasklineConnections } from './connections.js';
export type { CreateConnectionsOptions, HealthReport, ConnectionsState } from './connections.js';
export type { ConnectionHealth, Lease, ProcessRole } from './redis-service.js';
export { RedisService } from './redis-service.js';
export {
  TasklineError,
  ConfigError,
  ConnectionError,
  TlsError,
  AuthError,
  PoolExhaustedError,
  PoolQueueFullError,
  ClosedError,
  SERVICE_LABEL,
} from './errors.js';
export type { ServiceRole, ErrorKind } from './errors.js';
export { toConnectionError, isFatalConnectionError, scrubSecrets, envPrefix } from './error-mapping.js';
export type { ConnectionTarget } from './error-mapping.js';
export { backoffDelay, sleep } from './retry-policy.js';
export { DEFAULT_BACKOFF, TASKLINE_BACKOFF_TYPE, encodeBackoff, encodedBackoffDelay, resolveBackoff } from './job-backoff.js';
export type { Backoff, EncodedBackoff, ResolvedBackoff } from './job-backoff.js';
export type { BackoffSettings } from './retry-policy.js';
export { Secret } from './secret.js';
export { createLogger, createSilentLogger } from './logger.js';
export type { Logger, LoggerOptions } from './logger.js';
export {
  createMetricsRegistry,
  ConnectionMetrics,
  getOrCreateCounter,
  getOrCreateGauge,
  getOrCreateHistogram,
} from './metrics.js';
export {
  healthCommand,
  runHealthCheck,
  formatHealthLine,
  formatHealthReport,
  withConnectionFlags,
  connectionOptionsFromFlags,
} from './health-command.js';
export { startOpsServer } from './ops-server.js';
export type { OpsServer, OpsServerOptions, ReadinessReport } from './ops-server.js';
export { parseIntegerSetting, parseBooleanSetting } from './env-parsing.js';
export { ResultBackend, ResultTimeoutError, ResultWriteError, isFinalAnswer, retryUntilDeadline } from './result-backend.js';
export type { ResultBackendOptions, TransitionOp, TransitionAnswer, RevokeAnswer } from './result-backend.js';
export type { JobEvent } from './job-events.js';
export { recordKeys, decodeRecord, encodeBase } from './job-record.js';
export type { RecordKeys, RecordBase, RecordOutcome, RevokeMarker } from './job-record.js';
export { RESULT_BACKEND_SCRIPTS } from './record-scripts.js';
export type { RecordScript } from './record-scripts.js';
export { evalScript, luaScript, isNoScriptError } from './script-policy.js';
export type { LuaScript, ScriptLoading } from './script-policy.js';
export { scriptsCommand, runScriptsLoad, runScriptsCheck } from './scripts-command.js';
export { scriptCatalog, bullmqScripts, loadScripts, checkScripts, watchScripts } from './script-loader.js';
export type { ScriptCatalog, ScriptReport, ScriptWatchState } from './script-loader.js';
export { BEAT_LEASE_SCRIPTS, LEASE_ACQUIRE, LEASE_CHECK, LEASE_FENCED_HASH_WRITE, LEASE_RELEASE, LEASE_RENEW } from './beat-lease-scripts.js';
export {
  isTerminalState,
  TERMINAL_STATES,
  DEFAULT_QUEUE,
  resolveResultExpiresSeconds,
  toJobErrorInfo,
  jobMeta,
  withJobMeta,
  JOB_META_KEY,
} from './job-contract.js';
export type { JobState, JobResultRecord, JobErrorInfo, TasklineJobMeta } from './job-contract.js';
export { resolvePrefix, assertQueueName, assertTaskName, isQueueName, isTaskName, InvalidNameError, NAME_RULES } from './names.js';
export type { NameRule } from './names.js';
export { CommandBatcher } from './command-batcher.js';
export { QueueRegistry, queueRegistryKey } from './queue-registry.js';
export { createRoutes, resolveRoutes } from './routes.js';
export type { Routes, RouteTable } from './routes.js';
