// The job record's state machine, against a real TLS Redis: every rule the transition and revoke
// scripts promise, tried the way racing workers and producers would break it.
import { randomBytes } from 'node:crypto';
import { expect } from 'chai';
import { ResultWriteError, createConnections, resolveConnectionOptions, type TasklineConnections } from '@taskline/shared';
import { ResultBackend, type RecordBase, type TransitionOp } from '@taskline/shared/job';
import { runningRedisCount, startRedis, type RunningRedis } from '../harness/index.js';
import { envFor, failure } from './helpers.js';

describe('the job record state machine (result backend over TLS)', function () {
  let redis: RunningRedis;
  let connections: TasklineConnections;
  let backend: ResultBackend;

  before(async function () {
    redis = await startRedis({ tls: true });
  });
  after(async function () {
    await redis.stop();
    expect(runningRedisCount()).to.equal(0);
  });
  beforeEach(async function () {
    connections = createConnections({ options: resolveConnectionOptions({ healthCheckIntervalMs: 0 }, envFor(redis)), role: 'worker' });
    await connections.connect();
    backend = new ResultBackend({ service: connections.backend, prefix: `sm${randomBytes(3).toString('hex')}`, expiresSeconds: 86_400, writeDeadlineMs: 1500 });
  });
  afterEach(async function () {
    await backend.close();
    await connections.close();
    expect(connections.backend.openConnections).to.equal(0);
  });

  const base = (over: Partial<RecordBase> = {}): RecordBase => {
    const now = Date.now();
    return { task: 'echo', queue: 'default', attempt: 1, attempts: 3, enqueuedAt: now, startedAt: now, finishedAt: null, updatedAt: now, ...over };
  };
  const op = (id: string, delivery: number, state: TransitionOp['state'], over: Partial<TransitionOp> = {}): TransitionOp => ({
    kind: 'write',
    id,
    delivery,
    state,
    base: base(),
    ...over,
  });
  const id = (): string => randomBytes(8).toString('hex');

  it('a final state is never overwritten, by any later delivery or state', async function () {
    const job = id();
    expect(await backend.transition(op(job, 1, 'STARTED'))).to.equal('OK');
    expect(await backend.transition(op(job, 1, 'SUCCESS', { outcome: { result: 42 } }))).to.equal('OK');
    for (const state of ['STARTED', 'RETRY', 'FAILURE', 'SUCCESS'] as const) {
      expect(await backend.transition(op(job, 2, state, { outcome: { result: 'other' } })), state).to.equal('SUCCESS');
    }
    expect(await backend.transition({ ...op(job, 0, 'FAILURE'), kind: 'settle' })).to.equal('SUCCESS');
    expect(await backend.revoke(job, { reason: 'late', task: 'echo', queue: 'default' })).to.equal('SUCCESS');
    expect(await backend.get(job)).to.include({ state: 'SUCCESS', result: 42, delivery: 1 });
  });

  it('an older delivery cannot overwrite a newer one; the newer one can finish', async function () {
    const job = id();
    expect(await backend.transition(op(job, 1, 'STARTED'))).to.equal('OK');
    expect(await backend.transition(op(job, 2, 'STARTED'))).to.equal('REDELIVERED');
    expect(await backend.transition(op(job, 1, 'SUCCESS', { outcome: { result: 'stale' } }))).to.equal('STALE');
    expect(await backend.transition(op(job, 1, 'STARTED'))).to.equal('STALE');
    expect(await backend.transition(op(job, 2, 'SUCCESS', { outcome: { result: 'fresh' } }))).to.equal('OK');
    expect(await backend.get(job)).to.include({ state: 'SUCCESS', result: 'fresh', delivery: 2, redelivered: true });
  });

  it('a revoke wins over any outcome not yet stored, and says so only when it did', async function () {
    const running = id();
    expect(await backend.transition(op(running, 1, 'STARTED'))).to.equal('OK');
    expect(await backend.revoke(running, { reason: 'user asked', task: 'echo', queue: 'default' })).to.equal('REVOKED');
    expect(await backend.get(running)).to.include({ state: 'REVOKED', reason: 'user asked' });
    expect(await backend.transition(op(running, 1, 'SUCCESS', { outcome: { result: 1 } }))).to.equal('REVOKED');
    const stored = await backend.get(running);
    expect(stored).to.include({ state: 'REVOKED', reason: 'user asked' });
    expect(stored).to.not.have.property('result');
    // Revoked before any worker saw it: the marker alone makes it REVOKED, and a start meets it.
    const waiting = id();
    expect(await backend.revoke(waiting, { reason: 'r', task: 'echo', queue: 'q' })).to.equal('REVOKED');
    expect(await backend.get(waiting)).to.include({ state: 'REVOKED', task: 'echo', queue: 'q' });
    expect(await backend.transition(op(waiting, 1, 'STARTED'))).to.equal('REVOKED');
    expect(await backend.revokedIds()).to.include.members([running, waiting]);
  });

  it('revoke racing completion: every pair ends consistent (REVOKED answer ⇔ no SUCCESS stored)', async function () {
    this.timeout(30_000);
    const jobs = Array.from({ length: 300 }, id);
    await Promise.all(jobs.map(job => backend.transition(op(job, 1, 'STARTED'))));
    const answers = await Promise.all(
      jobs.map(async (job, i) => {
        const finish = () => backend.transition(op(job, 1, 'SUCCESS', { outcome: { result: i } }));
        const revoke = () => backend.revoke(job, { reason: 'race', task: 'echo', queue: 'default' });
        const [a, b] = i % 2 ? await Promise.all([finish(), revoke()]) : await Promise.all([revoke(), finish()]).then(([r, f]) => [f, r]);
        return { job, finish: a, revoke: b };
      }),
    );
    const records = await backend.getMany(jobs);
    let revoked = 0;
    for (const { job, finish, revoke } of answers) {
      const record = records.get(job);
      if (revoke === 'REVOKED') {
        revoked += 1;
        expect(finish, job).to.equal('REVOKED');
        expect(record?.state, job).to.equal('REVOKED');
        expect(record, job).to.not.have.property('result');
      } else {
        expect(revoke, job).to.equal('SUCCESS');
        expect(finish, job).to.equal('OK');
        expect(record?.state, job).to.equal('SUCCESS');
      }
    }
    expect(revoked, 'both orders happened').to.be.within(1, jobs.length - 1);
  });

  it('settle makes a job the broker failed on its own FAILURE, whatever delivery wrote last', async function () {
    const job = id();
    expect(await backend.transition(op(job, 3, 'STARTED'))).to.equal('OK');
    const error = { type: 'WorkerLostError', message: 'stalled', stack: null };
    expect(await backend.transition({ ...op(job, 0, 'FAILURE', { outcome: { error } }), kind: 'settle' })).to.equal('OK');
    expect(await backend.get(job)).to.deep.include({ state: 'FAILURE', error, delivery: 3 });
    const never = id();
    expect(await backend.transition({ ...op(never, 0, 'FAILURE', { outcome: { error } }), kind: 'settle' })).to.equal('OK');
    expect(await backend.get(never)).to.include({ state: 'FAILURE' });
  });

  it('a write the state table forbids (to PENDING) is REFUSED and stores nothing; the batch around it is applied', async function () {
    const [bad, good] = [id(), id()];
    const answers = await Promise.all([backend.transition(op(bad, 1, 'PENDING' as never)), backend.transition(op(good, 1, 'STARTED'))]);
    expect(answers).to.deep.equal(['REFUSED', 'OK']);
    expect(await backend.get(bad)).to.equal(null);
    expect(await backend.get(good)).to.include({ state: 'STARTED' });
  });

  it('progress is stored only for the delivery that holds the job, and published', async function () {
    const job = id();
    expect(await backend.transition(op(job, 1, 'STARTED', { kind: 'progress', progress: 10 }))).to.equal('SKIP');
    expect(await backend.transition(op(job, 1, 'STARTED'))).to.equal('OK');
    const events: unknown[] = [];
    const waiting = backend.waitFor(job, { timeoutMs: 5000, onEvent: e => events.push(e) });
    await new Promise(resolve => setTimeout(resolve, 200));
    expect(await backend.transition(op(job, 1, 'STARTED', { kind: 'progress', progress: { done: 5 } }))).to.equal('OK');
    expect(await backend.transition(op(job, 2, 'STARTED', { kind: 'progress', progress: 99 }))).to.equal('SKIP');
    expect((await backend.get(job))?.progress).to.deep.equal({ done: 5 });
    expect(await backend.transition(op(job, 1, 'SUCCESS', { outcome: { result: 'ok' }, progress: { done: 10 } }))).to.equal('OK');
    expect(await waiting).to.deep.include({ state: 'SUCCESS', result: 'ok', progress: { done: 10 } });
    expect(events).to.deep.equal([{ state: 'STARTED', progress: { done: 5 } }, { state: 'SUCCESS' }]);
  });

  it('every record has a TTL; a revoke marker and the revoke index expire too', async function () {
    const job = id();
    await backend.transition(op(job, 1, 'STARTED'));
    await backend.revoke(job, { reason: 'r', task: 'echo', queue: 'default' });
    for (const key of [backend.keys.record(job), backend.keys.marker(job)]) {
      expect(Number(await redis.cli('TTL', key)), key).to.be.within(86_000, 86_400);
    }
    const score = Number(await redis.cli('ZSCORE', backend.keys.revokedIndex, job));
    expect(score - Date.now()).to.be.within(86_000_000, 86_400_000);
  });

  it('an out-of-memory backend refuses a whole batch, never half of it; the write fails with REDIS_OOM after its deadline', async function () {
    this.timeout(30_000);
    const jobs = Array.from({ length: 20 }, id);
    await redis.cli('CONFIG', 'SET', 'maxmemory', '1');
    try {
      const results = await Promise.all(jobs.map(job => failure(() => backend.transition(op(job, 1, 'SUCCESS', { outcome: { result: 1 } })))));
      for (const { error } of results) {
        expect(error).to.be.instanceOf(ResultWriteError);
        expect((error.cause as { code?: string }).code).to.equal('REDIS_OOM');
      }
    } finally {
      await redis.cli('CONFIG', 'SET', 'maxmemory', '0');
    }
    const records = await backend.getMany(jobs);
    expect([...records.values()].every(r => r === null)).to.equal(true);
  });
});
