import { register } from 'node:module';

let registered = false;

/**
 * Prepares this process to import tasks modules: tsx's ESM loader (for .ts), then a hook that
 * makes `@taskline/worker` (and `@taskline/shared`) resolve, for every module imported from now
 * on, to this worker's own package, wherever the importing file lives. Once per process, in this
 * order: the hook then runs before tsx's and its "load .ts as ESM" mark survives.
 */
export async function prepareTaskModuleLoading(): Promise<void> {
  if (registered) return;
  registered = true;
  (await import('tsx/esm/api')).register();
  register('./resolve-hook.js', import.meta.url, { data: { workerFile: import.meta.url } });
}
