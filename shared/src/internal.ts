/**
 * @internal What taskline's own packages (producer, worker, scheduler) and its tests share beyond
 * the public API: the lifecycle kit every process closes and runs with, and the pieces the fast
 * unit tests reach. No compatibility promise: applications import `@taskline/shared`.
 */
export { closeInOrder, withTimeout } from './lifecycle.js';
export type { CloseContext, CloseInOrderOptions, CloseReport, CloseStep } from './lifecycle.js';
export { runCli, aborted, defaultExitCode, describeError, failUsage, UsageError, EXIT_USAGE } from './run-cli.js';
export type { CliContext, CliMain, RunCliOptions } from './run-cli.js';
export { startWithRetry, canStartLater } from './start-retry.js';
export type { StartRetryOptions } from './start-retry.js';
export { ConnectionSlots } from './connection-pool.js';
export { isResolvedConnectionOptions } from './config.js';
