import { ConfigError, ConnectionError, TasklineError } from './errors.js';
import type { Logger } from './logger.js';
import { backoffDelay, sleep } from './retry-policy.js';

/** Configuration codes an operator fixes on disk (a secret or certificate file), not in the environment. */
const FIXABLE_ON_DISK = new Set(['CONFIG_FILE_MISSING', 'CONFIG_FILE_UNREADABLE', 'CONFIG_TLS_MATERIAL']);

/**
 * Whether starting again can succeed without a restart: Redis not up yet, a network error, a
 * certificate or password file that is wrong or missing (files are read again at each attempt),
 * a server refusing our certificate or password (fixed on the server or in the mounted file).
 * Not: a bad setting in the environment or on the command line, which only a restart re-reads.
 */
export function canStartLater(err: unknown): boolean {
  if (err instanceof ConfigError) return FIXABLE_ON_DISK.has(err.code);
  if (err instanceof ConnectionError) return true;
  return !(err instanceof TasklineError) || err.code === 'TIMEOUT';
}

export interface StartRetryOptions<T> {
  /** Builds the component for one attempt (reading its settings and files afresh). */
  create(): T;
  /** Starts it; if this throws, the candidate is discarded before the next attempt. */
  start(candidate: T): Promise<unknown>;
  /** Closes a candidate whose start failed (its own errors are ignored). */
  discard(candidate: T): Promise<unknown>;
  /** Ends the loop (the process is stopping): the promise resolves `null`. */
  stop: AbortSignal;
  logger: Logger;
  /** Told the cause of every failed attempt, for readiness reports; `null` once started. */
  onCause?(cause: string | null): void;
  /** @defaultValue 1000 */
  baseMs?: number;
  /** @defaultValue 30000 */
  capMs?: number;
}

/**
 * Starts a component, and while the cause is one an operator can fix without a restart, tries
 * again with backoff (1 s up to 30 s): the process stays up, its health check failing with the
 * cause in its log, and it recovers by itself once the cause is fixed. Any other error is thrown.
 * The same cause is logged once, then every tenth attempt.
 */
export async function startWithRetry<T>(options: StartRetryOptions<T>): Promise<T | null> {
  let lastCause = '';
  for (let n = 1; ; n++) {
    if (options.stop.aborted) return null;
    try {
      const started = await attemptOnce(options);
      options.onCause?.(null);
      if (n > 1) options.logger.info('Started after the cause was fixed', { attempts: n });
      return started;
    } catch (err) {
      if (!canStartLater(err) || options.stop.aborted) throw err;
      const cause = err instanceof Error ? err.message : String(err);
      options.onCause?.(cause);
      const delay = backoffDelay(n, { baseMs: options.baseMs ?? 1000, capMs: options.capMs ?? 30_000 });
      if (cause !== lastCause || n % 10 === 0) {
        options.logger.error('Could not start; trying again without a restart once the cause is fixed', {
          error: err,
          code: err instanceof TasklineError ? err.code : undefined,
          attempt: n,
          retryInMs: delay,
        });
      }
      lastCause = cause;
      await sleep(delay, options.stop);
    }
  }
}

async function attemptOnce<T>(options: StartRetryOptions<T>): Promise<T> {
  const candidate = options.create();
  try {
    await options.start(candidate);
    return candidate;
  } catch (err) {
    await options.discard(candidate).catch(() => undefined);
    throw err;
  }
}
