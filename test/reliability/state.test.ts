// Issue 9, "one truth per job": the fault and race cases 1–7, short versions (the long ones:
// test/faults/state.test.ts, `pnpm test:faults`). Each runs under the history checker, which must
// count 0 for every invariant; each also asserts what a user of that case would notice.
import { expect } from 'chai';
import * as cases from './state-cases.js';
import { checkState } from './state-cases.js';
import { installFaultSuiteChecks } from './support.js';

describe('one truth per job (issue 9, short)', function () {
  this.timeout(120_000);
  installFaultSuiteChecks();

  it('0. the checker notices a final record changed or deleted behind the system\'s back (it can fail)', async function () {
    const s = await cases.tamperedRecords();
    const h = s.history;
    expect(h.finalChanged, 'reopened and deleted records').to.equal(2);
    expect(h.lost, 'two jobs no longer final').to.equal(2);
    expect(h.disagreements, 'STARTED record, job gone from the broker').to.equal(1);
    expect(h.samples.finalChanged?.join(' ')).to.include(s['reopened'] as string).and.to.include(s['deleted'] as string);
  });

  it('1a. an idempotency key under a broker at maxmemory: no "deduplicated" without a job; once freed, one job that finishes', async function () {
    const s = await cases.idempotencyUnderOom({ parallel: 50, settleMs: 30_000 });
    checkState(s);
    const during = s['duringOom'] as { resolved: number; rejectedByCode: Record<string, number> };
    expect(during.resolved, 'enqueues answered while every write is refused').to.equal(0);
    expect(during.rejectedByCode).to.deep.equal({ REDIS_OOM: 50 });
    expect(s['afterFreed']).to.deep.equal({ rejected: 0, added: 1, deduplicated: 49, distinctIds: 1 });
    expect(s['afterFinished']).to.deep.equal({ sameId: true, deduplicated: true });
    expect(s['keyedJobState']).to.equal('SUCCESS');
    expect(s.history.unknownJobs, 'jobs nobody was told about').to.equal(0);
  });

  it('1b. an idempotency key retried after the producer process and the broker died: one job, it finishes, the waiting bin gets it', async function () {
    const s = await cases.idempotencyProducerCrash({ rounds: 2, killAfterMs: 600, settleMs: 60_000 });
    checkState(s);
    for (const round of s['rounds'] as Array<Record<string, unknown>>) {
      if (round['variant'] === 'killed while the broker was down') expect(round['firstExit'], `the first producer was killed (${JSON.stringify(round)})`).to.equal(null);
      expect(round['retryExit'], JSON.stringify(round)).to.equal(0);
      expect(round['libraryDeduplicated'], JSON.stringify(round)).to.equal(true);
      expect(round['sameIdEverywhere'], JSON.stringify(round)).to.equal(true);
      expect(round['waitExit'], `--wait exit code (3 = timed out): ${JSON.stringify(round)}`).to.equal(0);
      expect(round['waitedState']).to.equal('SUCCESS');
    }
    expect(s.history.unknownJobs, 'jobs nobody was told about (a second job for a key)').to.equal(0);
  });

  it('2a. the stall limit: a worker SIGKILLed twice mid-job; the record becomes FAILURE (WorkerLostError) and the waiter gets it', async function () {
    const s = await cases.stallLimit({ jobs: 4, settleMs: 45_000 });
    checkState(s);
    expect(s['ranOnFirstWorker']).to.equal(4);
    expect(s['ranOnSecondWorker']).to.equal(4);
    expect(s['secondRunsRedelivered']).to.equal(4);
    expect(s['finalErrorTypes']).to.deep.equal({ 'FAILURE WorkerLostError': 4 });
  });

  it('2b. the result backend at maxmemory for a while under load: every job final, record and broker agree, /readyz 503 meanwhile', async function () {
    const s = await cases.backendOom({ jobs: 200, workers: 2, concurrency: 10, jobMs: 100, faultMs: 4000, writeDeadlineMs: 1500, settleMs: 60_000 });
    checkState(s);
    expect(s['readyzDuringOom']).to.deep.equal([503, 503]);
  });

  it('3. a CPU-bound handler past its lock on two workers: final state never changes, agrees with the broker, reruns are redelivered', async function () {
    const s = await cases.cpuBound({ jobs: 1, workers: 2, loopMs: 3000, lockMs: 1000, maxStalledCount: 2, settleMs: 60_000 });
    checkState(s);
    expect(s.history.rerunsAfterStall, 'runs that started while an older one still ran (the case did what it claims)').to.be.greaterThan(0);
    expect(s['rerunsRedelivered']).to.equal(s['reruns']);
  });

  it('4. revoke racing completion (200 jobs of 100 ms revoked at 0–250 ms): every revoke answer is true', async function () {
    const s = await cases.revokeRace({ jobs: 200, workers: 2, concurrency: 25, jobMs: 100, settleMs: 60_000 });
    checkState(s);
    const revokes = s.history.revokes;
    expect(revokes.revoked + revokes.tooLate, `answers ${JSON.stringify(revokes)}`).to.equal(200);
    expect(revokes.revoked, 'revokes that landed').to.be.greaterThan(0);
    expect(revokes.tooLate, 'revokes that came too late').to.be.greaterThan(0);
    expect(s['revokedWhileRunning'], 'jobs revoked while their handler ran').to.be.greaterThan(0);
  });

  it('5. a per-job timeoutMs holds on every attempt: 4 s jobs with timeoutMs 1000 and attempts 3 all end FAILURE TimeLimitError on attempt 3', async function () {
    const s = await cases.perJobTimeout({ jobs: 4, settleMs: 45_000 });
    checkState(s);
    expect(s['finalErrorTypes']).to.deep.equal({ 'FAILURE TimeLimitError attempt 3': 4 });
    expect(s['runsPerJob']).to.deep.equal({ 3: 4 });
    expect(s['runOutcomes']).to.deep.equal({ TimeLimitError: 12 });
    expect(s['longestRunMs'], 'no attempt ran past its limit (bounded, generous)').to.be.below(3000);
    expect(s['attemptsSeen']).to.deep.equal([1, 2, 3]);
  });

  it('6. out of memory: REDIS_OOM from enqueue and the API, /readyz 503 then 200, bounded logs, partial bulks reported per job and resent without duplicates', async function () {
    const s = await cases.oomReporting({ workers: 2, backlog: 200, faultMs: 6000, bulk: 60, payloadBytes: 8000, settleMs: 60_000 });
    checkState(s);
    expect(s['enqueueDuringOom']).to.equal('REDIS_OOM');
    expect(s['bulkDuringOom']).to.deep.equal({ code: 'REDIS_OOM', statuses: { failed: 2 } });
    expect(s['httpDuringOom']).to.deep.equal({ status: 503, code: 'REDIS_OOM' });
    expect(s['allUnreadyAfterMs'], '/readyz 503 on every worker during the OOM').to.be.at.least(0);
    expect(s['allReadyAgainAfterMs'], '/readyz 200 again after').to.be.at.least(0);
    for (const lines of s['workerLogLinesDuringOom'] as number[]) expect(lines, 'worker log lines during the OOM').to.be.below(40);
    const lib = s['libraryPartial'] as { code: string; statuses: Record<string, number>; resent: number };
    const http = s['httpPartial'] as { status: number; code: string; statuses: Record<string, number>; resent: number };
    expect(lib.code, JSON.stringify(lib)).to.equal('REDIS_OOM');
    expect(http.status, JSON.stringify(http)).to.equal(207);
    for (const p of [lib, http]) {
      expect(p.statuses['added'] ?? 0, `a partial bulk: ${JSON.stringify(p)}`).to.be.greaterThan(0);
      expect(p.statuses['failed'] ?? 0, `a partial bulk: ${JSON.stringify(p)}`).to.be.greaterThan(0);
      expect(p.resent).to.equal(p.statuses['failed']);
    }
    expect(s['bulkJobsMade']).to.equal(s['bulkJobs']);
    expect(s['bulkJobsMadeTwice']).to.equal(0);
    expect(s.history.unknownJobs, 'jobs nobody was told about').to.equal(0);
  });

  it('7. a beat tick on a worker SIGSTOPped past its lock runs again elsewhere (redelivered) but ends final once, same ctx.jobId', async function () {
    const s = await cases.beatTickFrozenWorker({ ticks: 1, workers: 2, tickMs: 3000, settleMs: 45_000 });
    checkState(s);
    for (const tick of s['ticks'] as Array<Record<string, unknown>>) {
      expect(tick['runs'], JSON.stringify(tick)).to.be.at.least(1);
      expect(tick['jobIds']).to.equal(1);
      expect(tick['finalState']).to.equal('SUCCESS');
      expect(tick['laterRunsRedelivered'], JSON.stringify(tick)).to.equal(true);
      expect(tick['firstRunRedelivered']).to.equal(false);
    }
    expect((s['ticks'] as Array<{ runs: number }>).some(t => t.runs === 2), 'the frozen tick ran again').to.equal(true);
    expect(s.history.unknownJobs, 'a second job for the tick').to.equal(0);
  });
});
