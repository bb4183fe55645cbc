/**
 * Operator features every bin mounts: `health`, `scripts load|check|list` and the script catalog, the ops HTTP server (/healthz, /readyz, /metrics), starting with retry on what can heal by waiting.
 * The names other folders of @taskline/shared and taskline's other packages use; no compatibility
 * promise beyond taskline's own packages (applications import `@taskline/shared`).
 */
export { connectionOptionsFromFlags, healthCommand, withConnectionFlags } from './health-command.js';
export { startOpsServer } from './ops-server.js';
export type { OpsServer, ReadinessReport } from './ops-server.js';
export type { ScriptContribution } from './script-loader.js';
export { scriptsCommand } from './scripts-command.js';
export { StartTimeoutError, canStartLater, startWithRetry } from './start-retry.js';
export { COUNTED_STATES, QueueInspector } from './queue-inspector.js';
export type { CountedState, FailedJobSummary, InspectedJob, InspectedQueue, InspectorDeps, RetriedJob, RetryCopy } from './queue-inspector.js';
