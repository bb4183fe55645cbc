import type { TransitionAnswer, TransitionOp } from '@taskline/shared/job';

/** What a delivery wrote: STARTED before its handler runs, then the handler's outcome. */
export type WrittenState = TransitionOp['state'];

/**
 * What the runner does next; the broker is made to agree with the record, whoever wrote it:
 * - `run`: STARTED is stored; run the handler.
 * - `complete`: return, so the broker marks the job completed.
 * - `retry`: throw the handler's error; BullMQ retries (attempts and backoff decide when).
 * - `fail`: throw the handler's error as unrecoverable; the job fails for good.
 * - `revoked`: fail it for good as revoked (a revoke marker turned the write into REVOKED).
 * - `already-failed`: an earlier delivery stored FAILURE; fail it for good.
 * - `stale`: a newer delivery owns the job; throw StaleDeliveryError and store nothing.
 * - `refused`: the backend stored nothing for an answer a write never gets (a bug): throw, so the
 *   attempt fails as a failed write would and the broker decides.
 */
export type NextStep = 'run' | 'complete' | 'retry' | 'fail' | 'revoked' | 'already-failed' | 'stale' | 'refused';

/** The `outcome` label of `taskline_jobs_total`. */
export type JobOutcome = 'success' | 'failure' | 'retry' | 'revoked';

export interface OutcomeDecision {
  step: NextStep;
  /** The jobs counter to add one to: only what this delivery stored (or the revoke it met). */
  count: JobOutcome | null;
  /** Why this delivery's outcome was not stored (`taskline_result_writes_refused_total`). */
  refused: 'final' | 'stale' | null;
}

const WRITTEN: Record<WrittenState, { step: NextStep; count: JobOutcome | null }> = {
  STARTED: { step: 'run', count: null },
  SUCCESS: { step: 'complete', count: 'success' },
  RETRY: { step: 'retry', count: 'retry' },
  FAILURE: { step: 'fail', count: 'failure' },
};

/**
 * Given what a delivery wrote and what the result backend answered, what the runner does. Pure:
 * the runner acts on it (metrics, logs, what it returns or throws to BullMQ).
 */
export function decideOutcome(written: WrittenState, answer: TransitionAnswer): OutcomeDecision {
  switch (answer) {
    case 'OK':
    case 'REDELIVERED':
      return { ...WRITTEN[written], refused: null };
    case 'STALE':
      return { step: 'stale', count: null, refused: 'stale' };
    case 'REVOKED':
      return { step: 'revoked', count: 'revoked', refused: null };
    // Final already (an earlier delivery stored it): follow the record. A redelivery's STARTED
    // that finds SUCCESS lost nothing (the job simply completes); one that finds FAILURE is
    // counted as refused, like any outcome that met a different final state.
    case 'SUCCESS':
      return { step: 'complete', count: null, refused: written === 'RETRY' || written === 'FAILURE' ? 'final' : null };
    case 'FAILURE':
      return { step: 'already-failed', count: null, refused: written === 'FAILURE' ? null : 'final' };
    case 'SKIP':
    case 'REFUSED':
      return { step: 'refused', count: null, refused: null };
  }
}
