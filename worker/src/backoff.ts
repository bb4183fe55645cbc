import type { BackoffStrategy, MinimalJob } from 'bullmq';
import { encodedBackoffDelay, type EncodedBackoff } from '@taskline/shared/job';

export { encodeBackoff, TASKLINE_BACKOFF_TYPE } from '@taskline/shared/job';

/**
 * BullMQ `settings.backoffStrategy`: called for any backoff type BullMQ does not know, i.e. the
 * `taskline` type every taskline backoff travels as (`encodeBackoff`). Exponential: base·2^(n−1),
 * capped, then partly random (`jitter`), so a fleet retrying after a shared outage does not come
 * back in lockstep. BullMQ's own `exponential` and `fixed` types never reach it.
 */
export const tasklineBackoffStrategy: BackoffStrategy = (attemptsMade: number, type?: string, _err?: Error, job?: MinimalJob): number => {
  const backoff = (job?.opts.backoff ?? {}) as EncodedBackoff;
  return encodedBackoffDelay({ ...backoff, type: String(type) }, attemptsMade);
};
