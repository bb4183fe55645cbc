// The task model users expect (issue: task defaults, routes, isolation with hard limits, progress),
// through the producer library, the HTTP API, the bins and the beat, against real TLS Redis.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { startApiServer } from '@taskline/producer';
import { createScheduler } from '@taskline/scheduler';
import { createSilentLogger, type JobResultRecord } from '@taskline/shared';
import { loadTaskModule, type TaskSet } from '@taskline/worker';
import { runningRedisCount } from '../harness/index.js';
import { captureLogs } from '../shared/helpers.js';
import { client, closeAll, isolatedKillRss, startPair, startWorker, uniquePrefix, until, type RedisPair } from './helpers.js';

const TASKS = fileURLToPath(new URL('./fixtures/model-tasks.ts', import.meta.url));
const PRODUCER_BIN = fileURLToPath(new URL('../../producer/bin/taskline-producer.js', import.meta.url));
const WORKER_BIN = fileURLToPath(new URL('../../worker/bin/taskline-worker.js', import.meta.url));
const exec = promisify(execFile);

describe('the task model: defaults, routes, isolation and hard limits, progress', function () {
  this.timeout(90_000);
  let redis: RedisPair;
  let prefix: string;
  let tasks: TaskSet;
  let dir: string;
  let runLog: string;

  before(async function () {
    redis = await startPair();
    tasks = await loadTaskModule(TASKS);
  });
  after(async function () {
    await redis.broker.stop();
    await redis.backend.stop();
    expect(runningRedisCount()).to.equal(0);
  });
  beforeEach(function () {
    prefix = uniquePrefix();
    dir = mkdtempSync(path.join(os.tmpdir(), 'taskline-model-'));
    runLog = path.join(dir, 'runs.log');
    writeFileSync(runLog, '');
    process.env['MODEL_RUN_LOG'] = runLog;
  });
  afterEach(async function () {
    delete process.env['MODEL_RUN_LOG'];
    expect(await closeAll(), 'Redis connections left open').to.equal(0);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Whether a process still runs (a zombie waiting to be reaped does not). */
  const alive = (pid: number): boolean => {
    try {
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };

  /** The worker bin on the model tasks, its runs logged to this test's run log. */
  const spawnWorkerBin = (env: Record<string, string>, workerPrefix: string) => {
    const child = spawn(process.execPath, [WORKER_BIN, 'start', '--tasks', TASKS, '--metrics-port', '0'], {
      env: { PATH: process.env['PATH'] ?? '', ...env, TASKLINE_PREFIX: workerPrefix, LOG_FORMAT: 'json', MODEL_RUN_LOG: runLog },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks: string[] = [];
    child.stdout.on('data', (c: Buffer) => chunks.push(c.toString()));
    child.stderr.on('data', (c: Buffer) => chunks.push(c.toString()));
    const exited = new Promise(resolve => child.once('exit', resolve));
    return { child, exited, output: () => chunks.join('') };
  };

  /** The module's tasks, limited to `names` (a worker then warms isolated runners only for those it needs). */
  const only = (...names: string[]): TaskSet =>
    Object.freeze({ kind: tasks.kind, module: tasks.module, byName: new Map([...tasks.byName].filter(([name]) => names.includes(name))) });

  const runsOf = (id: string): string[][] =>
    readFileSync(runLog, 'utf8')
      .split('\n')
      .filter(line => line.startsWith(`${id} `))
      .map(line => line.split(' '));

  describe('task defaults apply', function () {
    it('a task with attempts: 5 and no enqueue options is tried 5 times, with its own backoff', async function () {
      await startWorker({ tasks: only('always-fails'), env: redis.env, prefix });
      const producer = client(redis.env, prefix);
      const id = await producer.enqueue('always-fails', {});
      const record = await producer.waitFor(id, 30_000);
      expect(record).to.include({ state: 'FAILURE', attempt: 5, attempts: 5 });
      expect(runsOf(id).map(r => r[2])).to.deep.equal(['1', '2', '3', '4', '5']);
      // The enqueue call's own attempts still win.
      const capped = await producer.enqueue('always-fails', {}, { attempts: 2 });
      expect(await producer.waitFor(capped, 30_000)).to.include({ state: 'FAILURE', attempt: 2, attempts: 2 });
      expect(runsOf(capped)).to.have.length(2);
    });

    it('a job\'s timeoutMs can lower the task\'s limit but never raise it, on every attempt; the record shows the limit in force', async function () {
      await startWorker({ tasks: only('limited-sleep'), env: redis.env, prefix });
      const producer = client(redis.env, prefix);
      const started = Date.now();
      const raised = await producer.enqueue('limited-sleep', { ms: 3000 }, { timeoutMs: 86_400_000 });
      const lowered = await producer.enqueue('limited-sleep', { ms: 3000 }, { timeoutMs: 300, attempts: 3 });
      const [r1, r2] = await Promise.all([producer.waitFor(raised), producer.waitFor(lowered)]);
      expect(r1).to.deep.include({ state: 'FAILURE', timeoutMs: 1000 });
      expect(r1.error?.type).to.equal('TimeLimitError');
      expect(r2).to.deep.include({ state: 'FAILURE', timeoutMs: 300, attempt: 3 });
      expect(r2.error?.message).to.include('300 ms');
      expect(runsOf(lowered)).to.have.length(3);
      expect(Date.now() - started, 'no attempt ran its full 3 s').to.be.below(2900 + 3 * 300 + 5000);
    });
  });

  it('a synchronous handler that blocks past its time limit fails TimeLimitError on every attempt, never SUCCESS; one within it succeeds', async function () {
    await startWorker({ tasks: only('sync-overrun'), env: redis.env, prefix });
    const producer = client(redis.env, prefix);
    const over = await producer.enqueue('sync-overrun', { ms: 700 });
    const within = await producer.enqueue('sync-overrun', { ms: 10 });
    const [late, quick] = await Promise.all([producer.waitFor(over, 30_000), producer.waitFor(within, 30_000)]);
    expect(late).to.deep.include({ state: 'FAILURE', attempt: 2, attempts: 2, timeoutMs: 300 });
    expect(late.error?.type).to.equal('TimeLimitError');
    expect(runsOf(over), 'each attempt ran the handler to its end').to.have.length(2);
    expect(quick).to.include({ state: 'SUCCESS' });
    expect(quick.result).to.equal('done, too late');
  });

  describe('routes (TASKLINE_ROUTES) shared by every process', function () {
    const routes = JSON.stringify({ echo: 'echoes', 'reports.*': 'reports' });

    it('send a task to its queue from the library, the HTTP API, the CLI and the beat', async function () {
      const env = { ...redis.env, TASKLINE_ROUTES: routes };
      await startWorker({ tasks: only('echo', 'reports.daily'), env, prefix });
      const producer = client(env, prefix);
      // Library
      const viaLibrary = await producer.enqueue('reports.daily', {});
      expect(await producer.waitFor(viaLibrary)).to.deep.include({ state: 'SUCCESS', queue: 'reports', result: { queue: 'reports' } });
      // HTTP API
      const api = await startApiServer({ producer: producer.producer, host: '127.0.0.1', port: 0, token: null, logger: createSilentLogger(), env: {} });
      try {
        const res = await fetch(`http://127.0.0.1:${api.port}/api/v1/jobs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ task: 'echo', data: { via: 'http' } }),
        });
        expect(res.status).to.equal(202);
        const { id } = (await res.json()) as { id: string };
        expect(await producer.waitFor(id)).to.deep.include({ state: 'SUCCESS', queue: 'echoes', result: { via: 'http' } });
      } finally {
        await api.stop();
      }
      // CLI
      const { stdout } = await exec(process.execPath, [PRODUCER_BIN, 'enqueue', 'echo', '--data', '{"via":"cli"}'], {
        env: { PATH: process.env['PATH'] ?? '', ...env, TASKLINE_PREFIX: prefix, LOG_LEVEL: 'error' },
      });
      const cliId = stdout.trim().split('\n').at(-1) ?? '';
      expect(await producer.waitFor(cliId)).to.deep.include({ state: 'SUCCESS', queue: 'echoes' });
      // The beat: an entry naming no queue goes where the routes send its task.
      const schedulePath = path.join(dir, 'schedule.json');
      writeFileSync(schedulePath, JSON.stringify({ schedules: [{ id: 'daily', task: 'reports.daily', every: '1s' }] }));
      const scheduler = createScheduler({ schedulePath, prefix, env, leaseTtlMs: 2000 });
      try {
        await scheduler.start();
        // Ticks are made on the broker by the beat (not through a producer), so the worker keeps them completed for a while.
        await until(async () => ((await producer.producer.inspect.counts(['reports']))['reports']?.completed ?? 0) > 0, 15_000, 'a beat tick done on the reports queue');
      } finally {
        await scheduler.close();
      }
      expect(await producer.producer.inspect.queues()).to.include.members(['echoes', 'reports']);
    });

    it('a worker warns once when it consumes a task from a queue its routes do not send it to', async function () {
      const { logger, lines } = captureLogs('worker');
      await startWorker({ tasks: only('echo'), env: { ...redis.env, TASKLINE_ROUTES: routes }, prefix, queues: ['default'], logger });
      const producer = client(redis.env, prefix); // this caller has no routes: echo goes to default
      const ids = await Promise.all([1, 2, 3].map(n => producer.enqueue('echo', { n })));
      for (const id of ids) expect((await producer.waitFor(id)).state).to.equal('SUCCESS');
      const warnings = lines.filter(l => l.includes('its route does not name'));
      expect(warnings).to.have.length(1);
      expect(JSON.parse(warnings[0] ?? '{}')).to.include({ task: 'echo', queue: 'default', routedTo: 'echoes' });
    });

    it('refuses bad routes with one clear error naming TASKLINE_ROUTES', async function () {
      const producer = () => client({ ...redis.env, TASKLINE_ROUTES: '{"echo": "bad queue!"}' }, prefix);
      expect(producer).to.throw(/TASKLINE_ROUTES sends "echo" to an invalid queue/);
      expect(() => client({ ...redis.env, TASKLINE_ROUTES: '/no/such/routes.json' }, prefix)).to.throw(/names the file \/no\/such\/routes.json, which does not exist/);
    });
  });

  describe('isolated handlers and hard time limits', function () {
    it('an isolated busy loop with a 1 s hard limit ends FAILURE TimeLimitError within 2 s while the worker keeps finishing other jobs', async function () {
      await startWorker({ tasks: only('spin', 'echo'), env: redis.env, prefix, concurrency: 4 });
      const producer = client(redis.env, prefix);
      const spin = await producer.enqueue('spin', { ms: 10_000 });
      await until(() => runsOf(spin).length === 1, 15_000, 'the spin handler started');
      const handlerStarted = Number(runsOf(spin)[0]?.[4]);
      // While it spins, other jobs on the same worker finish.
      const echoes = await Promise.all(Array.from({ length: 10 }, (_, n) => producer.enqueue('echo', { n })));
      const finished = await Promise.all(echoes.map(id => producer.waitFor(id)));
      const record = await producer.waitFor(spin);
      expect(record.state).to.equal('FAILURE');
      expect(record.error?.type).to.equal('TimeLimitError');
      expect(record.error?.message).to.include('hard time limit of 1000 ms');
      const ended = Date.parse(record.finishedAt ?? '');
      expect(ended - handlerStarted, 'ended within 2 s of the handler\'s start').to.be.within(900, 2000);
      expect(finished.every(r => r.state === 'SUCCESS')).to.equal(true);
      expect(Math.max(...finished.map(r => Date.parse(r.finishedAt ?? ''))), 'other jobs finished while it spun').to.be.below(ended);
    });

    it('the hard limit kills what the handler started too: its runner\'s whole process group', async function () {
      await startWorker({ tasks: only('spawns-sleeper'), env: redis.env, prefix });
      const producer = client(redis.env, prefix);
      const id = await producer.enqueue('spawns-sleeper', { ms: 10_000 });
      const record = await producer.waitFor(id, 30_000);
      expect(record.error?.type).to.equal('TimeLimitError');
      const sleeper = Number(readFileSync(runLog, 'utf8').match(/^sleeper (\d+)$/m)?.[1]);
      expect(sleeper, 'the handler started its sleep').to.be.greaterThan(0);
      await until(() => !alive(sleeper), 3000, `the handler's sleep (pid ${sleeper}) killed with its runner`);
    });

    it('an isolated runner dies with its worker: a SIGKILLed worker leaves no handler running', async function () {
      const worker = spawnWorkerBin(redis.env, prefix);
      try {
        await until(() => worker.output().includes('"Worker ready"'), 30_000, 'worker ready');
        const producer = client(redis.env, prefix);
        const id = await producer.enqueue('long-spin', { ms: 15_000 });
        await until(() => runsOf(id).length === 1, 15_000, 'the long spin started');
        const runner = Number(runsOf(id)[0]?.[1]);
        expect(runner, 'the runner is another process').to.not.equal(worker.child.pid);
        worker.child.kill('SIGKILL');
        await worker.exited;
        await until(() => !alive(runner), 3000, `the runner (pid ${runner}) gone within 3 s of its worker`);
      } finally {
        worker.child.kill('SIGKILL');
      }
    });

    it('an isolated CPU-bound handler longer than the lock runs once with two workers (the lock keeps being renewed)', async function () {
      const settings = { lockDurationMs: 1000, stalledIntervalMs: 500 };
      await startWorker({ tasks: only('long-spin'), env: redis.env, prefix, concurrency: 2, ...settings });
      await startWorker({ tasks: only('long-spin'), env: redis.env, prefix, concurrency: 2, ...settings });
      const producer = client(redis.env, prefix);
      const id = await producer.enqueue('long-spin', { ms: 3000 });
      const record = await producer.waitFor(id, 30_000);
      expect(record).to.include({ state: 'SUCCESS', delivery: 1 });
      expect(runsOf(id), 'runs of the handler').to.have.length(1);
    });

    it('a worker whose isolated handlers are killed at their hard limit keeps a flat RSS (10 kills; 100 in pnpm test:faults)', async function () {
      this.timeout(240_000);
      const { before, after, records } = await isolatedKillRss(redis, prefix, { warmUp: 3, jobs: 10, task: 'spin' });
      expect(records.every(r => r.state === 'FAILURE' && r.error?.type === 'TimeLimitError'), 'every spin killed at its hard limit').to.equal(true);
      expect(after - before, `RSS ${before} → ${after} MB`).to.be.below(40);
    });

    it('an in-process handler that ignores its limit is reported and counted as active until it really ends', async function () {
      const { logger, lines } = captureLogs('worker');
      const worker = await startWorker({ tasks: only('ignores-signal'), env: redis.env, prefix, logger });
      const producer = client(redis.env, prefix);
      const id = await producer.enqueue('ignores-signal', {});
      const record = await producer.waitFor(id);
      expect(record.state).to.equal('FAILURE');
      expect(record.error?.type).to.equal('TimeLimitError');
      const metric = async (name: string): Promise<string> => (await worker.registry.getSingleMetricAsString(name)) ?? '';
      expect(await metric('taskline_worker_overrunning_handlers')).to.match(/queue="default"} 1/);
      expect(await metric('taskline_worker_active_jobs')).to.match(/queue="default"} 1/);
      expect(lines.some(l => l.includes('still running after its attempt ended'))).to.equal(true);
      await until(async () => /queue="default"} 0/.test(await metric('taskline_worker_overrunning_handlers')), 5000, 'the handler to end');
      expect(await metric('taskline_worker_active_jobs')).to.match(/queue="default"} 0/);
      expect((await producer.get(id))?.state, 'its late return changes nothing').to.equal('FAILURE');
    });

    it('refuses isolated tasks whose module the runners cannot load', async function () {
      const { defineTasks, createWorker } = await import('@taskline/worker');
      const inline = defineTasks({ x: { run: () => 1, isolated: true } });
      expect(() => createWorker({ tasks: inline, env: redis.env, prefix })).to.throw(/runs isolated, so its code must load by path/);
      expect(() => defineTasks({ x: { run: () => 1, timeoutMs: 500, hardTimeoutMs: 100 } })).to.throw(/hardTimeoutMs \(100\) is below timeoutMs \(500\)/);
    });
  });

  describe('progress reaches the caller', function () {
    for (const task of ['progress', 'progress-isolated'] as const) {
      it(`through the library (onProgress, watch), GET /api/v1/jobs/:id and the event stream (${task})`, async function () {
        await startWorker({ tasks: only(task), env: redis.env, prefix, progressIntervalMs: 0 });
        const producer = client(redis.env, prefix);
        // waitForResult({ onProgress })
        const seen: unknown[] = [];
        const a = await producer.enqueue(task, {});
        const record = await producer.producer.waitForResult(a, { timeoutMs: 15_000, onProgress: p => seen.push(p) });
        expect(record).to.deep.include({ state: 'SUCCESS', result: 'done', progress: { done: 3, total: 3 } });
        expect(seen.length, 'progress events before the end').to.be.at.least(1);
        // watch()
        const b = await producer.enqueue(task, {});
        const watched: string[] = [];
        for await (const event of producer.producer.watch(b, { timeoutMs: 15_000 })) {
          watched.push(event.final ? `final:${event.state}` : event.progress !== undefined ? `progress:${(event.progress as { done: number }).done}` : event.state);
        }
        expect(watched.at(-1)).to.equal('final:SUCCESS');
        expect(watched.some(w => w.startsWith('progress:'))).to.equal(true);
        // HTTP: the record shows progress; the event stream delivers it, then the final record.
        const api = await startApiServer({ producer: producer.producer, host: '127.0.0.1', port: 0, token: null, logger: createSilentLogger(), env: {} });
        try {
          const c = await producer.enqueue(task, {});
          const stream = await fetch(`http://127.0.0.1:${api.port}/api/v1/jobs/${c}/events?timeout=30`);
          expect(stream.status).to.equal(200);
          expect(stream.headers.get('content-type')).to.equal('text/event-stream');
          const text = await stream.text();
          const events = text.split('\n\n').filter(Boolean).map(block => /^event: (\w+)/m.exec(block)?.[1]);
          expect(events.at(-1)).to.equal('final');
          expect(events).to.include('progress');
          const final = JSON.parse(/data: (.*)$/m.exec(text.split('event: final')[1] ?? '')?.[1] ?? '{}') as JobResultRecord;
          expect(final).to.deep.include({ state: 'SUCCESS', progress: { done: 3, total: 3 } });
          const res = await fetch(`http://127.0.0.1:${api.port}/api/v1/jobs/${c}`);
          expect(await res.json()).to.deep.include({ state: 'SUCCESS', progress: { done: 3, total: 3 } });
        } finally {
          await api.stop();
        }
      });
    }
  });
});

