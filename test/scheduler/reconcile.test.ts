import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import { createConnections, resolveConnectionOptions, type TasklineConnections } from '@taskline/shared';
import { createScheduler, ScheduleFileError, type Scheduler, type ScheduleStatus } from '@taskline/scheduler';
import { runningRedisCount, startRedis, type RunningRedis } from '../harness/index.js';
import { captureLogs, envFor } from '../shared/helpers.js';
import { BEAT_BIN, sleep, TickConsumer } from './beat-process.js';

const run = promisify(execFile);

/** The file is the source of truth: entries added, edited and removed in it are reflected in Redis. */
describe('scheduler: reconciling the schedule file over TLS', function () {
  this.timeout(60_000);
  let broker: RunningRedis;
  let backend: RunningRedis;
  let dir: string;
  let scheduler: Scheduler | null = null;
  let consumer: TickConsumer | null = null;
  let admin: TasklineConnections | null = null;
  let foreign: Queue | null = null;

  before(async () => {
    [broker, backend] = await Promise.all([startRedis({ tls: true }), startRedis({ tls: true })]);
    dir = await mkdtemp(join(tmpdir(), 'taskline-beat-rec-'));
  });
  after(async () => {
    await Promise.all([broker?.stop(), backend?.stop()]);
    await rm(dir, { recursive: true, force: true });
  });
  afterEach(async () => {
    await scheduler?.close();
    await foreign?.close();
    await consumer?.close();
    await admin?.close();
    scheduler = consumer = admin = foreign = null;
    expect(runningRedisCount()).to.equal(2);
  });

  async function until(what: string, check: () => Promise<boolean>, timeoutMs = 4_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(50);
    }
  }

  it('adds, edits and removes its own schedules on file change, never touches others, and list shows the state', async () => {
    const prefix = `rec-${process.pid}`;
    const env = envFor(broker, backend);
    const file = join(dir, 'schedule.json');
    const write = (schedules: unknown[]): Promise<void> => writeFile(file, JSON.stringify({ schedules }));
    const keep = { id: 'keep', task: 'tick', queue: 'rq', every: '1s' };
    const gone = { id: 'gone', task: 'tick', queue: 'rq', every: '1s' };
    await write([keep, gone, { id: 'edit', task: 'tick', queue: 'rq', cron: '0 0 1 1 *', tz: 'Europe/Berlin' }]);

    admin = createConnections({ options: resolveConnectionOptions({ healthCheckIntervalMs: 0 }, env), role: 'cli' });
    foreign = new Queue('rq', { connection: await admin.broker.bullmqConnection(0), prefix });
    await foreign.upsertJobScheduler('someone-else', { every: 1000 }, { name: 'tick' });
    consumer = new TickConsumer(env, 'rq', prefix);
    await consumer.start();

    const { logger, lines } = captureLogs('scheduler');
    scheduler = createScheduler({
      logger,
      schedulePath: file,
      connection: resolveConnectionOptions({}, env),
      prefix,
      leaseTtlMs: 1500,
      watchIntervalMs: 200,
      debounceMs: 50,
    });
    await scheduler.start();
    await until('leadership', async () => scheduler!.isLeader);
    await until('first reconcile', async () => (await foreign!.getJobScheduler('beat:edit')) !== undefined);
    await sleep(2_000);
    expect(consumer.ticks('gone').length, 'ticks of "gone" before removal').to.be.at.least(1);
    expect(consumer.ticks('edit'), 'yearly cron has not fired').to.deep.equal([]);

    // Edit the cron to every second and drop "gone".
    await write([keep, { id: 'edit', task: 'tick', queue: 'rq', cron: '* * * * * *', tz: 'Europe/Berlin' }]);
    await until('"gone" removed', async () => (await foreign!.getJobScheduler('beat:gone')) === undefined);
    const removedAt = Date.now();
    await sleep(2_500);
    expect(consumer.ticks('gone').filter(ms => ms > removedAt + 100), 'ticks of "gone" due after its removal').to.deep.equal([]);
    expect(consumer.ticks('edit').length, 'ticks of the edited cron').to.be.within(2, 4);
    expect((await foreign.getJobScheduler('beat:edit'))?.pattern).to.equal('* * * * * *');
    expect(consumer.ticks('keep').length).to.be.at.least(4);
    expect(await foreign.getJobScheduler('someone-else'), 'a scheduler the beat does not own').to.not.equal(undefined);

    // list (the real bin): in sync for the file as applied, "differs" for an edited copy.
    const childEnv = { ...process.env, ...env, TASKLINE_PREFIX: prefix, LOG_LEVEL: 'error' };
    const listed = async (path: string): Promise<ScheduleStatus[]> =>
      JSON.parse((await run(process.execPath, [BEAT_BIN, 'list', '--schedule', path, '--json'], { env: childEnv })).stdout) as ScheduleStatus[];
    const rows = await listed(file);
    expect(rows.map(r => [r.id, r.redis])).to.deep.equal([['keep', 'in sync'], ['edit', 'in sync']]);
    expect(rows[1]?.nextRuns).to.have.length(3);
    expect(rows[1]?.nextRunsLocal[0]).to.match(/GMT\+1$/);
    expect(rows[0]?.lastRun).to.be.a('string');
    const changed = join(dir, 'changed.json');
    await writeFile(changed, JSON.stringify({ schedules: [{ ...keep, every: '2s' }, { id: 'new', task: 'tick', every: '1m' }] }));
    expect((await listed(changed)).map(r => [r.id, r.redis])).to.deep.equal([
      ['keep', 'differs from the file'],
      ['new', 'missing in Redis'],
      ['edit', 'in Redis only (will be removed)'],
    ]);

    // An invalid file is refused and the schedules in Redis stay as they were.
    await writeFile(file, '{"schedules": [{"id": "keep", "task": "tick", "every": "1 sec"}]}');
    const error = await scheduler.reconcile('test').then(() => null, (err: unknown) => err);
    expect(error).to.be.instanceOf(ScheduleFileError);
    expect((error as ScheduleFileError).message).to.match(/id "keep"\), field "every": must be a duration/);
    expect(await foreign.getJobScheduler('beat:keep')).to.not.equal(undefined);
    expect(await foreign.getJobScheduler('beat:edit')).to.not.equal(undefined);
    expect(lines.filter(l => l.includes('stepped down')), 'a single replica never loses its lease').to.deep.equal([]);
    expect(scheduler.isLeader).to.equal(true);
  });

  it('keeps its keys under <prefix>::beat: and adopts the owned-schedules hash of the old <prefix>:beat: name', async () => {
    const prefix = `adopt-${process.pid}`;
    const env = envFor(broker, backend);
    const file = join(dir, 'adopt.json');
    await writeFile(file, JSON.stringify({ schedules: [{ id: 'keep', task: 'tick', queue: 'aq', every: '1m' }] }));
    admin = createConnections({ options: resolveConnectionOptions({ healthCheckIntervalMs: 0 }, env), role: 'cli' });
    const client = await admin.broker.bullmqConnection(0);
    foreign = new Queue('aq', { connection: client, prefix });
    // What an earlier version left: a scheduler it created, listed under the old key name.
    await foreign.upsertJobScheduler('beat:dropped', { every: 60_000 }, { name: 'tick' });
    await client.hset(`${prefix}:beat:schedules`, 'aq/beat:dropped', JSON.stringify({ hash: 'old', task: 'tick', fence: 7, updatedAt: '' }));

    scheduler = createScheduler({ schedulePath: file, connection: resolveConnectionOptions({}, env), prefix, leaseTtlMs: 1500, watchIntervalMs: 200, debounceMs: 50 });
    await scheduler.start();
    await until('the dropped schedule removed', async () => (await foreign!.getJobScheduler('beat:dropped')) === undefined);
    expect(await foreign.getJobScheduler('beat:keep')).to.not.equal(undefined);
    expect(await client.exists(`${prefix}:beat:schedules`, `${prefix}:beat:lease`, `${prefix}:beat:fence`), 'nothing under the old names').to.equal(0);
    expect(await client.exists(`${prefix}::beat:schedules`, `${prefix}::beat:lease`, `${prefix}::beat:fence`)).to.equal(3);
    expect(Object.keys(await client.hgetall(`${prefix}::beat:schedules`))).to.deep.equal(['aq/beat:keep']);
  });

  it('validate exits 2 with every problem, naming entry and field', async () => {
    const file = join(dir, 'bad.json');
    await writeFile(file, JSON.stringify([{ id: 'a', task: 't', cron: '* * *' }, { id: 'a', task: 't', every: '1s', tz: 'Moon/Base' }]));
    const result = await run(process.execPath, [BEAT_BIN, 'validate', '--schedule', file]).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(result.code).to.equal(2);
    expect(result.stderr).to.include('schedules[0] (id "a"), field "cron"');
    expect(result.stderr).to.include('schedules[1] (id "a"), field "tz"');
    expect(result.stderr).to.include('schedules[1] (id "a"), field "id": duplicates the id of schedules[0]');
  });
});
