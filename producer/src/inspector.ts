import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { JobNotFoundError, JobStateError, ValidationError } from './errors.js';
import { checkQueueName } from './options.js';

/** Job states counted per queue, as BullMQ names them. */
export const COUNTED_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'failed', 'waiting-children', 'completed'] as const;
export type CountedState = (typeof COUNTED_STATES)[number];

export interface FailedJobSummary {
  id: string;
  task: string;
  data: unknown;
  failedReason: string;
  attemptsMade: number;
  /** ISO time of the failure, if known. */
  failedAt: string | null;
}

interface InspectorDeps {
  queue(name: string): Promise<Queue>;
  /** Marks retried jobs PENDING again so waiters do not read the old FAILURE. */
  markRetried(jobs: Array<{ id: string; task: string; queue: string; attempts: number }>): Promise<void>;
  broker(): Promise<Redis>;
  prefix: string;
}

const MAX_PAGE = 1000;

/** The operator's view of the broker: counts, failed jobs, pause/resume. */
export class QueueInspector {
  readonly #deps: InspectorDeps;

  constructor(deps: InspectorDeps) {
    this.#deps = deps;
  }

  /** Queues that exist under the prefix (BullMQ's meta keys), found with SCAN, never KEYS. */
  async queues(): Promise<string[]> {
    const client = await this.#deps.broker();
    const head = `${this.#deps.prefix}:`;
    const names = new Set<string>();
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${head}*:meta`, 'COUNT', 1000);
      cursor = next;
      for (const key of keys) {
        const name = key.slice(head.length, -':meta'.length);
        if (name && !name.includes(':')) names.add(name);
      }
    } while (cursor !== '0');
    return [...names].sort();
  }

  /** Jobs per state for the given queues (default: every known queue). */
  async counts(queues?: string[]): Promise<Record<string, Record<CountedState, number>>> {
    const names = queues ? queues.map(q => checkQueueName(q)) : await this.queues();
    const out: Record<string, Record<CountedState, number>> = {};
    await Promise.all(
      names.map(async name => {
        const queue = await this.#deps.queue(name);
        const counts = await queue.getJobCounts(...COUNTED_STATES);
        out[name] = Object.fromEntries(COUNTED_STATES.map(s => [s, counts[s] ?? 0])) as Record<CountedState, number>;
      }),
    );
    return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
  }

  /** Failed jobs kept on the broker, newest first; `start`/`end` are inclusive indexes. */
  async listFailed(queue: string, range: { start?: number; end?: number } = {}): Promise<FailedJobSummary[]> {
    const start = range.start ?? 0;
    const end = range.end ?? start + 49;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end < start || end - start >= MAX_PAGE) {
      throw new ValidationError('INVALID_OPTION', 'range', `start and end must be whole numbers with 0 ≤ start ≤ end and at most ${MAX_PAGE} jobs per page.`);
    }
    const q = await this.#deps.queue(checkQueueName(queue));
    const jobs = await q.getFailed(start, end);
    return jobs.map(job => ({
      id: String(job.id),
      task: job.name,
      data: job.data,
      failedReason: job.failedReason,
      attemptsMade: job.attemptsMade,
      failedAt: job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
    }));
  }

  /** Moves one failed job (or all) back to waiting; returns how many. */
  async retryFailed(queue: string, id: string): Promise<number> {
    const q = await this.#deps.queue(checkQueueName(queue));
    const summary = (job: { id?: string | undefined; name: string; opts: { attempts?: number } }) => ({
      id: job.id ?? '',
      task: job.name,
      queue: q.name,
      attempts: job.opts.attempts ?? 1,
    });
    if (id === 'all') {
      let retried = 0;
      for (;;) {
        const batch = await q.getFailed(0, MAX_PAGE - 1);
        if (batch.length === 0) return retried;
        await this.#deps.markRetried(batch.map(summary));
        await Promise.all(batch.map(job => job.retry('failed')));
        retried += batch.length;
      }
    }
    const job = await this.#failedJob(q, id);
    await this.#deps.markRetried([summary(job)]);
    await job.retry('failed');
    return 1;
  }

  /** Deletes one failed job (or all) from the broker; returns how many. */
  async removeFailed(queue: string, id: string): Promise<number> {
    const q = await this.#deps.queue(checkQueueName(queue));
    if (id === 'all') {
      let removed = 0;
      for (;;) {
        const batch = await q.clean(0, MAX_PAGE, 'failed');
        removed += batch.length;
        if (batch.length < MAX_PAGE) return removed;
      }
    }
    const job = await this.#failedJob(q, id);
    await job.remove();
    return 1;
  }

  async #failedJob(q: Queue, id: string) {
    const job = await q.getJob(id);
    if (!job) throw new JobNotFoundError(id, ` in queue "${q.name}"`);
    const state = await job.getState();
    if (state !== 'failed') throw new JobStateError(id, state, `Job ${id} in queue "${q.name}" is ${state}, not failed; only failed jobs can be retried or removed here.`);
    return job;
  }

  /** Workers stop taking new jobs from the queue (running ones finish). */
  async pause(queue: string): Promise<void> {
    await (await this.#deps.queue(checkQueueName(queue))).pause();
  }

  async resume(queue: string): Promise<void> {
    await (await this.#deps.queue(checkQueueName(queue))).resume();
  }

  async isPaused(queue: string): Promise<boolean> {
    return (await this.#deps.queue(checkQueueName(queue))).isPaused();
  }
}
