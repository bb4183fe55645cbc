/**
 * Redis connections: resolved options and TLS policy, the bounded pool, one RedisService per Redis (broker, result backend), health, error mapping, how Lua reaches Redis.
 * The names other folders of @taskline/shared and taskline's other packages use; no compatibility
 * promise beyond taskline's own packages (applications import `@taskline/shared`).
 */
export { isResolvedConnectionOptions } from './config.js';
export type { ConnectionOptions } from './config.js';
export { ConnectionSlots } from './connection-pool.js';
export { CONNECTION_SETTINGS, ENDPOINT_SETTINGS, endpointTable } from './connection-table.js';
export { TasklineConnections, createConnections } from './connections.js';
export type { HealthReport } from './connections.js';
export { isRetryableConnectionError, toConnectionError } from './error-mapping.js';
export { RedisService } from './redis-service.js';
export type { ConnectionHealth, LeasedConnection } from './redis-service.js';
export { evalScript, luaScript } from './script-policy.js';
export type { LuaScript } from './script-policy.js';
export { checkCipherList } from './tls-policy.js';
export { SERVICE_LABEL } from '../errors.js';
