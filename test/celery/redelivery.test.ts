import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { expect } from 'chai';
import { ROOT, python, startCeleryServersOrSkip, until, type CeleryServers } from './celery-helpers.js';

const WORKER_BIN = path.join(ROOT, 'worker/bin/taskline-worker.js');
const TASKS = path.join(ROOT, 'test/celery/fixtures/celery-tasks.ts');
/** Messages sent; CELERY_KILL_TEST_MESSAGES lowers it on a slow machine. */
const MESSAGES = Number(process.env['CELERY_KILL_TEST_MESSAGES'] ?? '2000');

interface WorkerProcess {
  child: ChildProcess;
  output: string[];
  exited: Promise<void>;
}

function spawnWorker(servers: CeleryServers, extraEnv: Record<string, string> = {}): WorkerProcess {
  const child = spawn(process.execPath, [WORKER_BIN, 'start', '--tasks', TASKS, '--queues', 'default', '--celery-queues', 'taskline', '--metrics-port', '0'], {
    env: {
      PATH: process.env['PATH'] ?? '',
      LOG_FORMAT: 'json',
      TASKLINE_PREFIX: servers.prefix,
      // A dead worker's jobs (and its Celery processing list) come back within seconds.
      TASKLINE_LOCK_DURATION_MS: '2000',
      TASKLINE_STALLED_INTERVAL_MS: '1000',
      TASKLINE_MAX_STALLED_COUNT: '5',
      TASKLINE_CONCURRENCY: '20',
      RECORD_SLEEP_MS: '10',
      ...servers.pair.env,
      ...extraEnv,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  child.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
  child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  const exited = new Promise<void>(resolve => child.once('exit', () => resolve()));
  return { child, output, exited };
}

async function ready(worker: WorkerProcess): Promise<void> {
  await until(async () => worker.output.join('').includes('"Worker ready"'), 30_000, `worker ready: ${worker.output.join('').slice(-1000)}`);
}

/**
 * At least once, no duplicates: Celery messages sent from Python while the only consuming worker
 * is SIGKILLed twice (and started again each time). Every task runs; no task runs as a second
 * job (a run that is not a redelivery of an interrupted one is counted as "fresh": at most one
 * per task); every result is readable from Python.
 */
describe('Celery bridge: SIGKILL while Celery messages arrive', function () {
  this.timeout(240_000);
  let servers: CeleryServers;
  const workers: WorkerProcess[] = [];

  before(async function () {
    servers = await startCeleryServersOrSkip(this);
  });

  after(async () => {
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await Promise.all(workers.map(w => w.exited));
    await servers?.stop();
  });

  it(`${MESSAGES} messages, two kills: every task runs, none as a second job, every result readable in Python`, async () => {
    const backend = servers.pair.backend;
    const total = async () => Number((await backend.cli('GET', 'example:total')) || '0');
    let worker = spawnWorker(servers);
    workers.push(worker);
    await ready(worker);
    const sending = python<{ sent: number }>(servers, ['send', 'tasks.record', String(MESSAGES), 'taskline', 'kill'], 180_000);
    for (const at of [0.15, 0.5]) {
      await until(async () => (await total()) >= MESSAGES * at, 120_000, `${at * 100}% of the runs`);
      worker.child.kill('SIGKILL');
      await worker.exited;
      worker = spawnWorker(servers);
      workers.push(worker);
      await ready(worker);
    }
    expect(await sending).to.deep.equal({ sent: MESSAGES });

    const counts = async (kind: 'runs' | 'fresh') => {
      const keys = Array.from({ length: MESSAGES }, (_, n) => `example:${kind}:kill-${n}`);
      const values: number[] = [];
      for (let i = 0; i < keys.length; i += 500) values.push(...(await backend.cli('MGET', ...keys.slice(i, i + 500))).split('\n').map(v => Number(v || '0')));
      return values;
    };
    await until(async () => (await counts('runs')).every(v => v >= 1), 120_000, 'every task to run');
    const fresh = await counts('fresh');
    expect(fresh.filter(v => v > 1), 'tasks run as a second job').to.deep.equal([]);
    const runs = await counts('runs');
    const reruns = runs.filter(v => v > 1).length;
    // Only jobs interrupted by a kill run again, as redeliveries: at most the concurrency per kill.
    expect(reruns).to.be.at.most(2 * 20);

    const checked = await python<{ checked: number; badCount: number; bad: unknown[] }>(servers, ['results', 'kill', String(MESSAGES)], 180_000);
    expect(checked).to.deep.include({ checked: MESSAGES, badCount: 0 });
    // Nothing is left in a processing list once the last worker took over.
    await until(async () => (await servers.pair.broker.cli('KEYS', `${servers.prefix}::celery:processing:*`)) === '' || null, 20_000, 'processing lists emptied');
    expect(await servers.pair.broker.cli('LLEN', 'taskline')).to.equal('0');
    const takenOver = workers.flatMap(w => w.output.join('').split('\n')).filter(l => l.includes('Took over the Celery messages')).map(l => (JSON.parse(l) as { messages: number }).messages);
    console.log(`      ${reruns} tasks re-run as redeliveries of interrupted jobs; Celery messages taken over from dead consumers: ${takenOver.join(', ') || 'none'}`);
    worker.child.kill('SIGTERM');
    await worker.exited;
  });

  it('a job the broker fails on its own (it stalled past the limit) reads FAILURE in Python, not forever PENDING', async () => {
    // One redelivery allowed: the worker is killed in the first run and in the redelivered one.
    const env = { TASKLINE_MAX_STALLED_COUNT: '1', RECORD_SLEEP_MS: '60000', TASKLINE_SETTLE_INTERVAL_MS: '500' };
    let worker = spawnWorker(servers, env);
    workers.push(worker);
    await ready(worker);
    await python(servers, ['send', 'tasks.record', '1', 'taskline', 'lost']);
    for (const run of ['1', '2']) {
      await until(async () => (await servers.pair.backend.cli('GET', 'example:runs:lost-0')) === run, 30_000, `run ${run} to start`);
      worker.child.kill('SIGKILL');
      await worker.exited;
      worker = spawnWorker(servers, env);
      workers.push(worker);
      await ready(worker);
    }
    const out = await python(servers, ['outcome', 'lost-0', '40'], 60_000);
    expect(out).to.deep.include({ raised: 'WorkerLostError', state: 'FAILURE' });
    worker.child.kill('SIGTERM');
    await worker.exited;
  });
});
