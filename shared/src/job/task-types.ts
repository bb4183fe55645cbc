import type { JobResultRecord } from './job-contract.js';

/**
 * The types that connect a producer to the tasks it enqueues, shared by @taskline/worker (which
 * derives them from `defineTasks`) and @taskline/producer (which checks against them), so the
 * producer needs the tasks module's types only: `import type tasks from './tasks.js'`.
 */

/** What one task takes and gives. */
export interface TaskSignature<Data = unknown, Result = unknown> {
  data: Data;
  result: Result;
}

/** Task names to their signatures: `{ 'send-email': { data: { to: string }; result: void } }`. */
export type TaskMap = { [task: string]: TaskSignature };

/** What a producer told nothing about its tasks accepts: any task name, any data, results `unknown`. */
export type UntypedTasks = { [task: string]: TaskSignature<unknown, unknown> };

/** Carries a task map's types (what `defineTasks` returns); the property exists in types only. */
export interface TypedTaskSet<Tasks extends TaskMap = TaskMap> {
  readonly '~tasks'?: Tasks;
}

/** The task map of `typeof tasks` (a `defineTasks` result) or of a task map itself. */
export type TaskMapOf<T> = T extends { readonly '~tasks'?: infer Tasks } ? (Tasks extends TaskMap ? Tasks : UntypedTasks) : T extends TaskMap ? T : UntypedTasks;

/** The task names of a map (`string` when untyped). */
export type TaskName<Tasks extends TaskMap> = keyof Tasks & string;

/** The data a task is enqueued with. */
export type TaskData<Tasks extends TaskMap, Task extends string> = Task extends keyof Tasks ? Tasks[Task]['data'] : unknown;

/** What a task's handler returns (resolved). */
export type TaskResult<Tasks extends TaskMap, Task extends string> = Task extends keyof Tasks ? Awaited<Tasks[Task]['result']> : unknown;

declare const jobTask: unique symbol;

/**
 * A job id that remembers its task in types only (`enqueue` returns one), so `getResult` and
 * `waitForResult` type the record's `result`. Any string is still accepted where an id is.
 */
export type JobId<Task extends string = string> = string & { readonly [jobTask]?: Task };

/** A job record whose `result` has its task's result type. */
export type TaskRecord<Result = unknown> = Omit<JobResultRecord, 'result'> & {
  /** The handler's return value (SUCCESS only). */
  result?: Result;
};
