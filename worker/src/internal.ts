/**
 * @internal What taskline's own code and tests reach in @taskline/worker beyond its public API (`@taskline/worker`).
 * No compatibility promise.
 */
export type { ResolvedTask } from './tasks.js';
export { resolveWorkerOptions } from './options.js';
export type { ResolvedWorkerOptions } from './options.js';
export { tasklineBackoffStrategy, TASKLINE_BACKOFF_TYPE } from './backoff.js';
export { WorkerMetrics } from './worker-metrics.js';
export { decideOutcome } from './attempt-outcome.js';
export type { OutcomeDecision, NextStep, WrittenState } from './attempt-outcome.js';
export { WORKER_SETTINGS, WORKER_BIN_SETTINGS } from './settings.js';
export { parseCeleryMessage, jobIdFor, kombuListFor } from './celery/celery-message.js';
export { celeryException } from './celery/celery-results.js';
