import { expect } from 'chai';
import { defineTasks, type TaskSet } from '@taskline/worker';
import { runningRedisCount } from '../harness/index.js';
import exampleTasks from '../../worker/examples/tasks.js';
import { client, closeAll, openCount, startPair, startWorker, uniquePrefix, until, type RedisPair } from './helpers.js';

/** Test-only tasks beside the examples: misbehaving handlers and a counter of runs. */
function testTasks(runs: string[]): TaskSet {
  const examples = Object.fromEntries([...exampleTasks.byName].map(([name, t]) => [name, { run: t.run, attempts: t.attempts, backoff: t.backoff, ...(t.timeoutMs ? { timeoutMs: t.timeoutMs } : {}) }]));
  return defineTasks({
    ...examples,
    record: { run: (data: { tag: string }) => void runs.push(data.tag) },
    'throw-string': { run: () => Promise.reject('plain string, not an Error') },
    hang: { run: () => new Promise(() => undefined), timeoutMs: 300 },
    'limited-sleep': { run: exampleTasks.byName.get('sleep')!.run, timeoutMs: 300 },
    bigint: { run: () => 10n },
    limited: { run: () => Date.now(), rateLimit: { max: 2, durationMs: 1000 } },
  });
}

describe('worker: jobs end to end over TLS (separate broker and result backend)', function () {
  let redis: RedisPair;
  let prefix: string;
  let runs: string[];

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
    runs = [];
  });
  afterEach(async function () {
    const leftOpen = await closeAll();
    expect(leftOpen, 'Redis connections left open').to.equal(0);
    expect(openCount()).to.equal(0);
  });

  const setup = async (extra: Partial<Parameters<typeof startWorker>[0]> = {}) => {
    const worker = await startWorker({ tasks: testTasks(runs), env: redis.env, prefix, ...extra });
    return { worker, producer: client(redis.env, prefix) };
  };

  it('runs a job to SUCCESS and stores the result on the result backend, not the broker', async function () {
    const { producer } = await setup();
    const id = await producer.enqueue('add', { a: 2, b: 3 });
    const record = await producer.waitFor(id);
    expect(record).to.include({ id, task: 'add', queue: 'default', state: 'SUCCESS', result: 5, attempt: 1 });
    expect(record.startedAt).to.be.a('string');
    expect(record.finishedAt).to.be.a('string');
    expect(record.worker).to.match(/:\d+$/);
    const key = `${prefix}:result:{${id}}`;
    expect(await redis.backend.cli('EXISTS', key)).to.equal('1');
    expect(await redis.broker.cli('EXISTS', key)).to.equal('0');
    const ttl = Number(await redis.backend.cli('TTL', key));
    expect(ttl).to.be.within(86_000, 86_400);
  });

  it('stores FAILURE with the error type, message and stack', async function () {
    const { producer } = await setup();
    const id = await producer.enqueue('fail', { message: 'card declined' });
    const record = await producer.waitFor(id);
    expect(record.state).to.equal('FAILURE');
    expect(record.error?.type).to.equal('Error');
    expect(record.error?.message).to.equal('card declined');
    expect(record.error?.stack).to.include('card declined');
  });

  it('passes a flaky job through RETRY to SUCCESS, applying the jittered backoff between attempts', async function () {
    const { producer } = await setup();
    const id = await producer.enqueue('flaky', { failTimes: 2 });
    const seen: string[] = [];
    await until(async () => {
      const r = await producer.get(id);
      if (r && seen.at(-1) !== `${r.state}:${r.attempt}`) seen.push(`${r.state}:${r.attempt}`);
      return r?.state === 'SUCCESS';
    }, 15_000, 'flaky SUCCESS');
    const record = await producer.waitFor(id);
    expect(record.result).to.deep.equal({ attempt: 3 });
    expect(record.attempts).to.equal(5);
    expect(seen).to.include('RETRY:1');
    const queue = await producer.queue();
    const job = await queue.getJob(id);
    // Backoff 200 ms then 400 ms, each with equal jitter (at least half): ≥ 300 ms in all.
    const elapsed = (job?.finishedOn ?? 0) - (job?.processedOn ?? 0);
    const total = Date.parse(record.finishedAt ?? '') - Date.parse(record.enqueuedAt ?? '');
    expect(total, `enqueue→success took ${total} ms (last attempt ${elapsed} ms)`).to.be.at.least(300);
  });

  it('aborts a sleep at its time limit and fails it', async function () {
    const { producer } = await setup();
    const started = Date.now();
    const id = await producer.enqueue('limited-sleep', { ms: 10_000 });
    const record = await producer.waitFor(id);
    expect(record.state).to.equal('FAILURE');
    expect(record.error?.type).to.equal('TimeLimitError');
    expect(record.error?.message).to.include('300 ms');
    expect(Date.now() - started).to.be.below(5000);
  });

  it('fails handlers that throw a non-Error or never settle, and keeps processing other jobs', async function () {
    const { producer } = await setup();
    const a = await producer.enqueue('throw-string', {});
    const b = await producer.enqueue('hang', {});
    const c = await producer.enqueue('bigint', {});
    const d = await producer.enqueue('add', { a: 1, b: 1 });
    const [ra, rb, rc, rd] = await Promise.all([a, b, c, d].map(id => producer.waitFor(id)));
    expect(ra?.state).to.equal('FAILURE');
    expect(ra?.error?.type).to.equal('NonError');
    expect(ra?.error?.message).to.match(/a string of \d+ characters/).and.not.include('plain string');
    expect(rb?.state).to.equal('FAILURE');
    expect(rb?.error?.type).to.equal('TimeLimitError');
    expect(rc?.state).to.equal('FAILURE');
    expect(rc?.error?.type).to.equal('ResultNotSerializableError');
    expect(rd?.state).to.equal('SUCCESS');
    const after = await producer.enqueue('add', { a: 20, b: 22 });
    expect((await producer.waitFor(after)).result).to.equal(42);
  });

  it('never runs a delayed job revoked before it is due: it stays REVOKED and leaves the broker', async function () {
    const { producer } = await setup();
    const id = await producer.enqueue('record', { tag: 'revoked-delayed' }, { delay: 400 });
    expect(await producer.producer.revoke(id, 'test')).to.include({ id, state: 'REVOKED', reason: 'test', task: 'record' });
    const marker = await producer.enqueue('record', { tag: 'marker' }, { delay: 800 });
    await producer.waitFor(marker);
    expect(runs).to.deep.equal(['marker']);
    expect(await (await producer.queue()).getJobState(id)).to.equal('unknown');
    expect((await producer.get(id))?.state).to.equal('REVOKED');
  });

  it('aborts a running job when it is revoked: REVOKED, not retried, failed on the broker', async function () {
    const { producer } = await setup();
    const id = await producer.enqueue('sleep', { ms: 20_000 }, { attempts: 3 });
    await until(async () => (await producer.get(id))?.state === 'STARTED', 5000, 'STARTED');
    const revokedAt = Date.now();
    const waiting = producer.waitFor(id);
    expect((await producer.producer.revoke(id, 'user asked')).state).to.equal('REVOKED');
    const queue = await producer.queue();
    await until(async () => (await queue.getJobState(id)) === 'failed', 5000, 'job failed in BullMQ');
    expect(Date.now() - revokedAt).to.be.below(3000);
    expect(await waiting).to.include({ state: 'REVOKED', reason: 'user asked' });
    const record = await producer.get(id);
    expect(record?.state).to.equal('REVOKED');
    expect((await queue.getJob(id))?.attemptsMade).to.equal(1);
  });

  it('applies a per-task rate limit shared through the broker', async function () {
    const { producer } = await setup();
    const ids = await Promise.all([1, 2, 3, 4].map(() => producer.enqueue('limited', {})));
    const records = await Promise.all(ids.map(id => producer.waitFor(id)));
    const times = records.map(r => r.result as number).sort((x, y) => x - y);
    // Two per 1 s window: the 3rd and 4th start in a later window than the 1st.
    expect(Math.floor(times[2]! / 1000)).to.be.greaterThan(Math.floor(times[0]! / 1000));
    expect(records.every(r => r.state === 'SUCCESS')).to.equal(true);
  });

  it('reports ready, exposes the metrics contract, and drains on close', async function () {
    const { worker, producer } = await setup();
    const ready = await worker.readiness();
    expect(ready.ok, JSON.stringify(ready)).to.equal(true);
    const id = await producer.enqueue('add', { a: 1, b: 2 });
    await producer.waitFor(id);
    const text = await worker.registry.metrics();
    expect(text).to.match(/taskline_jobs_total\{task="add",queue="default",outcome="success"\} 1/);
    expect(text).to.include('taskline_job_duration_seconds_bucket');
    expect(text).to.include('taskline_job_latency_seconds_bucket');
    expect(text).to.match(/taskline_queue_jobs\{queue="default",state="waiting"\} 0/);
    expect(text).to.match(/taskline_worker_ready 1/);
    const slow = await producer.enqueue('sleep', { ms: 500 });
    await until(async () => worker.activeJobs === 1, 5000, 'sleep running');
    expect(await worker.close()).to.equal('drained');
    expect(worker.state).to.equal('closed');
    expect((await producer.get(slow))?.state).to.equal('SUCCESS');
    expect((await worker.readiness()).ok).to.equal(false);
  });

  it('rejects bad task definitions with a message naming the task and the fix', function () {
    expect(() => defineTasks({ 'bad name!': { run: () => 1 } })).to.throw(/Task name "bad name!" is invalid/);
    expect(() => defineTasks({ ok: { run: () => 1, attempts: 0 } })).to.throw(/Task "ok": attempts must be a whole number from 1/);
    expect(() => defineTasks({ ok: { run: () => 1, retries: 3 } as never })).to.throw(/retries is not a task option/);
  });
});
