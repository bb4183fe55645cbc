import { register } from 'node:module';

let hookFirst = false;
let tsxRegistered = false;

/**
 * Prepares this process to import a tasks module: tsx's ESM loader for a TypeScript one, and a
 * hook that makes `@taskline/worker` (and `@taskline/shared`), for every module imported from
 * now on, resolve to this worker's own package, wherever the importing file lives. The hook is
 * (re)registered after tsx, so it runs first and its "load this .ts as ESM" mark survives.
 */
export async function prepareTaskModuleLoading(typescript: boolean): Promise<void> {
  if (typescript && !tsxRegistered) {
    tsxRegistered = true;
    hookFirst = false;
    (await import('tsx/esm/api')).register();
  }
  if (hookFirst) return;
  hookFirst = true;
  register('./resolve-hook.js', import.meta.url, { data: { workerFile: import.meta.url } });
}
