/**
 * The public API of @taskline/worker: define tasks (defineTasks), run them (createWorker or the
 * taskline-worker bin), and the errors a handler's attempt can end with. Internals:
 * `@taskline/worker/internal`.
 */
export { defineTasks, isTaskSet } from './tasks.js';
export { DEFAULT_BACKOFF } from '@taskline/shared/job';
export type { IsolationKind, TaskBackoff, TaskContext, TaskDefinition, TaskHandler, TaskRateLimit, TaskSet, TaskMapOfDefinitions } from './tasks.js';
export type { StandardSchemaV1, TaskMap, TaskMapOf } from '@taskline/shared';
export { createWorker, TasklineWorker } from './worker.js';
export type { WorkerState, CloseOutcome } from './worker.js';
export type { WorkerOptions } from './options.js';
export { loadTaskModule } from './task-module.js';
export { celeryTask } from './celery/celery-job.js';
export type { CeleryTaskData } from './celery/celery-job.js';
export {
  TimeLimitError,
  JobRevokedError,
  WorkerShutdownError,
  UnknownTaskError,
  InvalidJobDataError,
  ResultNotSerializableError,
  ResultTooLargeError,
  StaleDeliveryError,
  WorkerLostError,
} from './errors.js';
export { IsolatedRunnerError } from './isolation/handler-pool.js';
