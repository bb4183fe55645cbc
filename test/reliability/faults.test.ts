// Short versions of the fault cases (the long ones: test/faults, `pnpm test:faults`).
// Each asserts exact accounting: every job completed, none lost; duplicates are reported.
import { expect } from 'chai';
import * as cases from './cases.js';
import { load } from './load-case.js';
import { checkSummary, installFaultSuiteChecks } from './support.js';

const SMALL: cases.FaultSize = { jobs: 120, jobMs: 50, workers: 2, concurrency: 8, faultMs: 3000, settleMs: 60_000 };

describe('reliability under faults (short)', function () {
  this.timeout(120_000);

  installFaultSuiteChecks();
  const check = checkSummary;

  it('a worker killed with SIGKILL mid-job: its jobs are redelivered and complete', async function () {
    const summary = await cases.sigkillWorker({ ...SMALL, jobMs: 300 });
    check(summary);
    expect(summary['inFlightOnKilled'], 'jobs running on the killed worker').to.be.greaterThan(0);
    expect(summary['inFlightOnKilledCompleted']).to.equal(summary['inFlightOnKilled']);
  });

  it('a worker given SIGTERM under load drains, exits 0, and nothing is lost or run twice', async function () {
    const summary = await cases.sigtermWorker({ ...SMALL, jobMs: 400 });
    check(summary);
    expect(summary['inFlightOnSignalled'], 'jobs running on the signalled worker').to.be.greaterThan(0);
    expect(summary['finishedByTheDrainingWorker'], 'in-flight jobs finished by the draining worker').to.equal(summary['inFlightOnSignalled']);
    expect(summary.duplicated).to.equal(0);
  });

  it('the broker killed and restarted on its AOF: no acknowledged job lost, enqueues fail fast meanwhile', async function () {
    const summary = await cases.brokerRestart(SMALL);
    check(summary);
    expect(summary['enqueueCallsFailed'], 'some enqueue calls hit the outage').to.be.greaterThan(0);
    expect(summary['failedCallMaxMs'], 'a failing enqueue rejects within its deadline').to.be.below(6000);
    expect((summary['failedCallError'] as { name: string }).name).to.equal('ConnectionError');
  });

  it('the broker frozen (SIGSTOP) past the command timeout recovers after SIGCONT without help', async function () {
    const summary = await cases.brokerPause(SMALL);
    check(summary);
    expect(summary['enqueueCallsFailed'], 'the enqueue during the freeze timed out (the broker was frozen)').to.equal(1);
  });

  it('connections killed server-side (CLIENT KILL) are re-made and workers are ready again', async function () {
    const summary = await cases.clientKill(SMALL, 2);
    check(summary);
    expect(summary['connectionsKilled'], 'connections killed by CLIENT KILL').to.be.greaterThan(0);
  });

  it('the result backend down while jobs run: no result lost, every job ends SUCCESS once it is back, /readyz 503 meanwhile', async function () {
    const summary = await cases.backendDown({ ...SMALL, jobs: 60, jobMs: 1000, faultMs: 4000 }, 1500);
    check(summary);
    expect(summary['readyzWhileDown'], '/readyz while the backend is down').to.deep.equal([503, 503]);
    expect(summary['readyzWhileDownMs'], 'time for /readyz to answer while the backend is down').to.be.below(3000);
  });

  it('the broker connections cut by the network (TCP proxy) are recovered', async function () {
    const summary = await cases.networkCut(SMALL, 2);
    check(summary);
    expect(summary['connectionsCut'], 'connections cut by the proxy').to.be.greaterThan(0);
  });

  it('load: jobs from the HTTP API and the library through 4 worker processes, connections bounded', async function () {
    const summary = await load({ jobs: 2000, workers: 4, concurrency: 20, bulk: 250, inFlight: 2, maxConnections: 10, settleMs: 90_000 });
    check(summary);
    for (const [name, peak] of Object.entries(summary['peakConnectionsPerProcess'] as Record<string, { broker: number; backend: number }>)) {
      expect(peak.broker, `${name} broker connections`).to.be.at.most(10);
      expect(peak.backend, `${name} backend connections`).to.be.at.most(10);
    }
  });
});
