import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { evalScript } from '@taskline/shared/connection';
import { LEASE_ACQUIRE, LEASE_CHECK, LEASE_FENCED_HASH_WRITE, LEASE_RELEASE, LEASE_RENEW } from './lease-scripts.js';

/**
 * The beat's leader lease: one key per prefix, `<prefix>::beat:lease`, holding the leader's random
 * token, set with NX and a TTL and renewed by compare-and-pexpire. A fencing number
 * (`<prefix>::beat:fence`, INCR at every acquisition) orders leaders: a write fenced with an older
 * number is refused even if its lease check passed.
 *
 * Keys and their owner (the beat): `::beat:lease` expires by itself (PX); `::beat:fence` is a single
 * integer kept for the life of the prefix (it must never go back, so it has no TTL). The Lua is in
 * lease-scripts.ts; the script loader finds it through `@taskline/scheduler/scripts`. The double
 * colon keeps them apart from every BullMQ queue key (`<prefix>:<queue>:…`, queue names are never
 * empty), so the Redis ACL can give them to the scheduler user alone (ops/acl/generate-acl.sh).
 */

/** The beat's keys on the broker: `<prefix>::beat:<name>` (lease, fence, schedules). */
export function beatKey(prefix: string, name: 'lease' | 'fence' | 'schedules'): string {
  return `${prefix}::beat:${name}`;
}

export interface LeaderLeaseOptions {
  client: Redis;
  prefix: string;
  ttlMs: number;
  /** A write needs at least this much lease left. */
  minRemainingMs: number;
}

/** Holds (or tries to hold) the lease; knows nothing about timers, the scheduler drives it. */
export class LeaderLease {
  readonly token = randomBytes(16).toString('hex');
  readonly leaseKey: string;
  readonly fenceKey: string;
  #fence: number | null = null;
  /** performance.now() at which the last successful acquire/renew was *sent*. */
  #validFrom = 0;

  constructor(private readonly options: LeaderLeaseOptions) {
    this.leaseKey = beatKey(options.prefix, 'lease');
    this.fenceKey = beatKey(options.prefix, 'fence');
  }

  get fence(): number | null {
    return this.#fence;
  }

  /**
   * True while we believe we lead: we hold a fence and, by our own monotonic clock, the lease sent
   * at #validFrom has at least `minRemainingMs` left. A process frozen past its lease (SIGSTOP, a
   * long GC) sees this turn false the moment it runs again, before it can send anything.
   */
  get held(): boolean {
    return this.#fence !== null && performance.now() - this.#validFrom < this.options.ttlMs - this.options.minRemainingMs;
  }

  async tryAcquire(): Promise<number | null> {
    const sentAt = performance.now();
    const fence = Number(await evalScript(this.options.client, LEASE_ACQUIRE, [this.leaseKey, this.fenceKey], [this.token, String(this.options.ttlMs)]));
    if (fence > 0) {
      this.#fence = fence;
      this.#validFrom = sentAt;
      return fence;
    }
    return null;
  }

  /** Renews the lease; false (and we are no longer leader) when it is gone or someone else's. */
  async renew(): Promise<boolean> {
    if (this.#fence === null) return false;
    if (!this.held) {
      this.#fence = null;
      return false;
    }
    const sentAt = performance.now();
    const ok = Number(await evalScript(this.options.client, LEASE_RENEW, [this.leaseKey, this.fenceKey], [this.token, String(this.options.ttlMs), String(this.#fence)]));
    if (ok !== 1) {
      this.#fence = null;
      return false;
    }
    this.#validFrom = sentAt;
    return true;
  }

  /** Asks Redis, atomically, whether the lease is still ours with enough time left for a write. */
  async check(): Promise<boolean> {
    if (!this.held || this.#fence === null) return false;
    const ok = Number(await evalScript(this.options.client, LEASE_CHECK, [this.leaseKey, this.fenceKey], [this.token, String(this.#fence), String(this.options.minRemainingMs)]));
    if (ok !== 1) this.#fence = null;
    return ok === 1;
  }

  /** HSET/HDEL on `hashKey`, applied only if the lease and fence are still ours (atomic). */
  async fencedHashWrite(hashKey: string, op: 'set' | 'del', field: string, value = ''): Promise<boolean> {
    if (!this.held || this.#fence === null) return false;
    const ok = Number(
      await evalScript(this.options.client, LEASE_FENCED_HASH_WRITE, [this.leaseKey, this.fenceKey, hashKey], [this.token, String(this.#fence), String(this.options.minRemainingMs), op, field, value]),
    );
    if (ok !== 1) this.#fence = null;
    return ok === 1;
  }

  /** Steps down: forgets the fence and deletes the lease if it is still ours, so a standby takes over at once. */
  async release(): Promise<void> {
    const had = this.#fence !== null;
    this.#fence = null;
    if (had) await evalScript(this.options.client, LEASE_RELEASE, [this.leaseKey], [this.token]);
  }

  /** Forgets leadership locally without touching Redis (used when Redis cannot be reached). */
  drop(): void {
    this.#fence = null;
  }

  /** Milliseconds until the current lease (anyone's) expires; -2 when there is none. */
  async remainingMs(): Promise<number> {
    return Number(await this.options.client.pttl(this.leaseKey));
  }
}
