import type { Registry } from 'prom-client';
import {
  assertQueueName,
  ConfigError,
  createSilentLogger,
  DEFAULT_QUEUE,
  parseIntegerSetting,
  resolvePrefix,
  type ConnectionOptions,
  type Logger,
} from '@taskline/shared';
import { isTaskSet, type TaskSet } from './tasks.js';

type Env = Record<string, string | undefined>;

export interface WorkerOptions {
  /** The tasks this worker runs: the result of `defineTasks(...)`. */
  tasks: TaskSet;
  /** Queues to consume. @defaultValue every queue the tasks name, plus `default` if a task names none */
  queues?: string[];
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
  /** Environment read for the defaults above. @defaultValue `process.env` */
  env?: Env;
}

export interface ResolvedWorkerOptions {
  tasks: TaskSet;
  queues: string[];
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
  startedDelayMs: number;
  maxResultBytes: number;
  progressIntervalMs: number;
  settleIntervalMs: number;
  env: Env;
}

function option(name: string, envName: string, value: number | undefined, env: Env, range: { min: number; max: number }, fallback: number): number {
  const fromOption = parseIntegerSetting(name, value, range);
  if (fromOption !== undefined) return fromOption;
  return parseIntegerSetting(envName, env[envName], range) ?? fallback;
}

/** Fills every default (options, then environment, then built-ins) and validates. */
export function resolveWorkerOptions(options: WorkerOptions): ResolvedWorkerOptions {
  if (!isTaskSet(options?.tasks)) {
    throw new ConfigError('WORKER_NO_TASKS', 'tasks', 'createWorker() needs `tasks`: the result of defineTasks({...}).');
  }
  const env = options.env ?? process.env;
  const taskQueues = [...options.tasks.tasks.values()].map(t => t.queue ?? DEFAULT_QUEUE);
  const queues = options.queues ?? [...new Set(taskQueues)];
  if (!Array.isArray(queues) || queues.length === 0) {
    throw new ConfigError('WORKER_NO_QUEUES', 'queues', 'The worker was given no queues; name at least one (e.g. --queues default).');
  }
  for (const queue of queues) {
    try {
      assertQueueName(queue);
    } catch (err) {
      throw new ConfigError('WORKER_BAD_QUEUE', 'queues', (err as Error).message);
    }
  }
  const lockDurationMs = option('lockDurationMs', 'TASKLINE_LOCK_DURATION_MS', options.lockDurationMs, env, { min: 1000, max: 86_400_000 }, 30_000);
  return {
    tasks: options.tasks,
    queues: [...new Set(queues)],
    concurrency: option('concurrency', 'TASKLINE_CONCURRENCY', options.concurrency, env, { min: 1, max: 10_000 }, 10),
    connection: options.connection ?? {},
    prefix: options.prefix ?? resolvePrefix(env),
    logger: options.logger ?? createSilentLogger(),
    registry: options.registry ?? null,
    shutdownGraceMs: option('shutdownGraceMs', 'TASKLINE_SHUTDOWN_GRACE_MS', options.shutdownGraceMs, env, { min: 0, max: 86_400_000 }, 30_000),
    lockDurationMs,
    stalledIntervalMs: option('stalledIntervalMs', 'TASKLINE_STALLED_INTERVAL_MS', options.stalledIntervalMs, env, { min: 100, max: 86_400_000 }, 30_000),
    maxStalledCount: option('maxStalledCount', 'TASKLINE_MAX_STALLED_COUNT', options.maxStalledCount, env, { min: 0, max: 1000 }, 3),
    resultWriteDeadlineMs: option('resultWriteDeadlineMs', 'RESULT_WRITE_DEADLINE_MS', options.resultWriteDeadlineMs, env, { min: 0, max: 3_600_000 }, 30_000),
    startedDelayMs: option('startedDelayMs', 'TASKLINE_STARTED_DELAY_MS', options.startedDelayMs, env, { min: 0, max: 60_000 }, 0),
    maxResultBytes: option('maxResultBytes', 'TASKLINE_MAX_RESULT_BYTES', options.maxResultBytes, env, { min: 1, max: 512 * 1024 * 1024 }, 1024 * 1024),
    progressIntervalMs: option('progressIntervalMs', 'TASKLINE_PROGRESS_INTERVAL_MS', options.progressIntervalMs, env, { min: 0, max: 600_000 }, 250),
    settleIntervalMs: option('settleIntervalMs', 'TASKLINE_SETTLE_INTERVAL_MS', options.settleIntervalMs, env, { min: 100, max: 3_600_000 }, 5000),
    env,
  };
}
