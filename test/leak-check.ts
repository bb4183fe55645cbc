// A root hook plugin (.mocharc.cjs `require`): after the last test, nothing the suites started may
// still run — no socket, server, child process or timer keeping the event loop alive. Mocha runs
// without --exit, so a leak would otherwise hang the run instead of naming itself.
import { getActiveResourcesInfo } from 'node:process';

/** Resource kinds that belong to the test runner itself. */
const RUNNER = new Set(['TTYWrap', 'PipeWrap', 'FSReqCallback', 'Immediate', 'PromiseResolveThenableJob']);

function leaks(): string[] {
  return getActiveResourcesInfo().filter(kind => !RUNNER.has(kind));
}

/**
 * Runs `fn` with mocha's timeout timer of the running hook unref'd, so that timer, which mocha
 * starts once the hook returns its promise, is not counted as a leak (it was, as `{"Timeout":1}`,
 * whenever the first look found something still closing and the hook had to wait). It still fires
 * if the hook overruns: the hook's own polling timer keeps the event loop alive meanwhile.
 */
async function withoutRunnerTimer<T>(ctx: Mocha.Context, fn: () => Promise<T>): Promise<T> {
  // Mocha sets the timer right after the hook returns its promise: look once that has happened.
  await Promise.resolve();
  const timer = (ctx.runnable() as { timer?: NodeJS.Timeout }).timer;
  const wasRefed = timer?.hasRef() ?? false;
  timer?.unref();
  try {
    return await fn();
  } finally {
    if (wasRefed) timer?.ref();
  }
}

export const mochaHooks = {
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(15_000);
    const left = await withoutRunnerTimer(this, async () => {
      const deadline = Date.now() + 10_000;
      // Closing sockets and exiting children take a moment: wait for them, bounded. The sleep's
      // timer is ref'd (it keeps the loop alive while we wait) and has fired before each look.
      while (leaks().length > 0 && Date.now() < deadline) await new Promise(resolve => setTimeout(resolve, 100));
      return leaks();
    });
    if (left.length > 0) {
      const counts = left.reduce<Record<string, number>>((acc, kind) => ({ ...acc, [kind]: (acc[kind] ?? 0) + 1 }), {});
      const message = `Handles left open after the last test (they keep the process alive): ${JSON.stringify(counts)}; close what the test started.`;
      // Whatever leaked must not hang CI: fail loudly, then leave once mocha has reported.
      setTimeout(() => process.exit(process.exitCode || 1), 5000).unref();
      throw new Error(message);
    }
  },
};
