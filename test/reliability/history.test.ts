// The history checker can fail: made-up histories that break each invariant are caught, each
// counted once, and a clean history counts 0 everywhere. (No Redis: evaluateHistory is pure.)
import type { JobResultRecord } from '@taskline/shared';
import { expect } from 'chai';
import type { HandlerRun } from './exec-log.js';
import { agrees, emptyJob, evaluateHistory, INVARIANTS, type HistoryReport, type JobHistory } from './history.js';

const T = 1_000_000;

function record(id: string, state: JobResultRecord['state'], extra: Partial<JobResultRecord> = {}): JobResultRecord {
  return { id, task: 'work', queue: 'default', state, attempt: 1, attempts: 3, enqueuedAt: null, startedAt: null, finishedAt: null, updatedAt: '', ...extra };
}

/** An acknowledged job that ended SUCCESS {n: 1}, seen so by a poll and its waiter, with one run. */
function cleanJob(id: string): { job: JobHistory; runs: HandlerRun[] } {
  const job = emptyJob(id);
  job.acknowledged = true;
  job.via.add('enqueue');
  const final = record(id, 'SUCCESS', { result: { n: 1 } });
  job.finalRecord = final;
  job.broker = 'absent';
  job.waiter = { done: true, record: final };
  job.lastOpen = { at: T, state: 'STARTED', source: 'poll' };
  job.finals.push({ state: 'SUCCESS', detail: '{"n":1}', at: T + 100, source: 'poll' }, { state: 'SUCCESS', detail: '{"n":1}', at: T + 120, source: 'waiter' });
  const runs: HandlerRun[] = [{ jobId: id, pid: 1, attempt: 1, attempts: 3, delivery: 1, redelivered: false, startedAt: T, endedAt: T + 50, outcome: 'ok' }];
  return { job, runs };
}

function evaluate(jobs: Array<{ job: JobHistory; runs: HandlerRun[] }>, census: string[] = jobs.map(j => j.job.id)): HistoryReport {
  return evaluateHistory({
    jobs: jobs.map(j => j.job),
    calls: [],
    runs: new Map(jobs.map(j => [j.job.id, j.runs])),
    census: new Set(census),
    expectFinal: true,
    settleMs: 0,
  });
}

function only(report: HistoryReport, invariant: (typeof INVARIANTS)[number]): void {
  for (const name of INVARIANTS) expect(report[name], `${name} (${JSON.stringify(report.samples)})`).to.equal(name === invariant ? 1 : 0);
  expect(report.samples[invariant]).to.have.length(1);
}

