import type { Registry } from 'prom-client';
import { ConfigError, resolveRoutes, type ConnectionOptions, type Logger, type ResolvedConnectionOptions, type RouteTable, type Routes, type TasklineConnections } from '@taskline/shared';
import { resolvePrefix, resolveSettings } from '@taskline/shared/settings';
import { SCHEDULER_SETTINGS } from './settings.js';

export interface SchedulerOptions {
  /** Path of the JSON schedule file. Required. */
  schedulePath: string;
  /** Connections to use; the caller keeps ownership. @defaultValue new ones from `connection` and the env */
  connections?: TasklineConnections;
  /** Used when `connections` is not given. @defaultValue the REDIS_* / RESULT_REDIS_* environment */
  connection?: ConnectionOptions | ResolvedConnectionOptions;
  /** BullMQ key prefix. @defaultValue `TASKLINE_PREFIX` or `taskline` */
  prefix?: string;
  /** Where an entry that names no queue goes (the same routes as every producer). @defaultValue `TASKLINE_ROUTES` */
  routes?: RouteTable | Routes | string;
  /** Leader lease TTL: a dead or frozen leader is replaced within it. @defaultValue `TASKLINE_BEAT_LEASE_MS` or 10000 */
  leaseTtlMs?: number;
  /** Periodic re-reconcile that repairs drift. @defaultValue `TASKLINE_BEAT_RECONCILE_MS` or 60000 */
  reconcileIntervalMs?: number;
  /** Re-stat of the schedule file, the fallback when fs.watch misses a change. @defaultValue `TASKLINE_BEAT_WATCH_MS` or 5000 */
  watchIntervalMs?: number;
  /** Quiet time after a file event before reloading. @defaultValue 200 */
  debounceMs?: number;
  /** How often the active-schedules and ticks metrics are refreshed. @defaultValue 5000 */
  statsIntervalMs?: number;
  /** @defaultValue a silent logger (the CLI passes a JSON one) */
  logger?: Logger;
  /** @defaultValue the connections' registry */
  registry?: Registry;
  env?: Record<string, string | undefined>;
}

export interface ResolvedSchedulerOptions {
  schedulePath: string;
  connections: TasklineConnections | null;
  connection: ConnectionOptions | ResolvedConnectionOptions;
  prefix: string;
  routes: Routes;
  leaseTtlMs: number;
  /** Renew (leader) and poll (standby) period: a quarter of the TTL. */
  renewIntervalMs: number;
  /** A write needs this much lease left: a third of the TTL. */
  minRemainingMs: number;
  reconcileIntervalMs: number;
  watchIntervalMs: number;
  debounceMs: number;
  statsIntervalMs: number;
  logger: Logger | null;
  registry: Registry | null;
  /** The environment the connections are resolved from. */
  env: Record<string, string | undefined>;
}

export function resolveSchedulerOptions(options: SchedulerOptions): ResolvedSchedulerOptions {
  const env = options.env ?? process.env;
  if (typeof options.schedulePath !== 'string' || options.schedulePath === '') {
    throw new ConfigError('CONFIG_MISSING', 'schedulePath', 'The scheduler needs a schedule file; pass --schedule <file> (or schedulePath).');
  }
  const settings = resolveSettings(SCHEDULER_SETTINGS, { options, env });
  const { leaseTtlMs } = settings;
  return {
    ...settings,
    schedulePath: options.schedulePath,
    connections: options.connections ?? null,
    connection: options.connection ?? {},
    prefix: resolvePrefix(env, options.prefix),
    routes: resolveRoutes(options.routes, env),
    renewIntervalMs: Math.max(50, Math.floor(leaseTtlMs / 4)),
    minRemainingMs: Math.floor(leaseTtlMs / 3),
    logger: options.logger ?? null,
    registry: options.registry ?? null,
    env,
  };
}
