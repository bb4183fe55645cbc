import { int, metricsPortSetting, setting, text, type Table } from '@taskline/shared/settings';

/**
 * The beat's settings, as data: `resolveSchedulerOptions` resolves them (options, then the
 * environment, then the default), `taskline-scheduler start` declares the flags from them, and
 * docs/CONFIGURATION.md is generated from them. Keys are `SchedulerOptions` fields.
 */
export const SCHEDULER_SETTINGS = {
  leaseTtlMs: setting({
    env: 'TASKLINE_BEAT_LEASE_MS',
    parser: int({ min: 300, max: 600_000 }),
    default: 10_000,
    doc: 'Leader lease TTL: a dead or frozen leader is replaced within it (the leader renews every quarter of it).',
  }),
  reconcileIntervalMs: setting({
    env: 'TASKLINE_BEAT_RECONCILE_MS',
    parser: int({ min: 100, max: 86_400_000 }),
    default: 60_000,
    doc: 'Periodic re-reconcile of the schedule file into Redis (repairs drift).',
  }),
  watchIntervalMs: setting({
    env: 'TASKLINE_BEAT_WATCH_MS',
    parser: int({ min: 50, max: 3_600_000 }),
    default: 5000,
    doc: 'Re-stat of the schedule file, the fallback when fs.watch misses a change.',
  }),
  debounceMs: setting({ env: 'TASKLINE_BEAT_DEBOUNCE_MS', parser: int({ min: 0, max: 60_000 }), default: 200, doc: 'Quiet time after a file event before reloading.' }),
  statsIntervalMs: setting({ env: 'TASKLINE_BEAT_STATS_MS', parser: int({ min: 50, max: 3_600_000 }), default: 5000, doc: 'Refresh of the schedule metrics.' }),
} satisfies Table;

/** Settings only the `taskline-scheduler` bin reads. */
export const SCHEDULER_BIN_SETTINGS = {
  metricsPort: metricsPortSetting(9102, 'beat'),
  metricsHost: setting({ flag: 'metrics-host', parser: text(), default: '0.0.0.0', doc: 'Address the ops server binds.' }),
} satisfies Table;
