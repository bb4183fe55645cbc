/** Exponential backoff with jitter, shared by reconnects, start-up attempts and result writes. */
export interface BackoffSettings {
  baseMs: number;
  capMs: number;
  /** The random share of each delay, 0 to 1. @defaultValue `0.5` ("equal jitter": half fixed, half random) */
  jitter?: number;
}

/**
 * Delay before attempt `attempt` (1-based): base·2^(attempt−1), capped, with jitter (by default
 * "equal jitter": half fixed, half random) so a fleet of clients does not reconnect in lockstep.
 */
export function backoffDelay(attempt: number, settings: BackoffSettings, random: () => number = Math.random): number {
  const exponential = Math.min(settings.capMs, settings.baseMs * 2 ** Math.max(0, attempt - 1));
  const jitter = settings.jitter ?? 0.5;
  return Math.round(exponential * (1 - jitter) + random() * exponential * jitter);
}

/** Sleeps `ms`, waking early (without throwing) if the signal aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise(resolve => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
