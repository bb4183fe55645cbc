import { ConfigError, InvalidNameError, isQueueName, isTaskName, type Backoff, type Logger, type StandardSchemaV1, type TypedTaskSet } from '@taskline/shared';
import type { TaskMap } from '@taskline/shared';
import { DEFAULT_BACKOFF, isStandardSchema, resolveBackoff, type ResolvedBackoff } from '@taskline/shared/job';

/** Where an isolated handler runs: a child process (Celery's prefork) or a worker thread. */
export type IsolationKind = 'process' | 'thread';

/** How long to wait between attempts: the one backoff shape of every taskline API. */
export type TaskBackoff = Backoff;

/** At most `max` starts of this task per `durationMs` window, across every worker on the broker. */
export interface TaskRateLimit {
  max: number;
  durationMs: number;
}

/** What a handler receives besides its data. */
export interface TaskContext {
  jobId: string;
  task: string;
  queue: string;
  /** 1-based attempt number. */
  attempt: number;
  /** Attempts allowed in all. */
  attempts: number;
  /**
   * How many times the broker has handed this job to a worker, this time included (retries,
   * redeliveries after a lost worker, and rate-limit deferrals each count).
   */
  delivery: number;
  /**
   * True when an earlier delivery of this job started and never ended (its worker was killed,
   * frozen or blocked past its lock): side effects of that run may have happened. Delivery is at
   * least once: make handlers idempotent, e.g. keyed on `jobId`.
   */
  redelivered: boolean;
  /** Aborts at the time limit, on revoke, or on a forced shutdown; `signal.reason` says which. */
  signal: AbortSignal;
  /** Bound to jobId, task and queue. */
  logger: Logger;
  /**
   * Reports progress: a number or a JSON object (≤ 16 KiB). Stored on the job's record (at most
   * every `progressIntervalMs`, the latest value always kept) and published to callers watching
   * the job (`producer.watch`, `waitForResult({ onProgress })`, the HTTP event stream). Resolves
   * at once; rejects only for a value that is not JSON or too large.
   */
  progress(value: number | object): Promise<void>;
}

// Handlers take their payload typed by the caller; `any` keeps the definition map assignable.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type TaskHandler<Data = any, Result = unknown> = (data: Data, ctx: TaskContext) => Promise<Result> | Result;

export interface TaskDefinition<Data = unknown, Result = unknown> {
  run: TaskHandler<Data, Result>;
  /**
   * Validates the job's data before the handler runs (invalid: FAILURE naming the field, no
   * retry), and at enqueue where the producer has the tasks (`createProducer({ tasks })`): any
   * Standard Schema (zod, valibot, arktype...). The handler gets the schema's output.
   * @defaultValue none: the data is not checked
   */
  schema?: StandardSchemaV1<unknown, Data>;
  /** Attempts in all, when the enqueue call gives none. @defaultValue `1` (no retry) */
  attempts?: number;
  /** Backoff between attempts, when the enqueue call gives none. @defaultValue exponential from 1000 ms, capped at 1 h, half of each delay random */
  backoff?: TaskBackoff;
  /**
   * Soft time limit per attempt: `ctx.signal` aborts and the attempt fails with TimeLimitError (a
   * job's own `timeoutMs` can only lower it). A handler that ignores the signal keeps running —
   * reported, and killed at `hardTimeoutMs` if the task is isolated. @defaultValue none
   */
  timeoutMs?: number;
  /**
   * Hard time limit (isolated tasks): the runner is killed this long after the handler started,
   * and the attempt fails with TimeLimitError. Celery's `time_limit` beside `soft_time_limit`.
   * @defaultValue for isolated tasks with a `timeoutMs`, `timeoutMs` + the worker's kill grace; else none
   */
  hardTimeoutMs?: number;
  /**
   * Run the handler outside the worker's event loop, in a pool of child processes (`true` or
   * `'process'`) or worker threads (`'thread'`): a CPU-bound handler never stalls lock renewal or
   * other jobs, and can be killed at its hard limit. Its code must load from the tasks module.
   * @defaultValue `false`, unless the worker runs with `--isolation`
   */
  isolated?: boolean | IsolationKind;
  /**
   * The queue this worker consumes the task from. Producers route by `TASKLINE_ROUTES`: give
   * every process the same routes (a worker warns when the two disagree). @defaultValue the task's route, else `default`
   */
  queue?: string;
  rateLimit?: TaskRateLimit;
}

/** A validated task with every default filled. */
export interface ResolvedTask {
  name: string;
  run: TaskHandler;
  attempts: number;
  backoff: ResolvedBackoff;
  timeoutMs: number | null;
  hardTimeoutMs: number | null;
  /** `true`: the worker's default kind; `false`: never (even under `--isolation`); `null`: as the worker says. */
  isolated: IsolationKind | boolean | null;
  queue: string | null;
  rateLimit: TaskRateLimit | null;
  schema: StandardSchemaV1 | null;
}

/**
 * The frozen result of `defineTasks`: what `createWorker({ tasks })` and `--tasks <module>` take.
 * Its type carries each task's data and result types, for `createProducer<typeof tasks>()`.
 */
export interface TaskSet<Tasks extends TaskMap = TaskMap> extends TypedTaskSet<Tasks> {
  readonly kind: 'taskline.tasks';
  readonly byName: ReadonlyMap<string, ResolvedTask>;
  /** The module the tasks were loaded from (set by `loadTaskModule` / `--tasks`): isolated runners load it too. */
  readonly module?: string;
}

