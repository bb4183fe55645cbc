/**
 * @internal What taskline's own packages (producer, worker, scheduler) and its tests share beyond
 * the public API: the lifecycle kit every process closes and runs with, and the pieces the fast
 * unit tests reach. No compatibility promise: applications import `@taskline/shared`.
 */
export { closeInOrder, withTimeout } from './lifecycle.js';
export type { CloseContext } from './lifecycle.js';
export { runCli, aborted, defaultExitCode, failUsage, UsageError, EXIT_USAGE } from './run-cli.js';
export type { CliContext, RunCliOptions } from './run-cli.js';
export { startWithRetry, canStartLater, StartTimeoutError } from './start-retry.js';
export { packageVersion } from './package-version.js';
export { ConnectionSlots } from './connection-pool.js';
export { isResolvedConnectionOptions } from './config.js';

// Moved out of the public index: the connection machinery, the result backend, scripts, CLI pieces.
export { checkCipherList, parseTlsVersion } from './tls-policy.js';
export { isJobId } from './job-id.js';
export type { ConnectionHealth, Lease, ProcessRole } from './redis-service.js';
export { RedisService } from './redis-service.js';
export { SERVICE_LABEL } from './errors.js';
export type { ServiceRole, ErrorKind } from './errors.js';
export { toConnectionError, isFatalConnectionError, envPrefix } from './error-mapping.js';
export { scrubSecrets } from './secret.js';
export type { ConnectionTarget } from './error-mapping.js';
export { backoffDelay, sleep } from './retry-policy.js';
export { DEFAULT_BACKOFF, TASKLINE_BACKOFF_TYPE, encodeBackoff, encodedBackoffDelay, resolveBackoff } from './job-backoff.js';
export type { EncodedBackoff, ResolvedBackoff } from './job-backoff.js';
export { ConnectionMetrics, getOrCreateCounter, getOrCreateGauge, getOrCreateHistogram } from './metrics.js';
export { healthCommand, withConnectionFlags, connectionOptionsFromFlags } from './health-command.js';
export { startOpsServer } from './ops-server.js';
export type { OpsServer, ReadinessReport } from './ops-server.js';
export { canTransition, isJobState, JOB_STATES, LUA_JOB_STATES } from './job/job-states.js';
export type { FinalState } from './job/job-states.js';
export { ResultBackend, isFinalAnswer } from './result-backend.js';
export type { TransitionOp, TransitionAnswer, RevokeAnswer } from './result-backend.js';
export { recordKeys, decodeRecord, encodeBase, BASE_FIELDS } from './job-record.js';
export type { RecordKeys, RecordBase, RecordOutcome, RevokeMarker } from './job-record.js';
export { RESULT_BACKEND_SCRIPTS } from './record-scripts.js';
export { evalScript, luaScript } from './script-policy.js';
export type { LuaScript } from './script-policy.js';
export { scriptsCommand } from './scripts-command.js';
export { scriptCatalog, installedScriptContributions, loadScripts, checkScripts, watchScripts } from './script-loader.js';
export type { ScriptCatalog, ScriptContribution, ScriptReport, ScriptWatchState } from './script-loader.js';
export { resolveResultExpiresSeconds, toJobErrorInfo, jobMeta, withJobMeta } from './job-contract.js';
export { assertQueueName, assertTaskName, NAME_RULES } from './names.js';
export { CommandBatcher } from './command-batcher.js';
export { QueueRegistry } from './queue-registry.js';

// Settings as data: the machinery each package's table is written with, and shared's own tables.
export { setting, variablesOf } from './settings/table.js';
export type { Setting, Table } from './settings/table.js';
export { bool, custom, int, list, oneOf, secondsAsMs, text } from './settings/parsers.js';
export { resolveSetting, resolveSettings, optionsFromFlags } from './settings/resolve.js';
export { addFlags } from './settings/flags.js';
export { CONNECTION_SETTINGS, ENDPOINT_SETTINGS, endpointTable } from './settings/connection-table.js';
export { PROCESS_SETTINGS, metricsPortSetting, resolvePrefix } from './settings/process-table.js';
export { warnUnknownVariables, findUnknownVariables, editDistance, ALLOWED_VARIABLES } from './settings/unknown-vars.js';
export { KNOWN_VARIABLES } from './settings/known-variables.js';
export { checkSchema, describeSchemaProblem, isStandardSchema } from './schema-validation.js';
export type { SchemaCheck, SchemaProblem } from './schema-validation.js';
export { carryTrace, consumerParent, inSpan, incomingContext, isTracing, markSpanError, recordSpanFailure, startSpan, TRACE_ATTRIBUTES, MESSAGING_SYSTEM } from './tracing.js';
export type { Span } from './tracing.js';
