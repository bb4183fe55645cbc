import type { Redis } from 'ioredis';
import type { TaskRateLimit } from './tasks.js';

/**
 * A fixed-window counter per task on the broker, shared by every worker process: the first
 * `max` starts in a window run, later ones are told when the next window opens. The counter
 * key (`<prefix>::ratelimit:<task>:<window>`) expires with its window. The double colon keeps it
 * apart from BullMQ's queue keys, so the Redis ACL can give it to the worker user alone.
 */
export class TaskRateLimiter {
  readonly #prefix: string;

  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** `0` if the job may start now, else the Unix time (ms) to try again. */
  async acquire(client: Redis, task: string, limit: TaskRateLimit): Promise<number> {
    const now = Date.now();
    const window = Math.floor(now / limit.durationMs);
    const key = `${this.#prefix}::ratelimit:${task}:${window}`;
    const result = await client.multi().incr(key).pexpire(key, limit.durationMs + 1000).exec();
    const count = Number(result?.[0]?.[1] ?? 0);
    if (count <= limit.max) return 0;
    // Spread the jobs pushed out of this window over the start of the next one.
    return (window + 1) * limit.durationMs + Math.floor(Math.random() * Math.min(limit.durationMs, 1000) * 0.1);
  }
}
