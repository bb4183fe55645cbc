import type { Redis } from 'ioredis';
import type { Logger } from '@taskline/shared';

/**
 * Whether a Redis server refuses writes for lack of memory: over `maxmemory` with the
 * `noeviction` policy taskline requires, every write is answered OOM. Read from `INFO memory`
 * (read-only, cheap) so `/readyz` can turn unready before a job fails on it.
 */
export async function refusesWrites(client: Redis): Promise<boolean> {
  const info = String(await client.info('memory'));
  const field = (name: string): string | undefined => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
  const max = Number(field('maxmemory'));
  const used = Number(field('used_memory'));
  const policy = field('maxmemory_policy') ?? 'noeviction';
  return max > 0 && used >= max && policy === 'noeviction';
}

/**
 * Logs a recurring error once per window per kind, with how many were suppressed in between: a
 * broker that refuses every write must not turn into thousands of log lines a second.
 */
export class RateLimitedLog {
  readonly #logger: Logger;
  readonly #windowMs: number;
  readonly #last = new Map<string, { at: number; suppressed: number }>();

  constructor(logger: Logger, windowMs = 10_000) {
    this.#logger = logger;
    this.#windowMs = windowMs;
  }

  error(kind: string, message: string, fields: Record<string, unknown>): void {
    const now = Date.now();
    const entry = this.#last.get(kind);
    if (entry && now - entry.at < this.#windowMs) {
      entry.suppressed += 1;
      return;
    }
    this.#last.set(kind, { at: now, suppressed: 0 });
    this.#logger.error(message, { ...fields, ...(entry?.suppressed ? { suppressedSinceLast: entry.suppressed } : {}) });
  }
}
