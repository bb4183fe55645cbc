/**
 * @internal What taskline's own code and tests reach in @taskline/producer beyond its public API (`@taskline/producer`).
 * No compatibility promise.
 */
export { resolveProducerOptions, resolveEnqueueOptions } from './options.js';
export type { ResolvedProducerOptions, ResolvedEnqueueOptions } from './options.js';
export { checkPayload } from './payload.js';
export { ProducerMetrics } from './producer-metrics.js';
export { resolveApiServerOptions, readApiToken } from './api-options.js';
export type { ResolvedApiServerOptions, ResolvedApiTls } from './api-options.js';
export { toPublicRecord } from './api-responses.js';
export { bearerMatches, checkApiToken } from './api-token.js';
export { PRODUCER_SETTINGS, API_SETTINGS, API_TLS_SETTINGS } from './settings.js';
