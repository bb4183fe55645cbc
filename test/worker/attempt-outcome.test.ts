// The runner's outcome decision, row by row: what a delivery wrote × what the result backend
// answered → what the runner does, what it counts, and whether a write was refused. Pure: no Redis.
import { expect } from 'chai';
import type { TransitionAnswer } from '@taskline/shared/job';
import { decideOutcome, type NextStep, type OutcomeDecision, type WrittenState } from '@taskline/worker/internal';

type Row = [WrittenState, TransitionAnswer, NextStep, OutcomeDecision['count'], OutcomeDecision['refused']];

const ROWS: Row[] = [
  // Written as asked: run the handler, or the broker follows the stored outcome.
  ['STARTED', 'OK', 'run', null, null],
  ['STARTED', 'REDELIVERED', 'run', null, null],
  ['SUCCESS', 'OK', 'complete', 'success', null],
  ['RETRY', 'OK', 'retry', 'retry', null],
  ['FAILURE', 'OK', 'fail', 'failure', null],
  // A newer delivery owns the job: nothing stored, nothing counted.
  ['STARTED', 'STALE', 'stale', null, 'stale'],
  ['SUCCESS', 'STALE', 'stale', null, 'stale'],
  ['RETRY', 'STALE', 'stale', null, 'stale'],
  ['FAILURE', 'STALE', 'stale', null, 'stale'],
  // A revoke marker turned the write into REVOKED (or found it so): counted once, as revoked.
  ['STARTED', 'REVOKED', 'revoked', 'revoked', null],
  ['SUCCESS', 'REVOKED', 'revoked', 'revoked', null],
  ['RETRY', 'REVOKED', 'revoked', 'revoked', null],
  ['FAILURE', 'REVOKED', 'revoked', 'revoked', null],
  // Final already (an earlier delivery stored it): follow the record, count a different outcome as refused.
  ['STARTED', 'SUCCESS', 'complete', null, null],
  ['SUCCESS', 'SUCCESS', 'complete', null, null],
  ['RETRY', 'SUCCESS', 'complete', null, 'final'],
  ['FAILURE', 'SUCCESS', 'complete', null, 'final'],
  ['STARTED', 'FAILURE', 'already-failed', null, 'final'],
  ['SUCCESS', 'FAILURE', 'already-failed', null, 'final'],
  ['RETRY', 'FAILURE', 'already-failed', null, 'final'],
  ['FAILURE', 'FAILURE', 'already-failed', null, null],
  // Answers a write never gets (progress-only, or a move the state table forbids): an error, not a completion.
  ['STARTED', 'SKIP', 'refused', null, null],
  ['SUCCESS', 'REFUSED', 'refused', null, null],
  ['FAILURE', 'REFUSED', 'refused', null, null],
];

describe('worker: the attempt outcome decision (pure)', function () {
  for (const [written, answer, step, count, refused] of ROWS) {
    it(`wrote ${written}, answered ${answer} → ${step}`, function () {
      expect(decideOutcome(written, answer)).to.deep.equal({ step, count, refused });
    });
  }

  it('the table covers every written state with every answer a write can get', function () {
    const written: WrittenState[] = ['STARTED', 'RETRY', 'SUCCESS', 'FAILURE'];
    const answers: TransitionAnswer[] = ['OK', 'STALE', 'REVOKED', 'SUCCESS', 'FAILURE'];
    for (const w of written) for (const a of answers) expect(ROWS.some(([rw, ra]) => rw === w && ra === a), `${w} × ${a}`).to.equal(true);
  });

  it('only a stored outcome is counted as success, retry or failure', function () {
    for (const [written, answer] of ROWS) {
      const { count } = decideOutcome(written, answer);
      if (count !== null && count !== 'revoked') expect(answer, `${written} × ${answer}`).to.be.oneOf(['OK', 'REDELIVERED']);
    }
  });
});
