import type { BackoffStrategy, MinimalJob } from 'bullmq';
import { TasklineError, backoffDelay } from '@taskline/shared';
import type { ResolvedTask } from './tasks.js';

/**
 * The BullMQ backoff type a task's default backoff is given as. BullMQ's own `exponential` and
 * `fixed` types (set by the enqueue call) still work; this one adds equal jitter and a cap.
 */
export const TASKLINE_BACKOFF_TYPE = 'taskline';

interface EncodedBackoff {
  type: string;
  delay?: number;
  /** Our extension: `exponential` or `fixed`, and the cap. */
  mode?: 'exponential' | 'fixed';
  maxDelay?: number;
}

/** The BullMQ job `backoff` option for a task's default backoff. */
export function encodeBackoff(backoff: ResolvedTask['backoff']): EncodedBackoff {
  return { type: TASKLINE_BACKOFF_TYPE, delay: backoff.delayMs, mode: backoff.type, maxDelay: backoff.maxDelayMs };
}

/**
 * BullMQ `settings.backoffStrategy`: called for any backoff type BullMQ does not know.
 * Exponential: base·2^(n−1), capped, then half fixed and half random (equal jitter), so a fleet
 * retrying after a shared outage does not come back in lockstep.
 */
export const tasklineBackoffStrategy: BackoffStrategy = (attemptsMade: number, type?: string, _err?: Error, job?: MinimalJob): number => {
  const backoff = (job?.opts.backoff ?? {}) as EncodedBackoff;
  if (type !== TASKLINE_BACKOFF_TYPE) {
    throw new TasklineError('UNKNOWN_BACKOFF_TYPE', `Unknown backoff type "${String(type)}"; use "exponential", "fixed" or "${TASKLINE_BACKOFF_TYPE}".`);
  }
  const base = backoff.delay ?? 1000;
  if (backoff.mode === 'fixed') return base;
  return backoffDelay(attemptsMade, { baseMs: base, capMs: backoff.maxDelay ?? 3_600_000 });
};
