import { TasklineError } from '../errors.js';
import { backoffDelay } from '../process/index.js';

/**
 * How long a job waits between attempts: the one shape task definitions, enqueue options (code,
 * CLI, HTTP) and schedule files take.
 */
export interface Backoff {
  /** `exponential`: `delayMs`·2^(n−1), capped at `maxDelayMs`; `fixed`: `delayMs` every time. */
  type: 'exponential' | 'fixed';
  /** The first (exponential) or every (fixed) delay, in ms, 0 to 86 400 000. */
  delayMs: number;
  /** The longest delay. @defaultValue the larger of `delayMs` and 3 600 000 (1 h) */
  maxDelayMs?: number;
  /**
   * The share of each delay that is random, 0 to 1, so a fleet retrying after a shared outage
   * does not come back in lockstep. @defaultValue `0.5` for exponential (half fixed, half random), `0` for fixed
   */
  jitter?: number;
}

/** A validated backoff with every default filled. */
export type ResolvedBackoff = Required<Backoff>;

export const DEFAULT_BACKOFF: ResolvedBackoff = { type: 'exponential', delayMs: 1000, maxDelayMs: 3_600_000, jitter: 0.5 };

const MAX_DELAY_MS = 86_400_000;
const KEYS = new Set(['type', 'delayMs', 'maxDelayMs', 'jitter']);

/**
 * Validates a backoff and fills its defaults. `fail(field, problem)` makes the caller's own error
 * (a ConfigError for a task, a ValidationError for an enqueue, a problem in a schedule file):
 * `field` is the path under `at` (`options.backoff.delayMs`), `problem` what is wrong with it
 * (`must be a whole number…`).
 */
export function resolveBackoff(value: unknown, at: string, fail: (field: string, problem: string) => Error): ResolvedBackoff {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw fail(at, "must be { type: 'exponential' | 'fixed', delayMs, maxDelayMs?, jitter? }.");
  }
  const raw = value as Record<string, unknown>;
  const unknown = Object.keys(raw).filter(key => !KEYS.has(key));
  if (unknown.length > 0) throw fail(at, `has unknown field(s) ${unknown.join(', ')}; use type, delayMs, maxDelayMs and jitter.`);
  const { type } = raw;
  if (type !== 'exponential' && type !== 'fixed') throw fail(`${at}.type`, `must be "exponential" or "fixed", got ${JSON.stringify(type)}.`);
  const whole = (field: string, v: unknown, min: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_DELAY_MS) {
      throw fail(`${at}.${field}`, `must be a whole number of ms from ${min} to ${MAX_DELAY_MS}, got ${JSON.stringify(v) ?? String(v)}.`);
    }
    return v;
  };
  const delayMs = whole('delayMs', raw['delayMs'], 0);
  const maxDelayMs = raw['maxDelayMs'] === undefined ? Math.max(delayMs, DEFAULT_BACKOFF.maxDelayMs) : whole('maxDelayMs', raw['maxDelayMs'], 1);
  if (maxDelayMs < delayMs) throw fail(`${at}.maxDelayMs`, `(${maxDelayMs}) is below ${at}.delayMs (${delayMs}); raise it.`);
  const jitter = raw['jitter'] ?? (type === 'exponential' ? 0.5 : 0);
  if (typeof jitter !== 'number' || !(jitter >= 0 && jitter <= 1)) throw fail(`${at}.jitter`, `must be a number from 0 to 1, got ${JSON.stringify(jitter)}.`);
  return { type, delayMs, maxDelayMs, jitter };
}

/** The BullMQ backoff type taskline's backoffs travel as; every worker registers its strategy. */
export const TASKLINE_BACKOFF_TYPE = 'taskline';

/** A backoff as the BullMQ job option `backoff` carries it. */
export interface EncodedBackoff {
  type: string;
  delay?: number;
  /** Our extension: `exponential` or `fixed`, the cap and the jitter. */
  mode?: 'exponential' | 'fixed';
  maxDelay?: number;
  jitter?: number;
}

/** The BullMQ job option for a backoff (BullMQ then calls the worker's strategy with it). */
export function encodeBackoff(backoff: ResolvedBackoff): EncodedBackoff {
  return { type: TASKLINE_BACKOFF_TYPE, delay: backoff.delayMs, mode: backoff.type, maxDelay: backoff.maxDelayMs, jitter: backoff.jitter };
}

/**
 * The delay before retry `attemptsMade` + 1 of a job whose backoff was encoded by `encodeBackoff`
 * (jobs enqueued before `jitter` existed get the old equal jitter, or none for fixed).
 */
export function encodedBackoffDelay(backoff: EncodedBackoff, attemptsMade: number, random: () => number = Math.random): number {
  if (backoff.type !== TASKLINE_BACKOFF_TYPE) {
    throw new TasklineError('UNKNOWN_BACKOFF_TYPE', `Unknown backoff type "${backoff.type}"; use "exponential", "fixed" or "${TASKLINE_BACKOFF_TYPE}".`);
  }
  const base = backoff.delay ?? DEFAULT_BACKOFF.delayMs;
  const fixed = backoff.mode === 'fixed';
  const jitter = backoff.jitter ?? (fixed ? 0 : 0.5);
  return backoffDelay(fixed ? 1 : attemptsMade, { baseMs: base, capMs: fixed ? base : (backoff.maxDelay ?? DEFAULT_BACKOFF.maxDelayMs), jitter }, random);
}
