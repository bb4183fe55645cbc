import { expect } from 'chai';
import { Queue } from 'bullmq';
import { ConnectionError, ResultTimeoutError, createConnections, resolveConnectionOptions } from '@taskline/shared';
import { ResultBackend } from '@taskline/shared/job';
import { JobNotFoundError, PayloadTooLargeError, ValidationError } from '@taskline/producer';
import { createWorker } from '@taskline/worker';
import tasks from '../../worker/examples/tasks.js';
import { startRedis } from '../harness/index.js';
import { failure } from '../shared/helpers.js';
import { keysOf, useProducerFixture, type ProducerFixture } from './fixtures.js';

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise(resolve => setTimeout(resolve, 50));
  }
}

describe('producer library (TLS broker + TLS result backend)', function () {
  let fx: ProducerFixture;

  useProducerFixture(fixture => (fx = fixture));
  afterEach(async () => {
    await fx.closeProducers();
  });

  /** A raw BullMQ view of a queue, over the same TLS settings, closed by the caller. */
  async function rawQueue(name = 'default'): Promise<{ queue: Queue; close: () => Promise<void> }> {
    const c = createConnections({ options: resolveConnectionOptions({}, fx.env), role: 'cli' });
    const queue = new Queue(name, { connection: await c.broker.bullmqConnection(0), prefix: fx.prefix });
    return { queue, close: async () => { await queue.close(); await c.close(); } };
  }

  it('enqueues a job on the broker only; it reads as PENDING from there until a worker starts it', async () => {
    const producer = fx.producer();
    const { id, deduplicated } = await producer.enqueue('add', { a: 1, b: 2 });
    expect(deduplicated).to.equal(false);
    expect(id).to.match(/^[0-9a-f-]{36}$/);
    const record = await producer.getResult(id);
    // The task's own default decides the attempts (the caller set none): unknown until a worker starts it.
    expect(record).to.include({ id, task: 'add', queue: 'default', state: 'PENDING', attempt: 0, attempts: null });
    expect(await keysOf(fx.backend, fx.prefix), 'nothing is written to the result backend at enqueue').to.deep.equal([]);
    const brokerKeys = await keysOf(fx.broker, fx.prefix);
    expect(brokerKeys).to.include(`${fx.prefix}:default:${id}`);
    expect(await fx.broker.cli('SMEMBERS', `${fx.prefix}::queues`)).to.equal('default');
    const { queue, close } = await rawQueue();
    try {
      const job = await queue.getJob(id);
      expect(job?.name).to.equal('add');
      expect(job?.data).to.deep.equal({ a: 1, b: 2 });
      const stored = JSON.parse(await fx.broker.cli('HGET', `${fx.prefix}:default:${id}`, 'opts')) as Record<string, unknown>;
      // No attempts or backoff are stamped on a job whose caller set none (BullMQ stores 0 for "unset").
      expect(stored['attempts'] ?? 0).to.equal(0);
      expect(stored).to.not.have.property('backoff');
      expect(await job?.getState()).to.equal('waiting');
    } finally {
      await close();
    }
  });

  it('an idempotency key returns the first job (per task) and makes one BullMQ job, decided on the broker', async () => {
    const producer = fx.producer();
    const other = fx.producer();
    const first = await producer.enqueue('echo', { n: 1 }, { idempotencyKey: 'order-42' });
    const again = await other.enqueue('echo', { n: 2 }, { idempotencyKey: 'order-42' });
    const [third] = await producer.enqueueBulk([{ task: 'echo', data: { n: 3 }, options: { idempotencyKey: 'order-42' } }]);
    expect(first.deduplicated).to.equal(false);
    expect(again).to.deep.equal({ id: first.id, deduplicated: true });
    expect(third).to.deep.equal({ id: first.id, deduplicated: true });
    // Keys are scoped by task: the same key for another task is another job.
    const add = await producer.enqueue('add', { a: 1, b: 1 }, { idempotencyKey: 'order-42' });
    expect(add.deduplicated).to.equal(false);
    expect(add.id).to.not.equal(first.id);
    const counts = await producer.inspect.counts(['default']);
    expect(counts['default']?.waiting).to.equal(2);
    const { queue, close } = await rawQueue();
    try {
      expect((await queue.getJob(first.id))?.data).to.deep.equal({ n: 1 });
    } finally {
      await close();
    }
  });

  it('concurrent enqueues with one idempotency key make exactly one job, and every caller names it', async () => {
    const producers = [fx.producer(), fx.producer(), fx.producer()];
    const calls = Array.from({ length: 30 }, (_, i) => producers[i % 3]!.enqueue('echo', { i }, { idempotencyKey: 'race' }));
    const results = await Promise.all(calls);
    const ids = new Set(results.map(r => r.id));
    expect(ids.size).to.equal(1);
    expect(results.filter(r => !r.deduplicated)).to.have.length(1);
    expect((await producers[0]!.inspect.counts(['default']))['default']?.waiting).to.equal(1);
  });

  it('rejects non-JSON and oversized payloads with clear errors and writes nothing', async () => {
    const producer = fx.producer({ maxPayloadBytes: 1024 });
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic['self'] = cyclic;
    const cases: Array<[unknown, RegExp]> = [
      [{ cb: () => 1 }, /data\.cb is a function/],
      [{ big: 10n }, /data\.big is a BigInt/],
      [cyclic, /data\.self refers back to itself/],
      [undefined, /data is undefined/],
      [{ n: Number.NaN }, /data\.n is NaN/],
    ];
    for (const [data, message] of cases) {
      const { error } = await failure(() => producer.enqueue('echo', data));
      expect(error).to.be.instanceOf(ValidationError);
      expect(error.message).to.match(message);
    }
    const { error } = await failure(() => producer.enqueue('echo', { blob: 'x'.repeat(2000) }));
    expect(error).to.be.instanceOf(PayloadTooLargeError);
    expect(error.message).to.match(/is 2011 bytes as JSON, over the limit of 1024 bytes/);
    const bad = await failure(() => producer.enqueue('bad task!', {}));
    expect(bad.error.code).to.equal('INVALID_TASK');
    const badOption = await failure(() => producer.enqueue('echo', {}, { delay: -5 }));
    expect(badOption.error.message).to.match(/options\.delay must be a whole number/);
    expect(await keysOf(fx.broker, fx.prefix)).to.deep.equal([]);
    expect(await keysOf(fx.backend, fx.prefix)).to.deep.equal([]);
    const metrics = await producer.registry.getSingleMetricAsString('taskline_enqueue_errors_total');
    expect(metrics).to.match(/reason="too_large"} 1/);
    expect(metrics).to.match(/reason="invalid"} 7/);
  });

  it('delay, eta and priority land in BullMQ', async () => {
    const producer = fx.producer();
    const delayed = await producer.enqueue('echo', {}, { delay: 60_000 });
    const eta = await producer.enqueue('echo', {}, { eta: new Date(Date.now() + 120_000).toISOString() });
    const urgent = await producer.enqueue('echo', {}, { priority: 5, attempts: 7, backoff: { type: 'fixed', delay: 250 } });
    const { queue, close } = await rawQueue();
    try {
      const d = await queue.getJob(delayed.id);
      expect(await d?.getState()).to.equal('delayed');
      expect(d?.opts.delay).to.equal(60_000);
      const e = await queue.getJob(eta.id);
      expect(await e?.getState()).to.equal('delayed');
      expect(e?.opts.delay).to.be.within(118_000, 120_000);
      const u = await queue.getJob(urgent.id);
      expect(await u?.getState()).to.equal('prioritized');
      expect(u?.opts).to.include({ priority: 5, attempts: 7 });
      expect(u?.opts.backoff).to.deep.include({ type: 'fixed', delay: 250 });
    } finally {
      await close();
    }
  });

  it('bulk enqueue spreads over queues in one call each and keeps input order', async () => {
    const producer = fx.producer();
    const results = await producer.enqueueBulk([
      { task: 'add', data: { a: 1, b: 1 } },
      { task: 'add', data: { a: 2, b: 2 }, options: { queue: 'emails' } },
      { task: 'add', data: { a: 3, b: 3 } },
    ]);
    expect(results).to.have.length(3);
    expect((await producer.getResult(results[1]!.id))?.queue).to.equal('emails');
    expect(await producer.inspect.queues()).to.deep.equal(['default', 'emails']);
    const counts = await producer.inspect.counts();
    expect(counts['default']?.waiting).to.equal(2);
    expect(counts['emails']?.waiting).to.equal(1);
  });

  it('revoking a delayed job records REVOKED and removes the BullMQ job', async () => {
    const producer = fx.producer();
    const { id } = await producer.enqueue('sleep', { ms: 10 }, { delay: 60_000 });
    const record = await producer.revoke(id, 'changed my mind');
    expect(record).to.include({ id, state: 'REVOKED', reason: 'changed my mind', task: 'sleep' });
    expect((await producer.getResult(id))?.state).to.equal('REVOKED');
    const { queue, close } = await rawQueue();
    try {
      expect(await queue.getJob(id)).to.equal(undefined);
    } finally {
      await close();
    }
    expect((await producer.revoke(id)).state).to.equal('REVOKED');
    const unknown = await failure(() => producer.revoke('no-such-job'));
    expect(unknown.error).to.be.instanceOf(JobNotFoundError);
    expect(unknown.error.message).to.match(/No job with id "no-such-job"/);
  });

  it('waitForResult resolves when the record becomes SUCCESS and times out with ResultTimeoutError', async () => {
    const producer = fx.producer();
    const { id } = await producer.enqueue('add', { a: 2, b: 3 });
    const other = await producer.enqueue('add', { a: 0, b: 0 });
    const events: string[] = [];
    const waiting = producer.waitForResult(id, { timeoutMs: 10_000, onEvent: e => events.push(e.state) });
    // A worker's writes, done here directly through the result backend's state machine.
    const c = createConnections({ options: resolveConnectionOptions({}, fx.env), role: 'worker' });
    try {
      const backend = new ResultBackend({ service: c.backend, prefix: fx.prefix, expiresSeconds: 86_400 });
      const now = Date.now();
      const base = { task: 'add', queue: 'default', attempt: 1, attempts: 1, enqueuedAt: now, startedAt: now, finishedAt: null, updatedAt: now };
      setTimeout(() => {
        void (async () => {
          await backend.transition({ kind: 'write', id, delivery: 1, state: 'STARTED', base });
          await backend.transition({ kind: 'write', id, delivery: 1, state: 'SUCCESS', base: { ...base, finishedAt: now }, outcome: { result: 5 } });
        })();
      }, 300);
      const record = await waiting;
      expect(record).to.include({ state: 'SUCCESS', result: 5 });
      expect(events).to.deep.equal(['STARTED', 'SUCCESS']);
      await backend.close();
    } finally {
      await c.close();
    }
    const started = Date.now();
    const { error } = await failure(() => producer.waitForResult(other.id, { timeoutMs: 300 }));
    expect(error).to.be.instanceOf(ResultTimeoutError);
    expect(Date.now() - started).to.be.below(3000);
    expect((await failure(() => producer.waitForResult('nope', { timeoutMs: 100 }))).error).to.be.instanceOf(JobNotFoundError);
  });

  it('with a real worker: enqueue → SUCCESS read back; a failed job is listed, retried and removed; pause/resume', async function () {
    this.timeout(30_000);
    const producer = fx.producer();
    const worker = createWorker({ tasks, env: fx.env, prefix: fx.prefix, concurrency: 2 });
    try {
      await worker.start();
      const ok = await producer.enqueue('add', { a: 20, b: 22 });
      expect(await producer.waitForResult(ok.id, { timeoutMs: 10_000 })).to.include({ state: 'SUCCESS', result: 42 });
      const bad = await producer.enqueue('fail', { message: 'boom' }, { attempts: 1 });
      expect(await producer.waitForResult(bad.id, { timeoutMs: 10_000 })).to.include({ state: 'FAILURE' });
      await waitUntil(async () => (await producer.inspect.listFailed('default')).length === 1);
      const failed = await producer.inspect.listFailed('default');
      expect(failed[0]).to.include({ id: bad.id, task: 'fail', failedReason: 'boom' });
      await producer.inspect.pause('default');
      expect(await producer.inspect.isPaused('default')).to.equal(true);
      const [retried] = await producer.inspect.retryFailed('default', bad.id);
      expect(retried?.failedId).to.equal(bad.id);
      expect(retried?.id).to.be.a('string').and.not.equal(bad.id);
      expect((await producer.inspect.counts(['default']))['default']?.failed).to.equal(0);
      // A final state never changes: the failed job stays FAILURE; its re-run is a new job.
      expect(await producer.getResult(bad.id)).to.include({ state: 'FAILURE' });
      expect(await producer.getResult(retried!.id)).to.include({ state: 'PENDING', task: 'fail' });
      await producer.inspect.resume('default');
      expect(await producer.waitForResult(retried!.id, { timeoutMs: 10_000 })).to.include({ state: 'FAILURE', retryOf: bad.id });
      await waitUntil(async () => (await producer.inspect.counts(['default']))['default']?.failed === 1);
      expect(await producer.inspect.removeFailed('default', 'all')).to.equal(1);
      expect(await producer.inspect.listFailed('default')).to.deep.equal([]);
      const missing = await failure(() => producer.inspect.removeFailed('default', bad.id));
      expect(missing.error).to.be.instanceOf(JobNotFoundError);
    } finally {
      await worker.close();
    }
  });

  it('with a real worker: a time limit given at enqueue aborts the job', async function () {
    this.timeout(30_000);
    const producer = fx.producer();
    const worker = createWorker({ tasks, env: fx.env, prefix: fx.prefix, concurrency: 2 });
    try {
      await worker.start();
      const started = Date.now();
      const { id } = await producer.enqueue('sleep', { ms: 20_000 }, { timeoutMs: 300, attempts: 1 });
      const record = await producer.waitForResult(id, { timeoutMs: 10_000 });
      expect(record).to.include({ state: 'FAILURE' });
      expect(record.error?.type).to.equal('TimeLimitError');
      expect(Date.now() - started).to.be.below(8000);
    } finally {
      await worker.close();
    }
  });

  it('fails fast with a ConnectionError while the broker is down', async function () {
    this.timeout(30_000);
    const producer = fx.producer({ env: { ...fx.env, REDIS_PORT: String(fx.broker.port + 1) } as Record<string, string> });
    const started = Date.now();
    const { error } = await failure(() => producer.enqueue('echo', {}));
    expect(error).to.be.instanceOf(ConnectionError);
    expect(error.message).to.match(/broker/);
    expect(Date.now() - started).to.be.below(10_000);
  });

  it('enqueues while the result backend is down (the broker alone acknowledges a job); reads name the result backend', async function () {
    this.timeout(30_000);
    const backend = await startRedis({ tls: true, certs: fx.backend.certs! });
    const producer = fx.producer({ env: { ...fx.env, ...backend.env('RESULT_REDIS_') } });
    await producer.enqueue('echo', { first: true });
    await backend.stop();
    const { id } = await producer.enqueue('echo', { second: true });
    expect(await fx.broker.cli('EXISTS', `${fx.prefix}:default:${id}`)).to.equal('1');
    const { error } = await failure(() => producer.getResult(id));
    expect(error).to.be.instanceOf(ConnectionError);
    expect(error.message).to.match(/result backend/);
  });

  it('close() is idempotent and leaves no connection open (as the servers see it)', async () => {
    const producers = async (server: typeof fx.broker): Promise<number> =>
      (await server.cli('CLIENT', 'LIST')).split('\n').filter(l => l.includes('name=taskline:producer:')).length;
    const producer = fx.producer();
    await producer.enqueue('echo', {});
    await producer.waitForResult((await producer.enqueue('echo', {})).id, { timeoutMs: 200 }).catch(() => undefined);
    expect(await producers(fx.broker), 'the producer was connected').to.be.greaterThan(0);
    expect(await producers(fx.backend)).to.be.greaterThan(0);
    const first = producer.close();
    expect(producer.close()).to.equal(first);
    await first;
    expect(await producers(fx.broker)).to.equal(0);
    expect(await producers(fx.backend)).to.equal(0);
  });
});
