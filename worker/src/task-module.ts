import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '@taskline/shared';
import { isTaskSet, type TaskSet } from './tasks.js';

/**
 * Imports a tasks module: its default export or its `tasks` export must be `defineTasks(...)`.
 * A `.ts` (or `.mts`/`.cts`) module is loaded through tsx, registered only then.
 */
export async function loadTaskModule(path: string): Promise<TaskSet> {
  const file = resolve(path);
  if (!existsSync(file)) {
    throw new ConfigError('TASKS_MODULE_NOT_FOUND', '--tasks', `The tasks module ${file} does not exist; pass the path of a module that exports defineTasks(...).`);
  }
  if (/\.[mc]?ts$/.test(file)) {
    const { register } = await import('tsx/esm/api');
    register();
  }
  let loaded: Record<string, unknown>;
  try {
    loaded = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError('TASKS_MODULE_FAILED', '--tasks', `The tasks module ${file} failed to load: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const candidate = isTaskSet(loaded['default']) ? loaded['default'] : loaded['tasks'];
  if (!isTaskSet(candidate)) {
    throw new ConfigError(
      'TASKS_MODULE_INVALID',
      '--tasks',
      `The tasks module ${file} exports no tasks; make its default export (or an export named "tasks") the result of defineTasks({...}) from '@taskline/worker'.`,
    );
  }
  return Object.freeze({ kind: candidate.kind, tasks: candidate.tasks, module: file });
}
