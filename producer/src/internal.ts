/**
 * @internal What taskline's own code and tests reach in @taskline/producer beyond its public API (`@taskline/producer`).
 * No compatibility promise.
 */
export { resolveProducerOptions, resolveEnqueueOptions, DEFAULT_MAX_PAYLOAD_BYTES } from './options.js';
export type { ResolvedProducerOptions, ResolvedEnqueueOptions } from './options.js';
export { COUNTED_STATES } from './inspector.js';
export { checkPayload } from './payload.js';
export { ProducerMetrics, LabelValueCap, MAX_TASK_LABELS, MAX_QUEUE_LABELS } from './producer-metrics.js';
export type { EnqueueErrorReason, EnqueuedCounter } from './producer-metrics.js';
export { resolveApiServerOptions, resolveApiQueues, DEFAULT_API_HOST } from './api-options.js';
export type { ResolvedApiServerOptions, ResolvedApiTls } from './api-options.js';
export { toPublicRecord } from './api-responses.js';
export { readApiToken, bearerMatches, checkApiToken } from './api-token.js';
export { MAX_PAYLOAD_DEPTH } from './payload.js';
