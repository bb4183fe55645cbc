// The example tasks: used by the demo, the docs and the tests.
// Run them with `taskline-worker start --tasks worker/examples/tasks.ts`.
import { defineTasks } from '@taskline/worker';

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    function onAbort(): void {
      clearTimeout(timer);
      reject(signal.reason);
    }
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

export default defineTasks({
  add: {
    run: (data: { a: number; b: number }) => data.a + data.b,
  },
  echo: {
    run: (data: unknown) => data,
  },
  sleep: {
    // Waits `ms`, stopping early (with the abort reason) on a time limit, revoke or forced shutdown.
    run: async (data: { ms: number }, ctx) => {
      await sleep(data.ms, ctx.signal);
      return { slept: data.ms };
    },
  },
  fail: {
    run: (data: { message?: string } | undefined) => {
      throw new Error(data?.message ?? 'This task always fails');
    },
  },
  flaky: {
    // Throws on the first `failTimes` attempts, then succeeds.
    run: (data: { failTimes: number }, ctx) => {
      if (ctx.attempt <= data.failTimes) throw new Error(`Flaky failure on attempt ${ctx.attempt} of ${ctx.attempts}`);
      return { attempt: ctx.attempt };
    },
    attempts: 5,
    backoff: { type: 'exponential', delayMs: 200, maxDelayMs: 2000 },
  },
});
