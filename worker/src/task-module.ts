import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '@taskline/shared';
import { prepareTaskModuleLoading } from './package-resolution.js';
import { isTaskSet, type TaskSet } from './tasks.js';

/**
 * Imports a tasks module: its default export or its `tasks` export must be `defineTasks(...)`.
 * A `.ts` (or `.mts`/`.cts`) module is loaded through tsx, registered only then. Its imports of
 * `@taskline/worker` resolve to this worker's own package, so the module may live anywhere.
 */
export async function loadTaskModule(path: string): Promise<TaskSet> {
  const file = resolve(path);
  if (!existsSync(file)) {
    throw new ConfigError('TASKS_MODULE_NOT_FOUND', '--tasks', `The tasks module ${file} does not exist; pass the path of a module that exports defineTasks(...).`);
  }
  let loaded: Record<string, unknown>;
  try {
    // A .ts/.mts module loads as ESM through tsx, even in a CommonJS package (where require() could not load its imports).
    const typescript = /\.m?ts$/.test(file);
    await prepareTaskModuleLoading(/\.[mc]?ts$/.test(file));
    loaded = (await import(`${pathToFileURL(file).href}${typescript ? '?taskline-tasks-module' : ''}`)) as Record<string, unknown>;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError('TASKS_MODULE_FAILED', '--tasks', `The tasks module ${file} failed to load: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  // A CommonJS module's exports are its default export (`exports.default` compiled from `export default` included).
  const commonJs = (loaded['default'] ?? {}) as Record<string, unknown>;
  const candidate = [loaded['default'], loaded['tasks'], commonJs['default'], commonJs['tasks']].find(isTaskSet);
  if (!isTaskSet(candidate)) {
    throw new ConfigError(
      'TASKS_MODULE_INVALID',
      '--tasks',
      `The tasks module ${file} exports no tasks; make its default export (or an export named "tasks") the result of defineTasks({...}) from '@taskline/worker'.`,
    );
  }
  return Object.freeze({ kind: candidate.kind, byName: candidate.byName, module: file });
}
