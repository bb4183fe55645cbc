import type { Registry } from 'prom-client';
import { ConfigError, InvalidNameError, isQueueName, createSilentLogger, DEFAULT_QUEUE, resolveRoutes, type ConnectionOptions, type Logger, type RouteTable, type Routes } from '@taskline/shared';
import { resolvePrefix, resolveSettings } from '@taskline/shared/settings';
import { resolveResultExpiresSeconds } from '@taskline/shared/job';
import { availableParallelism } from 'node:os';
import { WORKER_SETTINGS } from './settings.js';
import { isTaskSet, type IsolationKind, type ResolvedTask, type TaskSet } from './tasks.js';

type Env = Record<string, string | undefined>;

/** The kind `isolated: true` means when the worker names none (see docs/PERFORMANCE.md for the measurement). */
export const DEFAULT_ISOLATION: IsolationKind = 'process';

export interface WorkerOptions {
  /** The tasks this worker runs: the result of `defineTasks(...)`. */
  tasks: TaskSet;
  /** Queues to consume. @defaultValue every queue the tasks are routed to (their `queue`, else the routes, else `default`) */
  queues?: string[];
  /**
   * The routes every process shares (`{ "send-email": "email", "reports.*": "reports" }` or a
   * JSON file's path): the worker consumes its tasks' queues and warns when a task arrives on a
   * queue its route does not name. @defaultValue `TASKLINE_ROUTES`
   */
  routes?: RouteTable | Routes | string;
  /** Jobs run at once per queue. @defaultValue `TASKLINE_CONCURRENCY` or `10` */
  concurrency?: number;
  /** Broker and result-backend settings, layered over the REDIS_* and RESULT_REDIS_* environment. */
  connection?: ConnectionOptions;
  /** BullMQ key prefix and result-key prefix. @defaultValue `TASKLINE_PREFIX` or `taskline` */
  prefix?: string;
  /** @defaultValue a silent logger */
  logger?: Logger;
  /** Where metrics go. @defaultValue the connections' new registry */
  registry?: Registry;
  /** How long `close()` lets in-flight jobs finish before forcing. @defaultValue `TASKLINE_SHUTDOWN_GRACE_MS` or `30000` */
  shutdownGraceMs?: number;
  /**
   * How long a job's lock lasts without renewal (renewed every half of it while the job runs).
   * A worker killed with SIGKILL holds its jobs until the lock expires and the stalled check
   * runs: then they are redelivered. @defaultValue `TASKLINE_LOCK_DURATION_MS` or `30000`
   */
  lockDurationMs?: number;
  /** How often stalled (lock-expired) jobs are looked for. @defaultValue `TASKLINE_STALLED_INTERVAL_MS` or `30000` */
  stalledIntervalMs?: number;
  /**
   * How many times a job may be redelivered after stalling before it is failed. Higher than
   * BullMQ's 1 so a rolling restart that kills a job twice does not lose it; bounded so a job
   * that kills its worker every time does not loop forever. @defaultValue `TASKLINE_MAX_STALLED_COUNT` or `3`
   */
  maxStalledCount?: number;
  /** How long a result write keeps retrying through a result-backend outage. @defaultValue `30000` */
  resultWriteDeadlineMs?: number;
  /** Seconds a job's record lives after its last write. @defaultValue `RESULT_EXPIRES` or `86400` (1 day) */
  resultExpiresSeconds?: number;
  /**
   * How long a job's STARTED write is held back; a job finishing sooner writes only its final
   * record (one write instead of two). `0` sends STARTED with the next batch of writes.
   * @defaultValue `TASKLINE_STARTED_DELAY_MS` or `0`
   */
  startedDelayMs?: number;
  /** Largest handler result, in bytes of JSON; larger fails the attempt with ResultTooLargeError. @defaultValue `TASKLINE_MAX_RESULT_BYTES` or 1048576 (1 MiB) */
  maxResultBytes?: number;
  /** Progress is stored at most this often per job (the latest value always wins). @defaultValue `TASKLINE_PROGRESS_INTERVAL_MS` or `250` */
  progressIntervalMs?: number;
  /** How often the failed set of each queue is checked for jobs the broker failed on its own. @defaultValue `TASKLINE_SETTLE_INTERVAL_MS` or `5000` */
  settleIntervalMs?: number;
  /**
   * Run every task's handler isolated (`process`: a pool of child processes; `thread`: worker
   * threads) unless the task says `isolated: false`; `none` isolates only tasks marked `isolated`.
   * @defaultValue `TASKLINE_ISOLATION` or `none`
   */
  isolation?: 'none' | IsolationKind;
  /** Isolated runners at most (per kind). @defaultValue `TASKLINE_ISOLATED_POOL_SIZE`, else the lower of the concurrency and the CPU count */
  isolatedPoolSize?: number;
  /** After a soft limit, revoke or forced shutdown, how long an isolated handler may take before its runner is killed. @defaultValue `TASKLINE_KILL_GRACE_MS` or `5000` */
  killGraceMs?: number;
  /** The module isolated runners load the tasks from, when `tasks` did not come from `loadTaskModule` (`--tasks`). */
  tasksModule?: string;
  /**
   * Celery queues (kombu Redis lists on the broker) to also consume Celery protocol-2 messages
   * from, as taskline jobs (docs/MIGRATION-FROM-CELERY.md). @defaultValue `TASKLINE_CELERY_QUEUES` (comma-separated) or none
   */
  celeryQueues?: string[];
  /**
   * The Celery queue a Celery message for a task this worker does not define goes back to,
   * unchanged, for Celery workers to run; never one of `celeryQueues`. @defaultValue `TASKLINE_CELERY_FALLBACK_QUEUE` or `celery`
   */
  celeryFallbackQueue?: string;
  /** Environment read for the defaults above. @defaultValue `process.env` */
  env?: Env;
}

