import { expect } from 'chai';
import { celeryTask, defineTasks, type TasklineWorker } from '@taskline/worker';
import { python, startBridgeWorker, startCeleryServersOrSkip, type CeleryServers } from './celery-helpers.js';

/**
 * A Python Celery app, unchanged, through a taskline worker: TLS on both sides, a separate broker
 * and result backend; Python sends with .delay()/apply_async() and reads with AsyncResult.get().
 */
describe('Celery bridge: round trip from Python', function () {
  this.timeout(90_000);
  let servers: CeleryServers;
  let worker: TasklineWorker;
  const runs: Array<{ at: number; args: unknown[] }> = [];

  before(async function () {
    servers = await startCeleryServersOrSkip(this);
    worker = await startBridgeWorker(servers, {
      // One job at a time, so a slow task makes a backlog.
      concurrency: 1,
      tasks: defineTasks({
        'tasks.slow': { run: () => new Promise(resolve => setTimeout(resolve, 2000)) },
        'tasks.add': {
          run: celeryTask((x: number, y: number) => {
            runs.push({ at: Date.now(), args: [x, y] });
            return x + y;
          }),
        },
        'tasks.fail': {
          run: celeryTask((message: string) => {
            throw new TypeError(message);
          }),
        },
      }),
    });
  });

  after(async () => {
    await worker?.close();
    await servers?.stop();
  });

  it('add.delay(2, 3).get() is 5, and both records say SUCCESS', async () => {
    const { id, result } = await python<{ id: string; result: number }>(servers, ['add', '2', '3']);
    expect(result).to.equal(5);
    const meta = JSON.parse(await servers.pair.backend.cli('GET', `celery-task-meta-${id}`)) as Record<string, unknown>;
    expect(meta).to.include({ status: 'SUCCESS', result: 5, task_id: id });
    expect(Number(await servers.pair.backend.cli('TTL', `celery-task-meta-${id}`))).to.be.within(86_000, 86_400);
  });

  it("a failing task raises in Python with the handler's message", async () => {
    const out = await python(servers, ['fail', 'the disk is full']);
    expect(out).to.deep.equal({ raised: 'TypeError', message: 'the disk is full', state: 'FAILURE' });
  });

  it('countdown=2 runs the task no sooner than 2 s after it was sent', async () => {
    const before = runs.length;
    const out = await python<{ result: number; elapsed: number }>(servers, ['countdown', '2']);
    expect(out.result).to.equal(2);
    expect(out.elapsed).to.be.at.least(2);
    expect(runs.length).to.equal(before + 1);
  });

  it('an expires in the past is not run and reads REVOKED in Python', async () => {
    const before = runs.length;
    const out = await python(servers, ['expired']);
    expect(out).to.deep.equal({ state: 'REVOKED', raised: 'TaskRevokedError' });
    expect(runs.length).to.equal(before);
  });

  it('an expires due before the countdown is REVOKED at once, not run', async () => {
    const before = runs.length;
    // countdown 2 s, expires 1 s: due after it expired.
    const out = await python(servers, ['expired-later']);
    expect(out).to.deep.equal({ state: 'REVOKED', raised: 'TaskRevokedError' });
    expect(runs.length).to.equal(before);
  });

  it('an expires that passes while the task waits behind others is REVOKED, not run', async () => {
    const before = runs.length;
    const out = await python(servers, ['expired-in-backlog']);
    expect(out).to.deep.equal({ state: 'REVOKED', raised: 'TaskRevokedError' });
    expect(runs.length).to.equal(before);
  });

  it("a message with a priority (kombu's list taskline\\x06\\x166) runs too", async () => {
    expect(await python(servers, ['priority', '6'])).to.deep.equal({ result: 10 });
  });

  it('ignore_result=True runs the task and writes no Celery record', async () => {
    const before = runs.length;
    const { id } = await python<{ id: string }>(servers, ['ignored']);
    const deadline = Date.now() + 10_000;
    while (runs.length === before && Date.now() < deadline) await new Promise(r => setTimeout(r, 50));
    expect(runs.length).to.equal(before + 1);
    await new Promise(r => setTimeout(r, 300));
    expect(await servers.pair.backend.cli('EXISTS', `celery-task-meta-${id}`)).to.equal('0');
  });
});
