import { InvalidNameError, isQueueName } from '../names.js';
import { JobNotFoundError, JobStateError, ValidationError } from '../errors.js';
import { jobMeta } from '../job/index.js';

/**
 * The operator's view of the broker (counts, failed jobs, retry, remove, pause/resume), here so
 * that every bin can mount `inspect` without depending on another process's package. It reads
 * queues through the few BullMQ `Queue` methods below and re-enqueues through its owner.
 */

/** The BullMQ `Queue` methods the inspector uses (a `Queue` is one). */
export interface InspectedQueue {
  readonly name: string;
  getJobCounts(...states: string[]): Promise<Record<string, number>>;
  getFailed(start?: number, end?: number): Promise<InspectedJob[]>;
  getJob(id: string): Promise<InspectedJob | undefined>;
  clean(grace: number, limit: number, type: 'failed'): Promise<string[]>;
  pause(): Promise<void>;
  resume(): Promise<void>;
  isPaused(): Promise<boolean>;
}

/** The BullMQ `Job` fields and methods the inspector uses. */
export interface InspectedJob {
  id?: string | undefined;
  name: string;
  data: unknown;
  opts: { priority?: number | undefined };
  failedReason: string;
  attemptsMade: number;
  finishedOn?: number | undefined;
  getState(): Promise<string>;
  remove(): Promise<void>;
}

/** A failed job's copy, enqueued again by the inspector's owner (the producer). */
export interface RetryCopy {
  task: string;
  data: unknown;
  options: { queue: string; priority?: number; timeoutMs?: number };
  retryOf: string;
}

function checkQueueName(queue: unknown, field = 'queue'): string {
  if (typeof queue !== 'string') throw new ValidationError('INVALID_OPTION', field, `${field} must be a string (a queue name), got ${typeof queue}.`);
  if (!isQueueName(queue)) throw new ValidationError('INVALID_OPTION', field, new InvalidNameError('queue', queue).message);
  return queue;
}

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

export interface InspectorDeps {
  queue(name: string): Promise<InspectedQueue>;
  /** The deployment's queues (the broker's registry). */
  queues(): Promise<string[]>;
  /** Enqueues copies of failed jobs as new jobs. */
  reenqueue(jobs: RetryCopy[]): Promise<Array<{ id: string }>>;
}

/** A failed job run again: a new job (its own id and record); the failed one keeps its FAILURE. */
export interface RetriedJob {
  failedId: string;
  id: string;
}

const MAX_PAGE = 1000;

/** The operator's view of the broker: counts, failed jobs, pause/resume. */
export class QueueInspector {
  readonly #deps: InspectorDeps;

  constructor(deps: InspectorDeps) {
    this.#deps = deps;
  }

  /** The queues of the deployment: every queue a producer, worker or the beat has used. */
  queues(): Promise<string[]> {
    return this.#deps.queues();
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

  /**
   * Runs failed jobs again (one, or `all`), each as a new job with the same task, data and
   * options (its record names the failed one in `retryOf`), then takes the failed job off the
   * broker. A final state never changes: the failed job's record stays FAILURE.
   */
  async retryFailed(queue: string, id: string): Promise<RetriedJob[]> {
    const q = await this.#deps.queue(checkQueueName(queue));
    const retried: RetriedJob[] = [];
    if (id !== 'all') return this.#retry(q, [await this.#failedJob(q, id)]);
    for (;;) {
      const batch = await q.getFailed(0, MAX_PAGE - 1);
      if (batch.length === 0) return retried;
      retried.push(...(await this.#retry(q, batch)));
    }
  }

  async #retry(q: InspectedQueue, jobs: InspectedJob[]): Promise<RetriedJob[]> {
    const copies = jobs.map(job => {
      const options: RetryCopy['options'] = { queue: q.name };
      if (job.opts.priority) options.priority = job.opts.priority;
      const meta = jobMeta(job.opts);
      if (meta.timeoutMs !== undefined) options.timeoutMs = meta.timeoutMs;
      return { task: job.name, data: job.data, options, retryOf: String(job.id) };
    });
    const added = await this.#deps.reenqueue(copies);
    await Promise.all(jobs.map(job => job.remove().catch(() => undefined)));
    return jobs.map((job, i) => ({ failedId: String(job.id), id: added[i]?.id ?? '' }));
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

  async #failedJob(q: InspectedQueue, id: string): Promise<InspectedJob> {
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
