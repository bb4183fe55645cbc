/**
 * @internal The beat's pieces that taskline's own tests reach beyond the public API (the fast
 * unit tests of the leader lease). No compatibility promise: applications import `@taskline/scheduler`.
 */
export { LeaderLease } from './leader-lease.js';
export { SCHEDULER_SETTINGS, SCHEDULER_BIN_SETTINGS } from './settings.js';
