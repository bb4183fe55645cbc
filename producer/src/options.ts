import type { Registry } from 'prom-client';
import { InvalidNameError, isQueueName, createSilentLogger, resolveRoutes, type Backoff, type RouteTable, type Routes, type ConnectionOptions, type ResolvedConnectionOptions, type Logger, type TasklineConnections } from '@taskline/shared';
import { encodeBackoff, resolveBackoff, resolveResultExpiresSeconds, type EncodedBackoff } from '@taskline/shared/job';
import { resolvePrefix, resolveSettings } from '@taskline/shared/settings';
import { ValidationError } from './errors.js';
import { PRODUCER_SETTINGS } from './settings.js';
import { resolveKnownTasks, type KnownTasks, type ProducerTasks } from './known-tasks.js';

/**
 * BullMQ's own backoff shape, still accepted from before taskline had one `Backoff` shape:
 * `{ type, delay, jitter }` keeps BullMQ's meaning (no cap). Prefer `Backoff` (`delayMs`).
 * @deprecated use `Backoff`: `{ type, delayMs, maxDelayMs?, jitter? }`
 */
export interface BackoffOption {
  type: 'exponential' | 'fixed';
  /** @defaultValue `1000` */
  delay?: number;
  /** 0..1, exponential only. @defaultValue `0.5` */
  jitter?: number;
}

export interface ProducerOptions {
  /** Connection settings, layered over REDIS_* / RESULT_REDIS_* of `env`. Ignored when `connections` is given. */
  connection?: ConnectionOptions | ResolvedConnectionOptions;
  /** Connections made by the caller (and closed by the caller). @defaultValue made and owned by the producer */
  connections?: TasklineConnections;
  /** BullMQ key prefix and result-key prefix. @defaultValue `TASKLINE_PREFIX` or `taskline` */
  prefix?: string;
  /** Queue for jobs that name none and match no route. @defaultValue `default` */
  defaultQueue?: string;
  /**
   * Which queue each task goes to when the enqueue call names none: `{ "send-email": "email",
   * "reports.*": "reports" }`, or the path of a JSON file. Share one setting with every process.
   * @defaultValue `TASKLINE_ROUTES`, else none
   */
  routes?: RouteTable | Routes | string;
  /**
   * The tasks this producer enqueues: the tasks module's `defineTasks(...)` result (whose schemas
   * then validate data at enqueue) or their names. When set, a task that is neither one of them
   * nor named by a route is refused at enqueue (over HTTP too: 400 UNKNOWN_TASK).
   * @defaultValue `TASKLINE_TASKS` (comma-separated names), else any task
   */
  tasks?: ProducerTasks;
  /** Largest payload, in bytes of JSON. @defaultValue `TASKLINE_MAX_PAYLOAD_BYTES` or 524288 (512 KiB) */
  maxPayloadBytes?: number;
  /**
   * Seconds a job's record lives, and so how long an idempotency key keeps answering with its
   * first job. @defaultValue `RESULT_EXPIRES` or 86400
   */
  resultExpiresSeconds?: number;
  /** Failed jobs kept on the broker for `inspect`: at most this many... @defaultValue `1000` */
  keepFailedCount?: number;
  /** ...and at most this old, in seconds. @defaultValue `604800` (7 days) */
  keepFailedSeconds?: number;
  /** How long one enqueue may wait on Redis before failing with a ConnectionError. @defaultValue `10000` */
  enqueueTimeoutMs?: number;
  /** @defaultValue a silent logger */
  logger?: Logger;
  /** Where metrics go. @defaultValue the connections' registry */
  registry?: Registry;
  /** Environment to read settings from. @defaultValue `process.env` */
  env?: Record<string, string | undefined>;
}

