import { isRetryableConnectionError } from '../connection/index.js';
import { PROCESS_SETTINGS } from '../settings/index.js';
import { resolveSetting } from '../settings/index.js';
import { ConfigError, ConnectionError, TasklineError } from '../errors.js';
import type { Logger } from '../process/index.js';
import { backoffDelay, sleep } from '../process/index.js';

/** `TASKLINE_START_TIMEOUT_MS` (0: no waiting, the first failure ends the start), else 60 s. */
export function resolveStartTimeoutMs(env: Record<string, string | undefined>): number {
  return resolveSetting('startTimeoutMs', PROCESS_SETTINGS.startTimeoutMs, { env });
}

/** The start gave up waiting: what was still wrong, and how long it waited. */
export class StartTimeoutError extends TasklineError {
  override name = 'StartTimeoutError';
  constructor(cause: Error, timeoutMs: number) {
    super(
      'START_TIMEOUT',
      `${cause.message.replace(/[.;]\s*$/, '')}; gave up starting after ${Number((timeoutMs / 1000).toFixed(1))} s of retries — fix the cause (the restart policy starts the process again), or raise TASKLINE_START_TIMEOUT_MS if it takes longer to come up.`,
      { cause },
    );
  }
}

function errnoOf(err: unknown): string | undefined {
  return err instanceof Error ? ((err.cause as NodeJS.ErrnoException | undefined)?.code ?? undefined) : undefined;
}

/**
 * Whether waiting can fix it: Redis not up yet (refused, timed out, not resolvable yet, reset),
 * or a configured secret or certificate file not mounted yet (ENOENT). Not: a bad setting, a
 * certificate that does not verify, a rejected password, an unreadable or malformed file —
 * retrying those only hides them, so the process exits and its restart policy takes over.
 */
export function canStartLater(err: unknown): boolean {
  if (err instanceof ConfigError) return err.code === 'CONFIG_FILE_MISSING' || errnoOf(err) === 'ENOENT';
  if (err instanceof ConnectionError) return err.retryable;
  if (err instanceof TasklineError) return err.code === 'TIMEOUT';
  return isRetryableConnectionError(err);
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
  /** Where `TASKLINE_START_TIMEOUT_MS` is read. @defaultValue `process.env` */
  env?: Record<string, string | undefined>;
  /** Told the cause of every failed attempt, for readiness reports; `null` once started. */
  onCause?(cause: string | null): void;
  /** @defaultValue 500 */
  baseMs?: number;
  /** @defaultValue 5000 */
  capMs?: number;
}

/**
 * Starts a component. A cause that waiting can heal ({@link canStartLater}) is logged at `warn`
 * and retried with backoff (0.5 s up to 5 s) until `TASKLINE_START_TIMEOUT_MS` (60 s) has passed;
 * then, or at once for any other cause, the error is logged at `error` (its sentence first) and
 * thrown, so the bin exits non-zero and the orchestrator's restart policy shows it.
 */
export async function startWithRetry<T>(options: StartRetryOptions<T>): Promise<T | null> {
  const timeoutMs = resolveStartTimeoutMs(options.env ?? process.env);
  const deadline = Date.now() + timeoutMs;
  for (let n = 1; ; n++) {
    if (options.stop.aborted) return null;
    try {
      const started = await attemptOnce(options);
      options.onCause?.(null);
      if (n > 1) options.logger.info('Started after waiting for the cause to clear', { attempts: n });
      return started;
    } catch (err) {
      if (options.stop.aborted) return null;
      const cause = err instanceof Error ? err : new Error(String(err));
      const code = err instanceof TasklineError ? err.code : undefined;
      options.onCause?.(cause.message);
      const remainingMs = deadline - Date.now();
      if (!canStartLater(err) || remainingMs <= 0) {
        const final = canStartLater(err) ? new StartTimeoutError(cause, timeoutMs) : err;
        options.logger.error(final instanceof Error ? final.message : String(final), { code: final instanceof TasklineError ? final.code : code, fatal: true, attempts: n });
        throw final;
      }
      const delay = Math.min(remainingMs, backoffDelay(n, { baseMs: options.baseMs ?? 500, capMs: options.capMs ?? 5000 }));
      options.logger.warn(cause.message, { code, attempt: n, retryInMs: delay, giveUpInMs: remainingMs, note: 'waiting for this to clear (TASKLINE_START_TIMEOUT_MS)' });
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
