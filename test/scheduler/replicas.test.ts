import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runningRedisCount, startRedis, type RunningRedis } from '../harness/index.js';
import { envFor } from '../shared/helpers.js';
import { BeatProcess, sleep, tickReport, TickConsumer } from './beat-process.js';

/**
 * Three `taskline-scheduler start` replicas over TLS (separate broker and result backend), a BullMQ
 * worker consuming the ticks, and the faults an operator meets: a leader killed, a leader frozen.
 */
describe('scheduler: replicas over TLS', function () {
  this.timeout(60_000);
  let broker: RunningRedis;
  let backend: RunningRedis;
  let dir: string;
  let beats: BeatProcess[] = [];
  let consumer: TickConsumer | null = null;
  let counter = 0;

  before(async () => {
    [broker, backend] = await Promise.all([startRedis({ tls: true }), startRedis({ tls: true })]);
    dir = await mkdtemp(join(tmpdir(), 'taskline-beat-'));
  });

  after(async () => {
    await Promise.all([broker?.stop(), backend?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });

  afterEach(async () => {
    await Promise.all(beats.map(b => b.stop()));
    beats = [];
    await consumer?.close();
    consumer = null;
    expect(runningRedisCount()).to.equal(2);
  });

  const LEASE_MS = 1500;

  async function cluster(replicas: number, schedules: unknown[]): Promise<{ prefix: string; file: string; queue: string }> {
    counter += 1;
    const prefix = `beat${counter}-${process.pid}`;
    const file = join(dir, `schedule-${counter}.json`);
    await writeFile(file, JSON.stringify({ schedules }));
    const env = {
      ...envFor(broker, backend),
      TASKLINE_PREFIX: prefix,
      TASKLINE_BEAT_LEASE_MS: String(LEASE_MS),
      TASKLINE_BEAT_WATCH_MS: '300',
      TASKLINE_BEAT_DEBOUNCE_MS: '50',
      TASKLINE_BEAT_STATS_MS: '300',
    };
    consumer = new TickConsumer(envFor(broker, backend), 'beat-q', prefix);
    await consumer.start();
    for (let i = 0; i < replicas; i++) beats.push(new BeatProcess(`beat-${i}`, file, env));
    await Promise.all(beats.map(b => b.waitFor('ops server listening', 15_000)));
    return { prefix, file, queue: 'beat-q' };
  }

  const leaders = (): BeatProcess[] => beats.filter(b => b.running && b.logs.filter(l => l.message === 'became leader').length > b.logs.filter(l => l.message === 'stepped down').length);

  async function waitForLeader(timeoutMs: number, exclude?: BeatProcess): Promise<BeatProcess> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = leaders().filter(b => b !== exclude);
      if (found.length === 1 && found[0]) return found[0];
      if (Date.now() > deadline) throw new Error(`expected one leader, found ${found.length}:\n${beats.map(b => `${b.name}: ${b.raw.slice(-6).join('\n')}`).join('\n')}`);
      await sleep(25);
    }
  }

  it('three replicas: one leader, each every-1s tick enqueued and run exactly once; SIGKILL of the leader hands over with no duplicate', async () => {
    await cluster(3, [{ id: 'tick', task: 'tick', queue: 'beat-q', every: '1s' }]);
    const first = await waitForLeader(5_000);
    await first.waitFor('reconciled', 5_000);
    await sleep(8_000);

    let report = tickReport(consumer!, 'tick', 1000);
    expect(report.ticks.length, 'ticks in ~8 s').to.be.within(7, 10);
    expect(report.duplicates, 'tick jobs run twice').to.deep.equal([]);
    expect(report.gaps, 'steps between consecutive ticks other than 1000 ms').to.deep.equal([]);
    expect(beats.filter(b => b.has('became leader')), 'replicas that ever led').to.have.length(1);
    const leaderGauges = await Promise.all(beats.map(b => b.metric('taskline_beat_leader')));
    expect(leaderGauges.sort()).to.deep.equal([0, 0, 1]);
    expect(await first.metric('taskline_beat_ticks_enqueued_total'), 'ticks counted by the leader (sampled every 300 ms)').to.be.within(report.ticks.length - 3, report.ticks.length + 1);
    expect(await first.metric('taskline_beat_schedules_active')).to.equal(1);

    const killedAt = Date.now();
    first.child.kill('SIGKILL');
    await first.exited;
    const second = await waitForLeader(LEASE_MS + 1_500, first);
    const takeoverMs = Date.now() - killedAt;
    expect(takeoverMs, 'takeover time').to.be.below(LEASE_MS + 1_000);
    await second.waitFor('reconciled', 3_000);
    expect(second.logs.find(l => l.message === 'reconciled')?.['unchanged']).to.deep.equal(['tick']);
    const before = report.ticks.length;
    await sleep(3_500);

    report = tickReport(consumer!, 'tick', 1000);
    expect(report.ticks.length - before, 'ticks after the failover').to.be.within(2, 5);
    expect(report.duplicates).to.deep.equal([]);
    expect(report.gaps, 'a failover loses no tick: BullMQ makes them, not the beat').to.deep.equal([]);
  });

  it('a leader frozen past its lease (SIGSTOP) is replaced, and after SIGCONT steps down without writing or double-firing', async () => {
    const { file } = await cluster(2, [{ id: 'tick', task: 'tick', queue: 'beat-q', every: '1s' }]);
    const first = await waitForLeader(5_000);
    await first.waitFor('reconciled', 5_000);
    await sleep(1_500);

    first.child.kill('SIGSTOP');
    const second = await waitForLeader(LEASE_MS + 1_500, first);
    await second.waitFor('reconciled', 3_000);
    // A change while the old leader is frozen: the new leader applies it; the old one must not.
    await writeFile(file, JSON.stringify({ schedules: [{ id: 'tick', task: 'tick', queue: 'beat-q', every: '1s' }, { id: 'extra', task: 'tick', queue: 'beat-q', every: '1s' }] }));
    await second.waitFor('schedule added', 3_000);
    const resumedAt = first.logs.length;
    first.child.kill('SIGCONT');
    await first.waitFor('stepped down', 3_000, resumedAt);
    await sleep(2_000);

    expect(first.logs.slice(resumedAt).filter(l => /^schedule (added|updated|removed)$|^reconciled$/.test(l.message)), 'writes by the old leader after SIGCONT').to.deep.equal([]);
    expect(await first.metric('taskline_beat_leader')).to.equal(0);
    expect(await second.metric('taskline_beat_leader')).to.equal(1);
    for (const id of ['tick', 'extra']) {
      const report = tickReport(consumer!, id, 1000);
      expect(report.duplicates, `${id} tick jobs run twice`).to.deep.equal([]);
      expect(report.gaps, `${id} gaps`).to.deep.equal([]);
    }
    expect(tickReport(consumer!, 'tick', 1000).ticks.length).to.be.at.least(5);
  });
});
