import { register } from 'node:module';

let registered = false;

/**
 * Makes `@taskline/worker` (and `@taskline/shared`) resolve, for every module imported from
 * now on, to this worker's own package, wherever the importing file lives. Once per process.
 */
export function provideOwnPackages(): void {
  if (registered) return;
  registered = true;
  register('./resolve-hook.js', import.meta.url, { data: { workerFile: import.meta.url } });
}