export interface ResolvedProducerOptions {
  connection: ConnectionOptions | ResolvedConnectionOptions;
  connections: TasklineConnections | null;
  prefix: string;
  defaultQueue: string;
  routes: Routes;
  /** The tasks the producer was told of, with their schemas; `null`: any task. */
  knownTasks: KnownTasks | null;
  maxPayloadBytes: number;
  resultExpiresSeconds: number;
  keepFailedCount: number;
  keepFailedSeconds: number;
  enqueueTimeoutMs: number;
  logger: Logger;
  registry: Registry | null;
  env: Record<string, string | undefined>;
}

export const DEFAULT_MAX_PAYLOAD_BYTES = PRODUCER_SETTINGS.maxPayloadBytes.default;

function invalid(field: string, message: string): ValidationError {
  return new ValidationError('INVALID_OPTION', field, message);
}

export function checkQueueName(queue: unknown, field = 'queue'): string {
  if (typeof queue !== 'string') throw invalid(field, `${field} must be a string (a queue name), got ${typeof queue}.`);
  if (!isQueueName(queue)) throw new ValidationError('INVALID_OPTION', field, new InvalidNameError('queue', queue).message);
  return queue;
}

function integer(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(field, `${field} must be a whole number from ${min} to ${max}, got ${JSON.stringify(value) ?? String(value)}.`);
  }
  return value;
}

/**
 * The BullMQ `backoff` option of a job: a `Backoff` (`delayMs`) travels as taskline's own type;
 * the older BullMQ shape (`delay`, or a number of ms) is passed on as BullMQ's, as before.
 */
export function checkBackoff(value: unknown, field: string): EncodedBackoff {
  if (typeof value === 'number') return { type: 'fixed', delay: integer(field, value, 0, 86_400_000), jitter: 0 };
  if (value === null || typeof value !== 'object') {
    throw invalid(field, `${field} must be { type: 'exponential' | 'fixed', delayMs, maxDelayMs?, jitter? }.`);
  }
  if ('delayMs' in value || 'maxDelayMs' in value) {
    return encodeBackoff(resolveBackoff(value, field, (at, problem) => invalid(at, `${at} ${problem}`)));
  }
  const { type, delay = 1000, jitter = type === 'exponential' ? 0.5 : 0, ...rest } = value as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) throw invalid(field, `${field} has unknown field(s) ${extra.join(', ')}; use type, delay and jitter.`);
  if (type !== 'exponential' && type !== 'fixed') throw invalid(`${field}.type`, `${field}.type must be "exponential" or "fixed", got ${JSON.stringify(type)}.`);
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) throw invalid(`${field}.jitter`, `${field}.jitter must be a number from 0 to 1.`);
  return { type, delay: integer(`${field}.delay`, delay, 0, 86_400_000), jitter };
}

/**
 * Fills every producer default in one place and validates (the `PRODUCER_SETTINGS` rows; the
 * environment is one more layer). A bad setting is a ConfigError naming the option or variable.
 */
// `tasks` takes a tasks module as well as names: resolveKnownTasks reads it (its row documents it).
const { tasks: _tasks, ...RESOLVED_BY_TABLE } = PRODUCER_SETTINGS;

export function resolveProducerOptions(options: ProducerOptions = {}): ResolvedProducerOptions {
  const env = options.env ?? process.env;
  return {
    ...resolveSettings(RESOLVED_BY_TABLE, { options, env }),
    connection: options.connection ?? {},
    connections: options.connections ?? null,
    prefix: resolvePrefix(env, options.prefix),
    routes: resolveRoutes(options.routes, env),
    resultExpiresSeconds: resolveResultExpiresSeconds(env, options.resultExpiresSeconds),
    knownTasks: resolveKnownTasks(options.tasks, env),
    logger: options.logger ?? createSilentLogger(),
    registry: options.registry ?? null,
    env,
  };
}

