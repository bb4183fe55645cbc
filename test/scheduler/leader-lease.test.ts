import { expect } from 'chai';
import type { Redis } from 'ioredis';
import { LeaderLease } from '@taskline/scheduler/internal';

/**
 * A stand-in for the few Redis commands the lease's scripts use (GET, SET NX PX, INCR, PEXPIRE,
 * PTTL, DEL, HSET, HDEL), on one in-memory keyspace with real expiry. Each script is recognised
 * by the commands it calls; the lease's own logic (fences, its monotonic clock) runs for real.
 */
class FakeRedis {
  readonly strings = new Map<string, { value: string; expiresAt: number | null }>();
  readonly hashes = new Map<string, Map<string, string>>();
  calls = 0;

  #get(key: string): string | null {
    const entry = this.strings.get(key);
    if (!entry) return null;
    if (entry.expiresAt !== null && entry.expiresAt <= performance.now()) {
      this.strings.delete(key);
      return null;
    }
    return entry.value;
  }

  #pttl(key: string): number {
    if (this.#get(key) === null) return -2;
    const { expiresAt } = this.strings.get(key) ?? { expiresAt: null };
    return expiresAt === null ? -1 : Math.round(expiresAt - performance.now());
  }

  /** Expires a key now, as if its TTL ran out while the leader was frozen. */
  expire(key: string): void {
    this.strings.delete(key);
  }

  async eval(script: string, keyCount: number, ...rest: string[]): Promise<number> {
    this.calls += 1;
    const keys = rest.slice(0, keyCount);
    const args = rest.slice(keyCount);
    const [lease = '', fence = '', hash = ''] = keys;
    const ours = (token: string, fenceNumber: string): boolean => this.#get(lease) === token && this.#get(fence) === fenceNumber;
    if (script.includes('HSET')) {
      const [token = '', fenceNumber = '', minRemaining = '0', op, field = '', value = ''] = args;
      if (!ours(token, fenceNumber) || this.#pttl(lease) < Number(minRemaining)) return 0;
      const map = this.hashes.get(hash) ?? new Map<string, string>();
      this.hashes.set(hash, map);
      if (op === 'set') map.set(field, value);
      else map.delete(field);
      return 1;
    }
    if (script.includes("'NX'")) {
      const [token = '', ttl = '0'] = args;
      if (this.#get(lease) !== null) return 0;
      this.strings.set(lease, { value: token, expiresAt: performance.now() + Number(ttl) });
      const next = Number(this.#get(fence) ?? '0') + 1;
      this.strings.set(fence, { value: String(next), expiresAt: null });
      return next;
    }
    if (script.includes('PEXPIRE')) {
      const [token = '', ttl = '0', fenceNumber = ''] = args;
      if (!ours(token, fenceNumber)) return 0;
      this.strings.set(lease, { value: token, expiresAt: performance.now() + Number(ttl) });
      return 1;
    }
    if (script.includes('PTTL')) {
      const [token = '', fenceNumber = '', minRemaining = '0'] = args;
      return ours(token, fenceNumber) && this.#pttl(lease) >= Number(minRemaining) ? 1 : 0;
    }
    if (script.includes("'DEL'")) {
      const [token = ''] = args;
      if (this.#get(lease) !== token) return 0;
      this.strings.delete(lease);
      return 1;
    }
    throw new Error(`FakeRedis does not know this script:\n${script}`);
  }

  /** Scripts go out as EVALSHA first; this keyspace has none loaded, so the source follows by EVAL. */
  async call(command: string, ...args: Array<string | number>): Promise<unknown> {
    if (command === 'evalsha') throw new Error('NOSCRIPT No matching script. Please use EVAL.');
    if (command === 'eval') {
      const [script = '', keyCount = 0, ...rest] = args;
      return this.eval(String(script), Number(keyCount), ...rest.map(String));
    }
    throw new Error(`FakeRedis does not know the command ${command}`);
  }

  async pttl(key: string): Promise<number> {
    this.calls += 1;
    return this.#pttl(key);
  }
}

const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));

describe('beat leader lease (no Redis: a fake keyspace)', function () {
  const TTL = 600;
  const MIN_REMAINING = 200;
  let redis: FakeRedis;
  const replica = (): LeaderLease => new LeaderLease({ client: redis as unknown as Redis, prefix: 'unit', ttlMs: TTL, minRemainingMs: MIN_REMAINING });

  beforeEach(function () {
    redis = new FakeRedis();
  });

  it('one replica leads; another cannot acquire while the lease lives, and learns how long is left', async function () {
    const a = replica();
    const b = replica();
    expect(await a.tryAcquire()).to.equal(1);
    expect(a.held).to.equal(true);
    expect(await b.tryAcquire()).to.equal(null);
    expect(b.held).to.equal(false);
    expect(await b.remainingMs()).to.be.within(1, TTL);
  });

  it('renewing keeps the lead past the TTL; a leader that stops renewing is replaced, with a higher fence', async function () {
    const a = replica();
    const b = replica();
    await a.tryAcquire();
    for (let i = 0; i < 4; i++) {
      await sleep(TTL / 4);
      expect(await a.renew()).to.equal(true);
    }
    expect(await b.tryAcquire(), 'renewed past its first TTL').to.equal(null);
    await sleep(TTL + 20);
    expect(await b.tryAcquire()).to.equal(2);
    // The old leader's renewal now fails, and it knows it no longer leads.
    expect(await a.renew()).to.equal(false);
    expect(a.fence).to.equal(null);
  });

  it('a leader frozen past its lease stops believing it leads before sending anything', async function () {
    const a = replica();
    await a.tryAcquire();
    await sleep(TTL - MIN_REMAINING + 20);
    expect(a.held, 'by its own clock the lease is too close to its end').to.equal(false);
    const before = redis.calls;
    expect(await a.renew()).to.equal(false);
    expect(await a.fencedHashWrite('unit:owned', 'set', 'f', 'v')).to.equal(false);
    expect(redis.calls, 'nothing was sent on a lease it no longer trusts').to.equal(before);
  });

  it('fenced writes land only for the current leader: an older fence is refused even if it still thinks it leads', async function () {
    const a = replica();
    const b = replica();
    await a.tryAcquire();
    expect(await a.fencedHashWrite('unit:owned', 'set', 'x', '1')).to.equal(true);
    // The lease vanishes under the leader (e.g. it expired during a pause Redis saw, not it).
    redis.expire(a.leaseKey);
    expect(await b.tryAcquire()).to.equal(2);
    expect(a.held, 'a has not noticed yet').to.equal(true);
    expect(await a.fencedHashWrite('unit:owned', 'set', 'x', 'stale')).to.equal(false);
    expect(a.fence, 'the refusal makes it step down').to.equal(null);
    expect(await b.fencedHashWrite('unit:owned', 'del', 'x')).to.equal(true);
    expect(redis.hashes.get('unit:owned')?.has('x')).to.equal(false);
  });

  it('check() asks Redis whether enough lease is left for a write', async function () {
    const a = replica();
    await a.tryAcquire();
    expect(await a.check()).to.equal(true);
    redis.expire(a.leaseKey);
    expect(await a.check()).to.equal(false);
    expect(a.fence).to.equal(null);
  });

  it('release hands over at once; it deletes only its own lease', async function () {
    const a = replica();
    const b = replica();
    await a.tryAcquire();
    await b.release(); // not the holder: nothing happens
    expect(await b.tryAcquire()).to.equal(null);
    await a.release();
    expect(a.fence).to.equal(null);
    expect(await b.tryAcquire()).to.equal(2);
    await a.release(); // no longer the holder: b keeps it
    expect(await b.check()).to.equal(true);
  });

  it('drop() forgets the lead without touching Redis', async function () {
    const a = replica();
    await a.tryAcquire();
    const before = redis.calls;
    a.drop();
    expect(a.held).to.equal(false);
    expect(redis.calls).to.equal(before);
    expect(await replica().tryAcquire(), 'the lease itself still lives until its TTL').to.equal(null);
  });
});
