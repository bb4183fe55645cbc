import path from 'node:path';
import { writeFile } from 'node:fs/promises';
import { expect } from 'chai';
import { createProducer } from '@taskline/producer';
import { createScheduler } from '@taskline/scheduler';
import { createSilentLogger } from '@taskline/shared';
import { createWorker, defineTasks } from '@taskline/worker';
import { AclServers } from './acl-fixture.js';

// A worker or beat whose Redis user may not run what it needs (here: the app users of
// ops/acl have no EVAL, and REDIS_SCRIPTS=preloaded was forgotten while no loader ran). BullMQ
// refetches at once after such a refusal; taskline must back off, say not ready with the cause,
// and run once the cause is fixed (the scripts loaded), without a restart.

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

/** How many times Redis refused `command` to `user` (ACL LOG counts repeats in one entry). */
async function refusals(acl: AclServers, user: string, command: string): Promise<number> {
  const log = await acl.admin(acl.broker, '--json', 'ACL', 'LOG', '128');
  const entries = JSON.parse(log || '[]') as Array<Record<string, unknown>>;
  return entries.filter(e => e['username'] === user && e['object'] === command).reduce((sum, e) => sum + Number(e['count'] ?? 0), 0);
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

describe('ops: a process whose Redis user is refused what it needs backs off, says why, and recovers', function () {
  this.timeout(90_000);
  let acl: AclServers;

  beforeEach(async () => {
    acl = await AclServers.start();
  });
  afterEach(async () => {
    await acl?.stop();
  });

  it('a worker refused its fetch: no busy loop, /readyz names the cause, jobs run once the scripts are loaded', async () => {
    const worker = createWorker({
      tasks: defineTasks({ add: { run: (d: { a: number; b: number }) => d.a + d.b } }),
      prefix: acl.prefix,
      connection: acl.connectionAs('worker', { scriptLoading: 'eval' }),
      env: {},
      logger: createSilentLogger(),
    });
    const producer = createProducer({ prefix: acl.prefix, connection: acl.connectionAs('producer'), env: {}, logger: createSilentLogger() });
    try {
      await acl.resetAclLogs();
      await worker.start();
      const report = await until('the worker to report not ready', 10_000, async () => {
        const r = await worker.readiness();
        return r.ok ? null : r;
      });
      expect(JSON.stringify(report.errors)).to.match(/refuses to hand out jobs/).and.match(/may not run EVAL/).and.match(/REDIS_SCRIPTS=preloaded/);
      // Over 3 s the refused fetch is retried with backoff (200 ms doubling to 5 s), not thousands of times.
      const before = await refusals(acl, 'worker', 'eval');
      await sleep(3000);
      const during = (await refusals(acl, 'worker', 'eval')) - before;
      expect(before, 'the fetch was refused (the fault happened)').to.be.greaterThan(0);
      expect(during, 'refused fetches in 3 s').to.be.below(20);
      expect((await worker.readiness()).ok).to.equal(false);

      // The fix: the loader puts the scripts in place; the same worker runs jobs, no restart.
      const loaded = await acl.runBin('worker', ['scripts', 'load'], 'loader');
      expect(loaded.code, loaded.stderr).to.equal(0);
      const { id } = await producer.enqueue('add', { a: 2, b: 3 });
      const record = await producer.waitForResult(id, { timeoutMs: 20_000 });
      expect(record.state).to.equal('SUCCESS');
      expect(record.result).to.equal(5);
      await until('the worker to report ready', 15_000, async () => (await worker.readiness()).ok);
    } finally {
      await producer.close();
      await worker.close();
    }
  });

  it('a beat refused its lease step: leaseError names the cause until the scripts are loaded', async () => {
    const schedulePath = path.join(acl.secretsDir, 'schedule.json');
    await writeFile(schedulePath, JSON.stringify({ schedules: [{ id: 'refused-beat', task: 'add', every: '1h' }] }));
    const scheduler = createScheduler({
      schedulePath,
      prefix: acl.prefix,
      connection: acl.connectionAs('scheduler', { scriptLoading: 'eval' }),
      env: {},
      logger: createSilentLogger(),
      leaseTtlMs: 1000,
    });
    try {
      await scheduler.start();
      const error = await until('the lease step to fail', 10_000, async () => scheduler.leaseError);
      expect(error.message).to.match(/may not run EVAL/);
      expect(scheduler.isLeader).to.equal(false);
      const loaded = await acl.runBin('worker', ['scripts', 'load'], 'loader');
      expect(loaded.code, loaded.stderr).to.equal(0);
      await until('the beat to lead', 15_000, async () => scheduler.isLeader);
      expect(scheduler.leaseError).to.equal(null);
    } finally {
      await scheduler.close();
    }
  });
});
