// The long fault and load cases (`pnpm test:faults`; not in the default run). Same code as the
// short versions in test/reliability, bigger numbers. Each prints a `RELIABILITY {json}` line,
// the figures in docs/RELIABILITY.md.
import { expect } from 'chai';
import * as cases from '../reliability/cases.js';
import { load } from '../reliability/load-case.js';
import { checkSummary, installFaultSuiteChecks } from '../reliability/support.js';

const LARGE: cases.FaultSize = { jobs: 2000, jobMs: 100, workers: 3, concurrency: 20, faultMs: 10_000, settleMs: 300_000 };
const MAX_CONNECTIONS = 50;

describe('reliability under faults (long)', function () {
  this.timeout(900_000);

  installFaultSuiteChecks();
  const check = checkSummary;

  it('a worker killed with SIGKILL mid-job under load: its jobs are redelivered and complete', async function () {
    const summary = await cases.sigkillWorker({ ...LARGE, jobMs: 300 });
    check(summary);
    expect(summary['inFlightOnKilled']).to.be.greaterThan(0);
    expect(summary['inFlightOnKilledCompleted']).to.equal(summary['inFlightOnKilled']);
  });

  it('a worker given SIGTERM under load drains, exits 0, nothing lost or run twice', async function () {
    const summary = await cases.sigtermWorker({ ...LARGE, jobMs: 500 });
    check(summary);
    expect(summary.duplicated).to.equal(0);
    expect(summary['finishedByTheDrainingWorker']).to.equal(summary['inFlightOnSignalled']);
  });

  it('the broker killed and restarted on its AOF mid-load: no acknowledged job lost, enqueues fail fast meanwhile', async function () {
    const summary = await cases.brokerRestart(LARGE);
    check(summary);
    expect(summary['enqueueCallsFailed']).to.be.greaterThan(0);
    expect(summary['failedCallMaxMs']).to.be.below(6000);
    expect((summary['failedCallError'] as { name: string }).name).to.equal('ConnectionError');
  });

  it('the broker frozen (SIGSTOP) for 15 s, past the command timeout and the job locks, recovers after SIGCONT', async function () {
    const summary = await cases.brokerPause({ ...LARGE, jobMs: 300, faultMs: 15_000 });
    check(summary);
    expect(summary['enqueueCallsFailed'], 'the enqueue during the freeze timed out (the broker was frozen)').to.equal(1);
  });

  it('connections killed server-side (CLIENT KILL) five times mid-load are re-made', async function () {
    const summary = await cases.clientKill(LARGE, 5);
    check(summary);
    expect(summary['connectionsKilled'], 'connections killed by CLIENT KILL').to.be.greaterThan(0);
  });

  it('the broker connections cut by the network (TCP proxy) five times mid-load are recovered', async function () {
    const summary = await cases.networkCut(LARGE, 5);
    check(summary);
    expect(summary['connectionsCut'], 'connections cut by the proxy').to.be.greaterThan(0);
  });

  it('the result backend down for 20 s while jobs run: nothing lost, every job SUCCESS once it is back', async function () {
    const summary = await cases.backendDown({ ...LARGE, jobs: 600, jobMs: 1000, faultMs: 20_000 }, 5000);
    check(summary);
    expect(summary['readyzWhileDown']).to.deep.equal([503, 503, 503]);
    expect(summary['readyzWhileDownMs'], 'time for /readyz to answer while the backend is down').to.be.below(3000);
  });

  it('the result backend down past RESULT_WRITE_DEADLINE_MS: the stuck attempt fails and BullMQ retries it (documented policy)', async function () {
    const summary = await cases.backendDown({ ...LARGE, workers: 2, jobs: 200, jobMs: 1000, faultMs: 12_000 }, 3000);
    check(summary);
    expect(summary['attemptsFailedOnWrite'], 'attempts failed after the write deadline').to.be.greaterThan(0);
  });

  it('load: 50,000 jobs from the HTTP API and the library through 4 worker processes over TLS', async function () {
    const summary = await load({ jobs: 50_000, workers: 4, concurrency: 50, bulk: 500, inFlight: 4, maxConnections: MAX_CONNECTIONS, settleMs: 600_000 });
    check(summary);
    for (const [name, peak] of Object.entries(summary['peakConnectionsPerProcess'] as Record<string, { broker: number; backend: number }>)) {
      expect(peak.broker, `${name} broker connections`).to.be.at.most(MAX_CONNECTIONS);
      expect(peak.backend, `${name} backend connections`).to.be.at.most(MAX_CONNECTIONS);
    }
    const start = summary['rssStartMb'] as number[];
    const end = summary['rssEndMb'] as number[];
    end.forEach((mb, i) => expect(mb, `worker ${i + 1} RSS ${start[i]} → ${mb} MB`).to.be.below(2 * (start[i] ?? 0) + 50));
  });
});
