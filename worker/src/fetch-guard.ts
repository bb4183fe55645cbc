import type { Worker } from 'bullmq';
import { TasklineError } from '@taskline/shared';
import { backoffDelay, sleep } from '@taskline/shared/process';

/** Backoff between fetches the broker refuses: 200 ms doubling to 5 s (with jitter). */
const FETCH_BACKOFF = { baseMs: 200, capMs: 5000 };

/**
 * BullMQ waits before fetching again only when the connection was lost; any other refusal of a
 * fetch (NOPERM, a script that is not loaded, OOM) is retried at once, so a worker whose user
 * may not run the fetch spins at full CPU, one refused command per loop, while it looks ready.
 * The guard backs such fetches off and remembers the refusal, so `/readyz` reports it (with its
 * cause) until a fetch succeeds.
 */
export class FetchGuard {
  readonly #abort = new AbortController();
  #failures = 0;
  #lastError: Error | null = null;

  /** The refusal of the last fetch, while fetches keep failing; `null` once one succeeds. */
  get failing(): Error | null {
    return this.#lastError;
  }

  /**
   * Wraps the worker's fetch. Returns false (and changes nothing) if this BullMQ version has no
   * fetch method of that name: the worker then runs with BullMQ's own behaviour.
   */
  install(worker: Worker): boolean {
    const target = worker as unknown as { _getNextJob?: (...args: unknown[]) => Promise<unknown> };
    const fetch = target._getNextJob;
    if (typeof fetch !== 'function') return false;
    target._getNextJob = async (...args: unknown[]): Promise<unknown> => {
      try {
        const job = await fetch.apply(worker, args);
        this.#failures = 0;
        this.#lastError = null;
        return job;
      } catch (err) {
        if (isRefusal(err) && !this.#abort.signal.aborted) {
          this.#failures += 1;
          this.#lastError = err instanceof Error ? err : new Error(String(err));
          await sleep(backoffDelay(this.#failures, FETCH_BACKOFF), this.#abort.signal);
        }
        throw err;
      }
    };
    return true;
  }

  /** Ends any backoff at once (the worker is closing). */
  stop(): void {
    this.#abort.abort();
  }
}

/**
 * An answer of Redis refusing the fetch (an error reply, or taskline's sentence for one). Lost
 * connections and timeouts pace themselves (BullMQ waits on the former, the latter take their
 * timeout), and readiness already covers them through the health check.
 */
function isRefusal(err: unknown): boolean {
  return err instanceof TasklineError || (err instanceof Error && err.name === 'ReplyError');
}
