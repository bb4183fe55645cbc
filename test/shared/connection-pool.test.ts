import { expect } from 'chai';
import { ClosedError, PoolExhaustedError, PoolQueueFullError, createMetricsRegistry } from '@taskline/shared';
import { ConnectionMetrics } from '@taskline/shared/process';
import { ConnectionSlots } from '@taskline/shared/connection';

function slots(limits: Partial<{ max: number; acquireTimeoutMs: number; maxWaiting: number }> = {}) {
  const registry = createMetricsRegistry({ defaultMetrics: false });
  const pool = new ConnectionSlots('broker', { max: 2, acquireTimeoutMs: 1000, maxWaiting: 10, ...limits }, new ConnectionMetrics(registry));
  const metric = async (line: RegExp): Promise<number> => {
    const match = line.exec(await registry.metrics());
    return match ? Number(match[1]) : Number.NaN;
  };
  return { pool, metric };
}

/** The order in which pending takes resolve or reject. */
function watch(take: Promise<void>, name: string, log: string[]): Promise<void> {
  return take.then(
    () => void log.push(`${name}:ok`),
    (err: Error) => void log.push(`${name}:${err.name}`),
  );
}

const tick = (): Promise<void> => new Promise(resolve => setImmediate(resolve));

describe('connection pool slots (no Redis)', function () {
  it('hands out at most max slots; a freed slot can be taken again', function () {
    const { pool } = slots();
    expect(pool.tryTake()).to.equal(true);
    expect(pool.tryTake()).to.equal(true);
    expect(pool.tryTake()).to.equal(false);
    expect(pool.used).to.equal(2);
    pool.give();
    expect(pool.used).to.equal(1);
    expect(pool.tryTake()).to.equal(true);
  });

  it('waiters are served first in, first out, the slot passing straight from giver to waiter', async function () {
    const { pool } = slots();
    pool.tryTake();
    pool.tryTake();
    const log: string[] = [];
    const a = watch(pool.take(), 'a', log);
    const b = watch(pool.take(), 'b', log);
    expect(pool.waiting).to.equal(2);
    // Nobody jumps the line: a free-looking pool still says no while others wait.
    pool.give();
    expect(pool.tryTake()).to.equal(false);
    await a;
    expect(log).to.deep.equal(['a:ok']);
    expect(pool.used).to.equal(2);
    pool.give();
    await b;
    expect(log).to.deep.equal(['a:ok', 'b:ok']);
    expect(pool.waiting).to.equal(0);
  });

  it('a waiter gives up after the acquire timeout with PoolExhaustedError, counted', async function () {
    const { pool, metric } = slots({ max: 1, acquireTimeoutMs: 30 });
    pool.tryTake();
    const started = performance.now();
    const err = await pool.take().catch((e: unknown) => e);
    expect(err).to.be.instanceOf(PoolExhaustedError);
    expect((err as PoolExhaustedError).code).to.equal('POOL_EXHAUSTED');
    expect(performance.now() - started).to.be.within(25, 500);
    expect(pool.waiting).to.equal(0);
    expect(await metric(/^taskline_redis_pool_exhausted_total\{service="broker"\} (\d+)/m)).to.equal(1);
  });

  it('refuses to queue more waiters than maxWaiting (PoolQueueFullError)', async function () {
    const { pool } = slots({ max: 1, maxWaiting: 1 });
    pool.tryTake();
    const log: string[] = [];
    const first = watch(pool.take(), 'first', log);
    const err = await pool.take().catch((e: unknown) => e);
    expect(err).to.be.instanceOf(PoolQueueFullError);
    pool.give();
    await first;
    expect(log).to.deep.equal(['first:ok']);
  });

  it('close() releases every waiter with ClosedError at once, and later takes fail', async function () {
    const { pool, metric } = slots({ max: 1, acquireTimeoutMs: 60_000 });
    pool.tryTake();
    const log: string[] = [];
    const waits = [watch(pool.take(), 'a', log), watch(pool.take(), 'b', log)];
    expect(await metric(/^taskline_redis_pool_waiting\{service="broker"\} (\d+)/m)).to.equal(2);
    pool.close();
    await Promise.all(waits);
    expect(log).to.deep.equal(['a:ClosedError', 'b:ClosedError']);
    expect(await metric(/^taskline_redis_pool_waiting\{service="broker"\} (\d+)/m)).to.equal(0);
    expect(() => pool.tryTake()).to.throw(ClosedError);
    const late = await pool.take().catch((e: unknown) => e);
    expect(late).to.be.instanceOf(ClosedError);
    // Slots still held can be given back after close without error.
    pool.give();
    expect(pool.used).to.equal(0);
  });

  it('reports in-use, idle and max in the metrics', async function () {
    const { pool, metric } = slots({ max: 3 });
    pool.tryTake();
    pool.tryTake();
    pool.setIdle(1);
    await tick();
    expect(await metric(/^taskline_redis_pool_connections\{service="broker",state="in_use"\} (\d+)/m)).to.equal(1);
    expect(await metric(/^taskline_redis_pool_connections\{service="broker",state="idle"\} (\d+)/m)).to.equal(1);
    expect(await metric(/^taskline_redis_pool_max\{service="broker"\} (\d+)/m)).to.equal(3);
  });
});
