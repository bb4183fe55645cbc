// Issue 9, "one truth per job": the fault and race cases 1–7 at full size (`pnpm test:faults`; the
// short versions run in `pnpm test`: test/reliability/state.test.ts). Same code, bigger numbers;
// each prints a `RELIABILITY {json}` line, the figures in docs/RELIABILITY.md.
import { expect } from 'chai';
import * as cases from '../reliability/state-cases.js';
import { checkState } from '../reliability/state-cases.js';
import { installFaultSuiteChecks } from '../reliability/support.js';

describe('one truth per job (issue 9, long)', function () {
  this.timeout(900_000);
  installFaultSuiteChecks();

  it('1a. an idempotency key under a broker at maxmemory, 200 parallel enqueues: none deduplicated without a job; once freed, one job', async function () {
    const s = await cases.idempotencyUnderOom({ parallel: 200, settleMs: 60_000 });
    checkState(s);
    expect((s['duringOom'] as { resolved: number }).resolved).to.equal(0);
    expect(s['afterFreed']).to.deep.equal({ rejected: 0, added: 1, deduplicated: 199, distinctIds: 1 });
    expect(s['afterFinished']).to.deep.equal({ sameId: true, deduplicated: true });
    expect(s.history.unknownJobs).to.equal(0);
  });

  it('1b. an idempotency key retried after the producer process and the broker died, 6 rounds: one job each, the waiting bin gets it', async function () {
    const s = await cases.idempotencyProducerCrash({ rounds: 6, killAfterMs: 600, settleMs: 120_000 });
    checkState(s);
    for (const round of s['rounds'] as Array<Record<string, unknown>>) {
      expect(round['retryExit'], JSON.stringify(round)).to.equal(0);
      expect(round['sameIdEverywhere'], JSON.stringify(round)).to.equal(true);
      expect(round['waitExit'], JSON.stringify(round)).to.equal(0);
    }
    expect(s.history.unknownJobs).to.equal(0);
  });

  it('2a. the stall limit with 20 jobs: a worker SIGKILLed twice mid-job; every record FAILURE (WorkerLostError), every waiter gets it', async function () {
    const s = await cases.stallLimit({ jobs: 20, settleMs: 120_000 });
    checkState(s);
    expect(s['secondRunsRedelivered']).to.equal(20);
    expect(s['finalErrorTypes']).to.deep.equal({ 'FAILURE WorkerLostError': 20 });
  });

  it('2b. the result backend at maxmemory for 15 s under load (1,200 jobs): every job final, record and broker agree', async function () {
    const s = await cases.backendOom({ jobs: 1200, workers: 3, concurrency: 20, jobMs: 100, faultMs: 15_000, writeDeadlineMs: 3000, settleMs: 300_000 });
    checkState(s);
    expect(s['readyzDuringOom']).to.deep.equal([503, 503, 503]);
  });

  it('3. CPU-bound handlers (4.5 s busy loop, 3 s lock, 5 workers, 4 jobs): final state never changes, agrees with the broker, reruns redelivered', async function () {
    const s = await cases.cpuBound({ jobs: 4, workers: 5, loopMs: 4500, lockMs: 3000, maxStalledCount: 3, settleMs: 180_000 });
    checkState(s);
    expect(s.history.rerunsAfterStall).to.be.greaterThan(0);
    expect(s['rerunsRedelivered']).to.equal(s['reruns']);
  });

  it('4. revoke racing completion (2,000 jobs of 100 ms revoked at 0–250 ms): 0 untrue revoke answers', async function () {
    const s = await cases.revokeRace({ jobs: 2000, workers: 3, concurrency: 50, jobMs: 100, settleMs: 300_000 });
    checkState(s);
    const revokes = s.history.revokes;
    expect(revokes.revoked + revokes.tooLate).to.equal(2000);
    expect(revokes.revoked).to.be.greaterThan(0);
    expect(revokes.tooLate).to.be.greaterThan(0);
  });

  it('5. a per-job timeoutMs on every attempt (20 jobs of 4 s, timeoutMs 1000, attempts 3): all FAILURE TimeLimitError on attempt 3', async function () {
    const s = await cases.perJobTimeout({ jobs: 20, settleMs: 120_000 });
    checkState(s);
    expect(s['finalErrorTypes']).to.deep.equal({ 'FAILURE TimeLimitError attempt 3': 20 });
    expect(s['runOutcomes']).to.deep.equal({ TimeLimitError: 60 });
  });

  it('6. the broker out of memory for 20 s with a 2,000-job backlog: REDIS_OOM, /readyz 503 then 200, bounded logs, partial bulks resent without duplicates', async function () {
    // 100 jobs of 8 kB: the HTTP body stays under the API's default limit (2 × the 512 KiB payload cap).
    const s = await cases.oomReporting({ workers: 3, backlog: 2000, faultMs: 20_000, bulk: 100, payloadBytes: 8000, settleMs: 180_000 });
    checkState(s);
    expect(s['enqueueDuringOom']).to.equal('REDIS_OOM');
    expect((s['libraryPartial'] as { code: string }).code).to.equal('REDIS_OOM');
    expect((s['httpPartial'] as { status: number }).status).to.equal(207);
    expect(s['httpDuringOom']).to.deep.equal({ status: 503, code: 'REDIS_OOM' });
    expect(s['allUnreadyAfterMs']).to.be.at.least(0);
    expect(s['allReadyAgainAfterMs']).to.be.at.least(0);
    for (const lines of s['workerLogLinesDuringOom'] as number[]) expect(lines).to.be.below(60);
    expect(s['bulkJobsMade']).to.equal(s['bulkJobs']);
    expect(s['bulkJobsMadeTwice']).to.equal(0);
    expect(s.history.unknownJobs).to.equal(0);
  });

  it('7. beat ticks on workers SIGSTOPped past their lock (3 ticks, 4 workers): each ends final once, reruns redelivered', async function () {
    const s = await cases.beatTickFrozenWorker({ ticks: 3, workers: 4, tickMs: 3000, settleMs: 120_000 });
    checkState(s);
    for (const tick of s['ticks'] as Array<Record<string, unknown>>) {
      expect(tick['jobIds']).to.equal(1);
      expect(tick['finalState']).to.equal('SUCCESS');
      expect(tick['laterRunsRedelivered'], JSON.stringify(tick)).to.equal(true);
    }
    expect(s.history.unknownJobs).to.equal(0);
  });
});
