/**
 * The job contract every process agrees on: ids, names, routes, backoff, metadata on the broker, records and their state machine in the result backend, job events.
 * The names other folders of @taskline/shared and taskline's other packages use; no compatibility
 * promise beyond taskline's own packages (applications import `@taskline/shared`).
 */
export { CommandBatcher } from './command-batcher.js';
export { DEFAULT_BACKOFF, TASKLINE_BACKOFF_TYPE, encodeBackoff, encodedBackoffDelay, resolveBackoff } from './job-backoff.js';
export type { EncodedBackoff, ResolvedBackoff } from './job-backoff.js';
export { jobMeta, resolveResultExpiresSeconds, toJobErrorInfo, withJobMeta } from './job-contract.js';
export { isJobId } from './job-id.js';
export { BASE_FIELDS } from './job-record.js';
export type { RecordBase } from './job-record.js';
export { JOB_STATES, LUA_JOB_STATES, canTransition, isJobState } from './job-states.js';
export { QueueRegistry } from './queue-registry.js';
export { RESULT_BACKEND_SCRIPTS } from './record-scripts.js';
export { ResultBackend, isFinalAnswer } from './result-backend.js';
export type { TransitionAnswer, TransitionOp } from './result-backend.js';
export { checkSchema, describeSchemaProblem, isStandardSchema } from './schema-validation.js';
export { NAME_RULES, assertQueueName, assertTaskName } from '../names.js';
