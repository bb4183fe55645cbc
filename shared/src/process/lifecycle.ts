import { TasklineError } from '../errors.js';
import type { Logger } from './logger.js';

/**
 * Where a long-lived taskline object (connections, producer, worker, beat) is in its life. Not
 * every object passes through every state: only a worker drains in-flight jobs.
 * - `idle`: built, nothing opened yet;
 * - `starting`: connecting (or loading what it needs);
 * - `ready`: doing its work;
 * - `draining`: letting in-flight work finish before it closes;
 * - `closing`: closing what it opened;
 * - `closed`: nothing left open; it cannot be started again.
 */
export type LifecycleState = 'idle' | 'starting' | 'ready' | 'draining' | 'closing' | 'closed';

/** What `withTimeout` rejects with when the time runs out. */
export class TimeoutError extends TasklineError {
  override name = 'TimeoutError';
  readonly timeoutMs: number;
  constructor(what: string, timeoutMs: number) {
    super('TIMEOUT', `${what} timed out after ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Settles as `work` does, or rejects after `ms` with a TimeoutError naming `what` (or with the
 * error `what()` makes). The timer is cleared either way; a late rejection of `work` is dropped.
 */
export function withTimeout<T>(work: PromiseLike<T>, ms: number, what: string | (() => Error)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(typeof what === 'string' ? new TimeoutError(what, ms) : what()), ms);
  });
  const settled = Promise.resolve(work);
  settled.catch(() => undefined);
  return Promise.race([settled, timeout]).finally(() => clearTimeout(timer));
}

/** What a close step is given: a signal that aborts when its time is up, and the time left. */
export interface CloseContext {
  /** Aborts at the deadline (or when the close is forced): cut whatever is still open. */
  readonly signal: AbortSignal;
  /** Milliseconds left before the deadline; 0 once it has passed. */
  remainingMs(): number;
}

/** One thing to close, named in the warning if it fails or overruns. */
export interface CloseStep {
  name: string;
  close(ctx: CloseContext): unknown;
}

/** How a `closeInOrder` ended: `failed` threw or rejected, `overran` were still running at the deadline. */
export interface CloseReport {
  ok: boolean;
  failed: string[];
  overran: string[];
}

export interface CloseInOrderOptions {
  /** Failures and overruns are logged here as warnings, naming `owner` and the step. */
  logger?: Logger;
  /** What is being closed, e.g. `the worker`. @defaultValue `'taskline'` */
  owner?: string;
  /** Aborting it ends the grace at once (a second signal). */
  force?: AbortSignal;
}

/**
 * Runs close steps in order, one deadline (`graceMs` from now) for all of them. An entry that is
 * an array is a group of independent steps run in parallel. Every step runs even if one before it
 * failed (the failure is logged, as BullMQ's Worker.close and graphile's releasers do). At the
 * deadline, or when `force` aborts, the step contexts' signal aborts and the steps not yet done
 * are still started, in order, but no longer waited for: the close ends on time, whatever hangs.
 */
export async function closeInOrder(steps: ReadonlyArray<CloseStep | readonly CloseStep[]>, graceMs: number, options: CloseInOrderOptions = {}): Promise<CloseReport> {
  const owner = options.owner ?? 'taskline';
  const deadline = performance.now() + graceMs;
  const expired = new AbortController();
  const timer = setTimeout(() => expired.abort(new TimeoutError(`Closing ${owner}`, graceMs)), graceMs);
  const onForce = (): void => expired.abort(options.force?.reason);
  if (options.force?.aborted) onForce();
  else options.force?.addEventListener('abort', onForce, { once: true });
  const ctx: CloseContext = { signal: expired.signal, remainingMs: () => Math.max(0, Math.round(deadline - performance.now())) };
  const report: CloseReport = { ok: true, failed: [], overran: [] };
  let reported = false;
  const run = async (step: CloseStep): Promise<void> => {
    try {
      await step.close(ctx);
    } catch (err) {
      if (!reported) {
        report.ok = false;
        report.failed.push(step.name);
      }
      options.logger?.warn(`Closing ${owner}: ${step.name} failed`, { error: err });
    }
  };
  const timeUp = new Promise<'overran'>(resolve => {
    if (expired.signal.aborted) resolve('overran');
    else expired.signal.addEventListener('abort', () => resolve('overran'), { once: true });
  });
  try {
    for (const entry of steps) {
      const group: readonly CloseStep[] = isGroup(entry) ? entry : [entry];
      const pending = new Set(group.map(step => step.name));
      const done = Promise.all(group.map(step => run(step).finally(() => pending.delete(step.name))));
      // Past the deadline a step still gets one turn of the event loop: cutting a socket is quick.
      const waitFor = expired.signal.aborted ? new Promise<'overran'>(resolve => setImmediate(() => resolve('overran'))) : timeUp;
      if ((await Promise.race([done, waitFor])) === 'overran' && pending.size > 0) {
        report.ok = false;
        report.overran.push(...pending);
        options.logger?.warn(`Closing ${owner}: ${[...pending].join(', ')} did not finish in time; moving on`, { graceMs });
      }
    }
  } finally {
    reported = true;
    clearTimeout(timer);
    options.force?.removeEventListener('abort', onForce);
  }
  return report;
}

function isGroup(entry: CloseStep | readonly CloseStep[]): entry is readonly CloseStep[] {
  return Array.isArray(entry);
}