/** Per-job options of `enqueue`. */
export interface EnqueueOptions {
  /** @defaultValue the task's route (`TASKLINE_ROUTES`), else the producer's `defaultQueue` */
  queue?: string;
  /** Milliseconds before the job may run. Not with `eta`. */
  delay?: number;
  /** Earliest time the job may run (Date or ISO string). Not with `delay`. */
  eta?: Date | string;
  /** 1 (first) to 2,097,151; unset = before all prioritised jobs. */
  priority?: number;
  /** Attempts in all, including the first. @defaultValue the task's `attempts` (set by the worker) */
  attempts?: number;
  /** @defaultValue the task's `backoff` (set by the worker) */
  backoff?: Backoff | BackoffOption | number;
  /**
   * Repeats with the same key and task return the first job's id for RESULT_EXPIRES seconds,
   * decided atomically on the broker: `deduplicated: true` only when that job really exists.
   */
  idempotencyKey?: string;
  /** A per-job time limit in ms; it can only lower the task's `timeoutMs`, on every attempt. */
  timeoutMs?: number;
}

export interface ResolvedEnqueueOptions {
  queue: string;
  delay: number;
  priority: number | undefined;
  attempts: number | undefined;
  /** As the BullMQ job carries it. */
  backoff: EncodedBackoff | undefined;
  idempotencyKey: string | undefined;
  timeoutMs: number | undefined;
}

const ENQUEUE_KEYS = new Set(['queue', 'delay', 'eta', 'priority', 'attempts', 'backoff', 'idempotencyKey', 'timeoutMs']);

/** Validates one job's options (from code or from an HTTP body) against the producer's defaults. */
export function resolveEnqueueOptions(input: unknown, defaults: ResolvedProducerOptions, now = Date.now(), task = ''): ResolvedEnqueueOptions {
  if (input === undefined || input === null) input = {};
  if (typeof input !== 'object' || Array.isArray(input)) throw invalid('options', 'options must be an object.');
  const o = input as Record<string, unknown>;
  const unknown = Object.keys(o).filter(k => !ENQUEUE_KEYS.has(k) && o[k] !== undefined);
  if (unknown.length > 0) throw invalid('options', `Unknown option(s) ${unknown.join(', ')}; allowed: ${[...ENQUEUE_KEYS].join(', ')}.`);
  if (o['delay'] !== undefined && o['eta'] !== undefined) throw invalid('options.eta', 'Give either options.delay or options.eta, not both.');
  let delay = o['delay'] === undefined ? 0 : integer('options.delay', o['delay'], 0, 31_536_000_000);
  if (o['eta'] !== undefined) {
    const eta = o['eta'];
    const at = eta instanceof Date ? eta.getTime() : typeof eta === 'string' ? Date.parse(eta) : Number.NaN;
    if (!Number.isFinite(at)) throw invalid('options.eta', `options.eta must be a Date or an ISO 8601 time such as "2030-01-01T09:00:00Z", got ${JSON.stringify(eta)}.`);
    delay = Math.max(0, at - now);
  }
  const key = o['idempotencyKey'];
  if (key !== undefined && (typeof key !== 'string' || key.length === 0 || key.length > 256)) {
    throw invalid('options.idempotencyKey', 'options.idempotencyKey must be a string of 1 to 256 characters.');
  }
  return {
    queue: o['queue'] === undefined ? (defaults.routes.queueFor(task) ?? defaults.defaultQueue) : checkQueueName(o['queue'], 'options.queue'),
    delay,
    priority: o['priority'] === undefined ? undefined : integer('options.priority', o['priority'], 1, 2_097_151),
    attempts: o['attempts'] === undefined ? undefined : integer('options.attempts', o['attempts'], 1, 1000),
    backoff: o['backoff'] === undefined ? undefined : checkBackoff(o['backoff'], 'options.backoff'),
    idempotencyKey: key as string | undefined,
    timeoutMs: o['timeoutMs'] === undefined ? undefined : integer('options.timeoutMs', o['timeoutMs'], 1, 86_400_000),
  };
}
