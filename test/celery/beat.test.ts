import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { defineTasks, type TasklineWorker } from '@taskline/worker';
import { startBridgeWorker, startCeleryProgram, startCeleryServersOrSkip, until, type CeleryProcess, type CeleryServers } from './celery-helpers.js';

/** Celery beat, unchanged, sends its periodic task through the bridge; taskline runs it. */
describe('Celery bridge: Celery beat', function () {
  this.timeout(90_000);
  let servers: CeleryServers;
  let worker: TasklineWorker;
  let beat: CeleryProcess | undefined;
  let dir: string;
  const ticks: number[] = [];

  before(async function () {
    servers = await startCeleryServersOrSkip(this);
    dir = await mkdtemp(path.join(tmpdir(), 'celery-beat-'));
    worker = await startBridgeWorker(servers, {
      tasks: defineTasks({
        'tasks.tick': {
          run: (_data: unknown, ctx) => {
            ticks.push(Date.now());
            return ctx.jobId;
          },
        },
      }),
    });
  });

  after(async () => {
    await beat?.stop();
    await worker?.close();
    await servers?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('a 1-second beat schedule runs in taskline, once per tick', async () => {
    beat = startCeleryProgram(servers, ['beat', '-s', path.join(dir, 'schedule'), '--pidfile=', '-l', 'warning'], { TICK_SECONDS: '1' });
    await until(async () => ticks.length >= 3, 30_000, `three ticks (beat said: ${beat.output().slice(-500)})`);
    await beat.stop();
    const intervals = ticks.slice(1).map((t, i) => t - (ticks[i] ?? t));
    // One job per tick: about a second apart, none run twice.
    for (const gap of intervals) expect(gap).to.be.greaterThan(500);
  });
});
