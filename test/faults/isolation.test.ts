// The long version of the isolation check: a worker's RSS stays flat while 100 isolated busy
// loops are killed at their hard limit (the short version, 10 kills, runs in pnpm test).
import { expect } from 'chai';
import { runningRedisCount } from '../harness/index.js';
import { closeAll, isolatedKillRss, startPair, uniquePrefix, type RedisPair } from '../worker/helpers.js';

describe('isolated handlers killed at their hard limit (long)', function () {
  this.timeout(900_000);
  let redis: RedisPair;
  before(async () => {
    redis = await startPair();
  });
  after(async () => {
    expect(await closeAll()).to.equal(0);
    await redis.broker.stop();
    await redis.backend.stop();
    expect(runningRedisCount()).to.equal(0);
  });

  it('100 kills: every job FAILURE TimeLimitError, the worker RSS flat', async () => {
    const { before, after, records } = await isolatedKillRss(redis, uniquePrefix(), { warmUp: 20, jobs: 100 });
    expect(records.filter(r => r.state === 'FAILURE' && r.error?.type === 'TimeLimitError')).to.have.length(100);
    expect(after - before, `RSS ${before} → ${after} MB`).to.be.below(40);
  });
});
