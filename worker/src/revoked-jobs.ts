import type { Logger } from '@taskline/shared';
import type { ResultBackend } from '@taskline/shared/job';

/** Beyond this many live revokes the oldest are forgotten here (the record's check still holds). */
const MAX_REMEMBERED = 200_000;

/**
 * The ids revoked anywhere, known in memory so a worker needs no round trip before it runs a
 * job: read from the result backend at start-up and after every reconnect of the subscription,
 * kept current by the revoke channel. It is a shortcut, not the guarantee: the record's
 * compare-and-set turns any outcome of a revoked job into REVOKED even if this set missed it.
 */
export class RevokedJobs {
  readonly #ids = new Map<string, number>();
  readonly #results: ResultBackend;
  readonly #logger: Logger;
  readonly #ttlMs: number;

  constructor(results: ResultBackend, logger: Logger) {
    this.#results = results;
    this.#logger = logger;
    this.#ttlMs = results.expiresSeconds * 1000;
  }

  has(jobId: string): boolean {
    const at = this.#ids.get(jobId);
    if (at === undefined) return false;
    if (Date.now() - at > this.#ttlMs) {
      this.#ids.delete(jobId);
      return false;
    }
    return true;
  }

  add(jobId: string): void {
    this.#ids.delete(jobId);
    this.#ids.set(jobId, Date.now());
    if (this.#ids.size > MAX_REMEMBERED) {
      const oldest = this.#ids.keys().next().value;
      if (oldest !== undefined) this.#ids.delete(oldest);
    }
  }

  get size(): number {
    return this.#ids.size;
  }

  /** Re-reads every live revoke (start-up, and after the subscription reconnected). */
  async resync(): Promise<void> {
    try {
      for (const id of await this.#results.revokedIds()) if (!this.#ids.has(id)) this.add(id);
    } catch (err) {
      this.#logger.warn('Could not read the revoked jobs; revokes still apply through the job record', { error: err });
    }
  }
}
