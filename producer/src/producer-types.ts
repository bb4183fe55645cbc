import type { JobResultRecord, TaskData, TaskMap, TaskName, TaskRecord, TaskResult } from '@taskline/shared';
import type { BulkJob } from './enqueue.js';
import type { Producer } from './producer.js';

/** The record `getResult`/`waitForResult` give for an id from `enqueue`: `result` typed by its task. */
export type RecordOf<Tasks extends TaskMap, Task extends string> = [Task] extends [never] ? JobResultRecord : TaskRecord<TaskResult<Tasks, Task>>;

/** A producer typed by any tasks: what the HTTP API serves. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the API takes any task by name, whatever the producer's types.
export type AnyProducer = Producer<any>;

/** One job of `enqueueBulk`, its data checked against its task's. */
export type TypedBulkJob<Tasks extends TaskMap> = { [Task in TaskName<Tasks>]: BulkJob<Task, TaskData<Tasks, Task>> }[TaskName<Tasks>];
