/**
 * The public API of @taskline/producer: enqueue from code (createProducer), the HTTP API
 * (startApiServer), and the types and errors they use. Internals: `@taskline/producer/internal`.
 */
export { createProducer, Producer } from './producer.js';
export type { ProducerState, JobWatchEvent, RecordOf, TypedBulkJob, AnyProducer } from './producer.js';
export type { ProducerTasks, TaskSetLike } from './known-tasks.js';
export type { JobId, TaskMap, TaskMapOf, TaskRecord, UntypedTasks } from '@taskline/shared';
export { EnqueueBulkError } from './enqueue.js';
export type { EnqueueResult, BulkJob, BulkJobOutcome } from './enqueue.js';
export type { ProducerOptions, EnqueueOptions, BackoffOption } from './options.js';
export type { Backoff } from '@taskline/shared';
export { QueueInspector } from '@taskline/shared/ops';
export type { CountedState, FailedJobSummary, RetriedJob } from '@taskline/shared/ops';
export { ValidationError, PayloadTooLargeError, JobNotFoundError, JobStateError } from './errors.js';
export { startApiServer } from './http-api.js';
export type { ApiServer } from './http-api.js';
export type { ApiServerOptions, ApiTlsOptions } from './api-options.js';
export type { PublicJobRecord } from './api-responses.js';