export interface ResolvedWorkerOptions {
  tasks: TaskSet;
  queues: string[];
  routes: Routes;
  concurrency: number;
  connection: ConnectionOptions;
  prefix: string;
  logger: Logger;
  registry: Registry | null;
  shutdownGraceMs: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  maxStalledCount: number;
  resultWriteDeadlineMs: number;
  resultExpiresSeconds: number;
  startedDelayMs: number;
  maxResultBytes: number;
  progressIntervalMs: number;
  settleIntervalMs: number;
  /** The isolation each task runs with (`null`: in the event loop). */
  isolationOf(task: ResolvedTask): IsolationKind | null;
  isolatedPoolSize: number;
  killGraceMs: number;
  tasksModule: string | null;
  celeryQueues: string[];
  celeryFallbackQueue: string;
  env: Env;
}

/** The isolation each task runs with, given the worker's (`null`: in the event loop). */
function isolationFor(isolation: 'none' | IsolationKind): (task: ResolvedTask) => IsolationKind | null {
  return task => {
    if (task.isolated === false) return null;
    if (task.isolated === 'process' || task.isolated === 'thread') return task.isolated;
    if (task.isolated === true) return isolation === 'none' ? DEFAULT_ISOLATION : isolation;
    return isolation === 'none' ? null : isolation;
  };
}

function checkQueues(queues: string[]): string[] {
  if (queues.length === 0) {
    throw new ConfigError('WORKER_NO_QUEUES', 'queues', 'The worker was given no queues; name at least one (e.g. --queues default).');
  }
  for (const queue of queues) {
    if (!isQueueName(queue)) throw new ConfigError('WORKER_BAD_QUEUE', 'queues', new InvalidNameError('queue', queue).message);
  }
  return [...new Set(queues)];
}

/** Fills every default (options, then environment, then the `WORKER_SETTINGS` defaults) and validates. */
export function resolveWorkerOptions(options: WorkerOptions): ResolvedWorkerOptions {
  if (!isTaskSet(options?.tasks)) {
    throw new ConfigError('WORKER_NO_TASKS', 'tasks', 'createWorker() needs `tasks`: the result of defineTasks({...}).');
  }
  const env = options.env ?? process.env;
  const { queues, isolatedPoolSize, isolation, celeryQueues, celeryFallbackQueue, ...settings } = resolveSettings(WORKER_SETTINGS, { options, env });
  const routes = resolveRoutes(options.routes, env);
  const taskQueues = [...options.tasks.byName.values()].map(t => t.queue ?? routes.queueFor(t.name) ?? DEFAULT_QUEUE);
  const isolationOf = isolationFor(isolation);
  const tasksModule = options.tasksModule ?? options.tasks.module ?? null;
  const isolatedTasks = [...options.tasks.byName.values()].filter(t => isolationOf(t) !== null);
  if (isolatedTasks.length > 0 && tasksModule === null) {
    throw new ConfigError(
      'WORKER_ISOLATION_NO_MODULE',
      'tasksModule',
      `Task "${isolatedTasks[0]?.name}" runs isolated, so its code must load by path: start the worker with --tasks <module>, or pass createWorker({ tasksModule }) (the module's path).`,
    );
  }
  return {
    ...settings,
    tasks: options.tasks,
    queues: checkQueues(queues ?? [...new Set(taskQueues)]),
    routes,
    connection: options.connection ?? {},
    prefix: resolvePrefix(env, options.prefix),
    logger: options.logger ?? createSilentLogger(),
    registry: options.registry ?? null,
    resultExpiresSeconds: resolveResultExpiresSeconds(env, options.resultExpiresSeconds),
    isolationOf,
    isolatedPoolSize: isolatedPoolSize ?? Math.max(1, Math.min(settings.concurrency, availableParallelism())),
    tasksModule,
    ...checkCeleryQueues(celeryQueues ?? [], celeryFallbackQueue),
    env,
  };
}

/** The Celery queues (the table's rows) as queue names, the fallback apart from them. */
function checkCeleryQueues(queues: string[], celeryFallbackQueue: string): { celeryQueues: string[]; celeryFallbackQueue: string } {
  const celeryQueues = [...new Set(queues)];
  for (const queue of [...celeryQueues, celeryFallbackQueue]) {
    if (!isQueueName(queue)) throw new ConfigError('WORKER_BAD_CELERY_QUEUE', 'celeryQueues', new InvalidNameError('queue', queue).message);
  }
  if (celeryQueues.includes(celeryFallbackQueue)) {
    throw new ConfigError(
      'WORKER_CELERY_FALLBACK_CONSUMED',
      'celeryFallbackQueue',
      `The Celery fallback queue "${celeryFallbackQueue}" is also a queue this worker consumes, so unknown tasks would come straight back; set TASKLINE_CELERY_FALLBACK_QUEUE / --celery-fallback-queue to a queue only Celery workers consume.`,
    );
  }
  return { celeryQueues, celeryFallbackQueue };
}