function invalid(task: string, field: string, message: string): ConfigError {
  return new ConfigError('TASK_INVALID', `${task}.${field}`, `Task "${task}": ${field} ${message}`);
}

function positiveInt(task: string, field: string, value: unknown, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw invalid(task, field, `must be a whole number from 1 to ${max}, got ${JSON.stringify(value)}.`);
  }
  return value;
}

function resolveTask(name: string, def: TaskDefinition): ResolvedTask {
  if (!isTaskName(name)) throw new ConfigError('TASK_INVALID', name, new InvalidNameError('task', name).message);
  if (def === null || typeof def !== 'object' || typeof def.run !== 'function') {
    throw invalid(name, 'run', 'must be a function (data, ctx) => result.');
  }
  const known = new Set(['run', 'schema', 'attempts', 'backoff', 'timeoutMs', 'hardTimeoutMs', 'isolated', 'queue', 'rateLimit']);
  for (const key of Object.keys(def)) {
    if (!known.has(key)) throw invalid(name, key, `is not a task option; use one of ${[...known].join(', ')}.`);
  }
  let queue: string | null = null;
  if (def.queue !== undefined) {
    if (!isQueueName(def.queue)) throw invalid(name, 'queue', new InvalidNameError('queue', def.queue).message);
    queue = def.queue;
  }
  let rateLimit: TaskRateLimit | null = null;
  if (def.rateLimit !== undefined) {
    rateLimit = {
      max: positiveInt(name, 'rateLimit.max', def.rateLimit?.max, 1_000_000),
      durationMs: positiveInt(name, 'rateLimit.durationMs', def.rateLimit?.durationMs, 86_400_000),
    };
  }
  const timeoutMs = def.timeoutMs === undefined ? null : positiveInt(name, 'timeoutMs', def.timeoutMs, 2_147_483_647);
  const hardTimeoutMs = def.hardTimeoutMs === undefined ? null : positiveInt(name, 'hardTimeoutMs', def.hardTimeoutMs, 2_147_483_647);
  if (hardTimeoutMs !== null && timeoutMs !== null && hardTimeoutMs < timeoutMs) {
    throw invalid(name, 'hardTimeoutMs', `(${hardTimeoutMs}) is below timeoutMs (${timeoutMs}); the hard limit kills after the soft one, so raise it.`);
  }
  if (def.schema !== undefined && !isStandardSchema(def.schema)) {
    throw invalid(name, 'schema', 'must be a Standard Schema (an object with "~standard".validate, as zod, valibot and arktype schemas are).');
  }
  const isolated = def.isolated;
  if (isolated !== undefined && typeof isolated !== 'boolean' && isolated !== 'process' && isolated !== 'thread') {
    throw invalid(name, 'isolated', `must be true, false, "process" or "thread", got ${JSON.stringify(isolated)}.`);
  }
  return {
    name,
    run: def.run as TaskHandler,
    attempts: def.attempts === undefined ? 1 : positiveInt(name, 'attempts', def.attempts, 1000),
    backoff: def.backoff === undefined ? DEFAULT_BACKOFF : resolveBackoff(def.backoff, 'backoff', (field, problem) => invalid(name, field, problem)),
    timeoutMs,
    hardTimeoutMs,
    isolated: isolated ?? null,
    queue,
    rateLimit,
    schema: def.schema ?? null,
  };
}

/**
 * Declares a module's tasks: `export default defineTasks({ 'send-email': { run: async (data, ctx) => … } })`.
 * Names and options are validated here, so a typo fails at start-up, not at the first job.
 */
// Each task's data type is its own; `any` lets one map hold them all.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDefinition = TaskDefinition<any, unknown>;

/** What a task is enqueued with: its schema's input, else its handler's data parameter. */
type DataOf<Def> = Def extends { schema: StandardSchemaV1<infer Input, unknown> } ? Input : Def extends { run: (data: infer Data, ctx: TaskContext) => unknown } ? Data : unknown;

/** The task map (names to data and result types) of a `defineTasks` argument. */
export type TaskMapOfDefinitions<Defs extends Record<string, AnyDefinition>> = {
  [Name in keyof Defs & string]: { data: DataOf<Defs[Name]>; result: Awaited<ReturnType<Defs[Name]['run']>> };
};

export function defineTasks<Defs extends Record<string, AnyDefinition>>(definitions: Defs): TaskSet<TaskMapOfDefinitions<Defs>> {
  if (definitions === null || typeof definitions !== 'object' || Array.isArray(definitions)) {
    throw new ConfigError('TASK_INVALID', 'tasks', 'defineTasks() takes an object mapping task names to { run, ...options }.');
  }
  const tasks = new Map<string, ResolvedTask>();
  for (const [name, def] of Object.entries(definitions)) tasks.set(name, resolveTask(name, def as TaskDefinition));
  if (tasks.size === 0) throw new ConfigError('TASK_INVALID', 'tasks', 'defineTasks() was given no tasks; define at least one.');
  return Object.freeze({ kind: 'taskline.tasks' as const, byName: tasks });
}

export function isTaskSet(value: unknown): value is TaskSet {
  return typeof value === 'object' && value !== null && (value as TaskSet).kind === 'taskline.tasks' && (value as TaskSet).byName instanceof Map;
}