describe('history checker (made-up histories)', function () {
  it('a clean history counts 0 for every invariant', function () {
    const report = evaluate([cleanJob('a'), cleanJob('b')]);
    for (const name of INVARIANTS) expect(report[name], name).to.equal(0);
    expect(report.finalStates).to.deep.equal({ SUCCESS: 2 });
    expect(report.unknownJobs).to.equal(0);
  });

  it('lost: an acknowledged job without a final record (and absent from the broker)', function () {
    const j = cleanJob('a');
    j.job.finalRecord = null;
    j.job.finals = [];
    j.job.waiter = { done: true, error: { name: 'ResultTimeoutError', code: 'RESULT_TIMEOUT', message: 'timed out', afterMs: 1000 } };
    const report = evaluate([j]);
    expect(report.lost).to.equal(1);
    expect(report.waiterWrong, 'its waiter timed out').to.equal(1);
  });

  it('untrueEnqueues: a bulk reported a job "failed" but it exists', function () {
    const j = cleanJob('a');
    j.job.acknowledged = false;
    j.job.reported = 'failed';
    only(evaluate([j]), 'untrueEnqueues');
  });

  it('finalChanged: two final states, two results, or an open state read after a final one', function () {
    const twoStates = cleanJob('a');
    twoStates.job.finals.push({ state: 'REVOKED', at: T + 200, source: 'revoke answer' });
    only(evaluate([twoStates]), 'finalChanged');

    const twoResults = cleanJob('b');
    twoResults.job.finals.push({ state: 'SUCCESS', detail: '{"n":2}', at: T + 200, source: 'poll' });
    only(evaluate([twoResults]), 'finalChanged');

    const reopened = cleanJob('c');
    reopened.job.lastOpen = { at: T + 101, state: 'STARTED', source: 'poll' };
    only(evaluate([reopened]), 'finalChanged');

    const readBefore = cleanJob('d');
    readBefore.job.lastOpen = { at: T + 100, state: 'STARTED', source: 'poll' };
    expect(evaluate([readBefore]).finalChanged, 'an open read sent when the final one arrived proves nothing').to.equal(0);
  });

  it('waiterWrong: the waiter answered something else than the final record', function () {
    const j = cleanJob('a');
    j.job.waiter = { done: true, record: record('a', 'SUCCESS', { result: { n: 2 } }) };
    const report = evaluate([j]);
    expect(report.waiterWrong).to.equal(1);
  });

  it('disagreements: record and broker contradict each other', function () {
    const failedOnBroker = cleanJob('a');
    failedOnBroker.job.broker = 'failed';
    only(evaluate([failedOnBroker]), 'disagreements');
    expect(agrees(record('x', 'STARTED'), 'absent')).to.equal(false);
    expect(agrees(record('x', 'REVOKED'), 'failed')).to.equal(true);
    expect(agrees(null, 'waiting')).to.equal(true);
    expect(agrees(record('x', 'FAILURE'), 'completed')).to.equal(false);
  });

  it('untrueRevokes: REVOKED answered but SUCCESS stored or seen; "too late (S)" but another end', function () {
    const revokedButSuccess = cleanJob('a');
    revokedButSuccess.job.revokes.push({ at: T + 10, answer: 'REVOKED' });
    const r1 = evaluate([revokedButSuccess]);
    expect(r1.untrueRevokes).to.equal(1);

    const revokedSeenSuccess = cleanJob('b');
    revokedSeenSuccess.job.finalRecord = record('b', 'REVOKED');
    revokedSeenSuccess.job.waiter = { done: true, record: record('b', 'REVOKED') };
    revokedSeenSuccess.job.finals = [{ state: 'SUCCESS', at: T + 100, source: 'event' }];
    revokedSeenSuccess.job.revokes.push({ at: T + 10, answer: 'REVOKED' });
    expect(evaluate([revokedSeenSuccess]).untrueRevokes).to.equal(1);

    const tooLate = cleanJob('c');
    tooLate.job.revokes.push({ at: T + 10, answer: 'too-late', state: 'FAILURE' });
    expect(evaluate([tooLate]).untrueRevokes).to.equal(1);

    const trueTooLate = cleanJob('d');
    trueTooLate.job.revokes.push({ at: T + 10, answer: 'too-late', state: 'SUCCESS' });
    expect(evaluate([trueTooLate]).untrueRevokes).to.equal(0);
  });

  it('successWithoutRun: SUCCESS stored but no handler run completed', function () {
    const j = cleanJob('a');
    j.runs[0]!.outcome = 'TimeLimitError';
    only(evaluate([j]), 'successWithoutRun');
  });

  it('attemptAccounting: ctx.attempt beyond attempts, or two runs of one delivery', function () {
    const beyond = cleanJob('a');
    beyond.runs[0]!.attempt = 4;
    only(evaluate([beyond]), 'attemptAccounting');
    const twice = cleanJob('b');
    twice.runs.push({ ...twice.runs[0]!, pid: 2, startedAt: T + 60, endedAt: T + 70 });
    expect(evaluate([twice]).attemptAccounting).to.equal(1);
  });

  it('redeliveryUnflagged: a run started while an older delivery had not ended, without ctx.redelivered', function () {
    const j = cleanJob('a');
    j.runs[0]!.endedAt = null;
    j.runs[0]!.outcome = null;
    j.runs.push({ jobId: 'a', pid: 2, attempt: 1, attempts: 3, delivery: 2, redelivered: false, startedAt: T + 3000, endedAt: T + 3100, outcome: 'ok' });
    const report = evaluate([j]);
    only(report, 'redeliveryUnflagged');
    expect(report.rerunsAfterStall).to.equal(1);
    j.runs[1]!.redelivered = true;
    expect(evaluate([j]).redeliveryUnflagged).to.equal(0);
  });

  it('counts duplicates and unknown jobs (reported, not invariants)', function () {
    const j = cleanJob('a');
    j.runs.push({ ...j.runs[0]!, delivery: 2, startedAt: T + 60, endedAt: T + 70 });
    const report = evaluate([j], ['a', 'stranger']);
    expect(report.duplicates).to.equal(1);
    expect(report.unknownJobs).to.equal(1);
    for (const name of INVARIANTS) expect(report[name], name).to.equal(0);
  });
});
