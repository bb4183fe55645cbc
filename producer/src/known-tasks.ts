import { isTaskName, type Routes, type StandardSchemaV1 } from '@taskline/shared';
import { checkSchema, describeSchemaProblem } from '@taskline/shared/job';
import type { PreparedJob } from './enqueue.js';
import { ValidationError } from './errors.js';

/** What `defineTasks` returns, as far as a producer reads it (it never imports @taskline/worker). */
export interface TaskSetLike {
  readonly kind: 'taskline.tasks';
  readonly byName: ReadonlyMap<string, { readonly schema?: StandardSchemaV1 | null }>;
}

/** The `tasks` option: a tasks module's `defineTasks(...)` result, or task names. */
export type ProducerTasks = TaskSetLike | readonly string[];

/** Task names to their schemas (`null`: none). */
export type KnownTasks = ReadonlyMap<string, StandardSchemaV1 | null>;

function invalid(field: string, message: string): ValidationError {
  return new ValidationError('INVALID_OPTION', field, message);
}

function isTaskSetLike(value: unknown): value is TaskSetLike {
  return typeof value === 'object' && value !== null && (value as TaskSetLike).kind === 'taskline.tasks' && (value as TaskSetLike).byName instanceof Map;
}

/** The `tasks` option, else `TASKLINE_TASKS` (comma-separated names), else `null` (any task). */
export function resolveKnownTasks(option: ProducerTasks | undefined, env: Record<string, string | undefined>): KnownTasks | null {
  if (option !== undefined && isTaskSetLike(option)) {
    return new Map([...option.byName].map(([name, task]) => [name, task.schema ?? null]));
  }
  const field = option !== undefined ? 'tasks' : 'TASKLINE_TASKS';
  const names = option ?? (env['TASKLINE_TASKS'] ?? '').split(',').map(name => name.trim()).filter(Boolean);
  if (!Array.isArray(names)) throw invalid(field, 'tasks must be the defineTasks(...) result of the tasks module, or an array of task names.');
  if (names.length === 0) return null;
  for (const name of names) {
    if (typeof name !== 'string' || !isTaskName(name)) throw invalid(field, `${field} has ${JSON.stringify(name)}, which is not a task name; list the tasks' names, comma-separated.`);
  }
  return new Map(names.map(name => [name, null]));
}

/** A task the producer was told of, or one a route sends somewhere; anything else is refused. */
export function assertKnownTask(task: string, known: KnownTasks | null, routes: Routes): void {
  if (known === null || known.has(task) || routes.queueFor(task) !== null) return;
  const names = [...known.keys()];
  throw new ValidationError(
    'UNKNOWN_TASK',
    'task',
    `No task named "${task.slice(0, 200)}" is known to this producer (it knows ${names.slice(0, 20).join(', ')}${names.length > 20 ? ', ...' : ''}) and no route names it; fix the task name, or add the task to the producer's tasks (the tasks module, or TASKLINE_TASKS) or to TASKLINE_ROUTES.`,
  );
}

/** The first job whose data breaks its task's schema, as the error to throw (`null`: all valid). */
export async function schemaProblem(known: KnownTasks | null, prepared: readonly PreparedJob[]): Promise<ValidationError | null> {
  if (!known) return null;
  for (const [i, job] of prepared.entries()) {
    const schema = known.get(job.task);
    if (!schema) continue;
    const checked = await checkSchema(schema, job.data);
    if (!checked.ok) {
      const where = prepared.length > 1 ? `jobs[${i}].` : '';
      return new ValidationError('INVALID_DATA', `${where}${checked.problem.field}`, `${where ? `jobs[${i}]: ` : ''}${describeSchemaProblem(job.task, checked)}`);
    }
  }
  return null;
}
