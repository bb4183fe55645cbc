/**
 * A module-resolution hook (node:module `register`), run on the loader thread: `@taskline/*`
 * imported by a tasks module resolves from the running worker's own package, so a tasks file
 * mounted outside any install tree (e.g. /tasks/tasks.mjs in the container) finds
 * `@taskline/worker` without a node_modules of its own, and every tasks module shares the
 * worker's copy.
 */

interface ResolveContext {
  parentURL?: string | undefined;
  conditions: string[];
  importAttributes?: Record<string, string>;
}
type NextResolve = (specifier: string, context?: ResolveContext) => Promise<{ url: string; format?: string | null; shortCircuit?: boolean }>;

/** The URL of a file of the worker package: a specifier resolved as if imported from there. */
let workerFile: string | null = null;

export function initialize(data: { workerFile: string }): void {
  workerFile = data.workerFile;
}

/** Marks the import of a TypeScript tasks module: ESM whatever its package's "type" (tsx compiles it). */
const AS_MODULE = 'taskline-tasks-module';

export async function resolve(specifier: string, context: ResolveContext, nextResolve: NextResolve) {
  if (specifier.endsWith(`?${AS_MODULE}`)) {
    const resolved = await nextResolve(specifier, context);
    return { ...resolved, format: 'module' };
  }
  if (workerFile && (specifier === '@taskline/worker' || specifier.startsWith('@taskline/worker/') || specifier === '@taskline/shared' || specifier.startsWith('@taskline/shared/'))) {
    return nextResolve(specifier, { ...context, parentURL: workerFile });
  }
  return nextResolve(specifier, context);
}
