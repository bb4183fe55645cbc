import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { runningRedisCount, startRedis } from '../harness/index.js';
import { client, closeAll, openCount, startPair, uniquePrefix, until, type RedisPair } from './helpers.js';

const BIN = fileURLToPath(new URL('../../worker/bin/taskline-worker.js', import.meta.url));
const TASKS = fileURLToPath(new URL('../../worker/examples/tasks.ts', import.meta.url));

interface Spawned {
  child: ChildProcess;
  output: string[];
  exited: Promise<number | null>;
}

const children = new Set<ChildProcess>();

function spawnWorker(env: Record<string, string>, args: string[] = []): Spawned {
  const child = spawn(process.execPath, [BIN, 'start', '--tasks', TASKS, '--metrics-port', '0', ...args], {
    env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const output: string[] = [];
  child.stdout?.on('data', (c: Buffer) => output.push(c.toString()));
  child.stderr?.on('data', (c: Buffer) => output.push(c.toString()));
  const exited = new Promise<number | null>(resolve => child.once('exit', code => {
    children.delete(child);
    resolve(code);
  }));
  return { child, output, exited };
}

const ready = (w: Spawned) => until(() => w.output.join('').includes('"Worker ready"'), 20_000, 'worker ready');

describe('taskline-worker process', function () {
  let redis: RedisPair;
  let prefix: string;

  before(async function () {
    redis = await startPair();
  });
  after(async function () {
    await redis.broker.stop();
    await redis.backend.stop();
    expect(runningRedisCount()).to.equal(0);
  });
  beforeEach(function () {
    prefix = uniquePrefix();
  });
  afterEach(async function () {
    for (const child of children) child.kill('SIGKILL');
    await until(() => children.size === 0, 5000, 'children gone');
    expect(await closeAll()).to.equal(0);
    expect(openCount()).to.equal(0);
  });

  it('waits (bounded by TASKLINE_START_TIMEOUT_MS) for what can heal: a password file not mounted yet, then Redis not up; /readyz says why meanwhile', async function () {
    this.timeout(90_000);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'taskline-start-'));
    const passwordFile = path.join(dir, 'password');
    const late = await startRedis({ tls: true, password: 'a-password-not-in-any-log', certs: redis.broker.certs! });
    const port = late.port;
    await late.stop(); // the broker is down too
    try {
      const env = {
        ...redis.env,
        ...late.env('REDIS_'),
        REDIS_PASSWORD: '',
        REDIS_PASSWORD_FILE: passwordFile,
        TASKLINE_PREFIX: prefix,
        // Longer than this test's steps take on a loaded machine (the default is 60 s).
        TASKLINE_START_TIMEOUT_MS: '85000',
      } as Record<string, string>;
      delete env['REDIS_PASSWORD'];
      const worker = spawnWorker(env);
      const readyz = async (): Promise<{ status: number; body: string }> => {
        const line = worker.output.join('').split('\n').find(l => l.includes('Serving /metrics'));
        if (!line) return { status: 0, body: '' };
        const res = await fetch(`http://127.0.0.1:${(JSON.parse(line) as { port: number }).port}/readyz`);
        return { status: res.status, body: await res.text() };
      };
      await until(async () => (await readyz()).body.includes('CONFIG_FILE_MISSING') || (await readyz()).body.includes('does not exist'), 20_000, '/readyz naming the missing file');
      expect((await readyz()).status).to.equal(503);
      writeFileSync(passwordFile, 'a-password-not-in-any-log\n', { mode: 0o600 });
      // Now the file is there but the broker is not: still not ready, for that reason.
      await until(async () => /Cannot use the broker/.test((await readyz()).body), 20_000, '/readyz naming the broker');
      expect(worker.child.exitCode, 'the process kept running').to.equal(null);
      const broker = await startRedis({ tls: true, password: 'a-password-not-in-any-log', port, certs: late.certs! });
      try {
        await ready(worker);
        expect((await readyz()).status).to.equal(200);
        const producer = client({ ...redis.env, ...broker.env('REDIS_') }, prefix);
        const id = await producer.enqueue('add', { a: 1, b: 2 });
        expect(await producer.waitFor(id)).to.include({ state: 'SUCCESS', result: 3 });
        const log = worker.output.join('');
        // A warn line per retry, naming the cause; the start after them says so.
        const retries = log.split('\n').filter(l => l.includes('"retryInMs"'));
        expect(retries.length).to.be.greaterThan(1);
        expect(retries.every(l => l.includes('"level":"warn"'))).to.equal(true);
        expect(log).to.include('Started after waiting for the cause to clear');
        expect(log).to.not.include('a-password-not-in-any-log');
      } finally {
        worker.child.kill('SIGTERM');
        await worker.exited;
        await broker.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('drains in-flight jobs on SIGTERM: all finish, none lost, exit code 0', async function () {
    const worker = spawnWorker({ ...redis.env, TASKLINE_PREFIX: prefix, TASKLINE_CONCURRENCY: '4' });
    await ready(worker);
    const producer = client(redis.env, prefix);
    const ids = await Promise.all(Array.from({ length: 4 }, () => producer.enqueue('sleep', { ms: 1500 })));
    await until(async () => {
      const records = await Promise.all(ids.map(id => producer.get(id)));
      return records.every(r => r?.state === 'STARTED');
    }, 10_000, 'all STARTED');
    worker.child.kill('SIGTERM');
    const code = await worker.exited;
    const log = worker.output.join('');
    expect(code, log).to.equal(0);
    expect(log).to.include('draining');
    expect(log).to.include('"Worker closed"');
    const records = await Promise.all(ids.map(id => producer.get(id)));
    expect(records.map(r => r?.state)).to.deep.equal(['SUCCESS', 'SUCCESS', 'SUCCESS', 'SUCCESS']);
  });

  it('a second signal forces: in-flight jobs go back to the queue and the exit code is non-zero', async function () {
    const worker = spawnWorker({ ...redis.env, TASKLINE_PREFIX: prefix });
    await ready(worker);
    const producer = client(redis.env, prefix);
    const id = await producer.enqueue('sleep', { ms: 30_000 });
    await until(async () => (await producer.get(id))?.state === 'STARTED', 10_000, 'STARTED');
    worker.child.kill('SIGTERM');
    await until(() => worker.output.join('').includes('draining'), 5000, 'draining');
    worker.child.kill('SIGTERM');
    const code = await worker.exited;
    expect(code).to.not.equal(0);
    const state = await (await producer.queue()).getJobState(id);
    expect(['waiting', 'delayed']).to.include(state);
  });

  it('two worker processes split one queue', async function () {
    const env = { ...redis.env, TASKLINE_PREFIX: prefix, TASKLINE_CONCURRENCY: '2' };
    const a = spawnWorker(env);
    const b = spawnWorker(env);
    await Promise.all([ready(a), ready(b)]);
    const producer = client(redis.env, prefix);
    const ids = await Promise.all(Array.from({ length: 12 }, () => producer.enqueue('sleep', { ms: 200 })));
    const records = await Promise.all(ids.map(id => producer.waitFor(id, 20_000)));
    expect(records.every(r => r.state === 'SUCCESS')).to.equal(true);
    const byWorker = new Set(records.map(r => r.worker));
    expect(byWorker.size, JSON.stringify([...byWorker])).to.equal(2);
    a.child.kill('SIGTERM');
    b.child.kill('SIGTERM');
    expect(await a.exited).to.equal(0);
    expect(await b.exited).to.equal(0);
  });

  it('redelivers the job of a worker killed with SIGKILL mid-job (at-least-once)', async function () {
    const env = { ...redis.env, TASKLINE_PREFIX: prefix, TASKLINE_LOCK_DURATION_MS: '1500', TASKLINE_STALLED_INTERVAL_MS: '500' };
    const first = spawnWorker(env);
    await ready(first);
    const producer = client(redis.env, prefix);
    const id = await producer.enqueue('sleep', { ms: 1000 });
    await until(async () => (await producer.get(id))?.state === 'STARTED', 10_000, 'STARTED');
    const firstWorker = (await producer.get(id))?.worker;
    first.child.kill('SIGKILL');
    await first.exited;
    const second = spawnWorker(env);
    await ready(second);
    const record = await producer.waitFor(id, 20_000);
    expect(record.state).to.equal('SUCCESS');
    expect(record.worker).to.not.equal(firstWorker);
  });

  it('serves /readyz (200 while consuming) and /metrics with the job metrics', async function () {
    const worker = spawnWorker({ ...redis.env, TASKLINE_PREFIX: prefix });
    await ready(worker);
    const line = worker.output.join('').split('\n').find(l => l.includes('Serving /metrics'));
    const port = (JSON.parse(line ?? '{}') as { port?: number }).port;
    expect(port).to.be.a('number');
    const readyz = await fetch(`http://127.0.0.1:${port}/readyz`);
    const body = (await readyz.json()) as { ok: boolean; queues: Array<{ blockingConnection: string }> };
    expect(readyz.status, JSON.stringify(body)).to.equal(200);
    expect(body.queues[0]?.blockingConnection).to.equal('ready');
    const producer = client(redis.env, prefix);
    await producer.waitFor(await producer.enqueue('add', { a: 1, b: 1 }));
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(metrics).to.match(/taskline_jobs_total\{task="add",queue="default",outcome="success"\} 1/);
    expect(metrics).to.match(/taskline_worker_ready 1/);
    worker.child.kill('SIGTERM');
    expect(await worker.exited).to.equal(0);
  });

  it('refuses a tasks module that exports no tasks, with the fix in the message', async function () {
    const notTasks = fileURLToPath(new URL('../../worker/dist/errors.js', import.meta.url));
    const child = spawn(process.execPath, [BIN, 'start', '--tasks', notTasks], { env: { PATH: process.env['PATH'] ?? '', ...redis.env } });
    children.add(child);
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await new Promise<number | null>(resolve => child.once('exit', c => {
      children.delete(child);
      resolve(c);
    }));
    expect(code).to.equal(2);
    expect(err).to.include('exports no tasks');
    expect(err).to.include('defineTasks');
  });
});
