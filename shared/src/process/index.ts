/**
 * What every taskline process is made of: the production switch, secrets, the logger (with trace ids), the metrics registry, lifecycle (closeInOrder, withTimeout), retry backoff, the CLI kit (runCli), the package version.
 * The names other folders of @taskline/shared and taskline's other packages use; no compatibility
 * promise beyond taskline's own packages (applications import `@taskline/shared`).
 */
export { isProduction } from './environment.js';
export { closeInOrder, withTimeout } from './lifecycle.js';
export type { CloseContext, LifecycleState } from './lifecycle.js';
export { createLogger, createSilentLogger } from './logger.js';
export type { Logger } from './logger.js';
export { ConnectionMetrics, createMetricsRegistry, getOrCreateCounter, getOrCreateGauge, getOrCreateHistogram } from './metrics.js';
export { packageVersion } from './package-version.js';
export { backoffDelay, sleep } from './retry-policy.js';
export { EXIT_USAGE, UsageError, aborted, defaultExitCode, failUsage, runCli } from './run-cli.js';
export type { CliContext, RunCliOptions } from './run-cli.js';
export { Secret, scrubSecrets } from './secret.js';
