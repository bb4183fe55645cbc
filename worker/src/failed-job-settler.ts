import type { Queue } from 'bullmq';
import { type JobErrorInfo, type Logger } from '@taskline/shared';
import { canTransition, toJobErrorInfo, type RecordBase, type ResultBackend } from '@taskline/shared/job';
import { type RedisService } from '@taskline/shared/connection';
import { WorkerLostError } from './errors.js';
import type { WorkerMetrics } from './worker-metrics.js';

const PAGE = 500;
/** Failures land in the failed set with their time as score; re-read this far back for late writers. */
const OVERLAP_MS = 2000;

export interface FailedJobSettlerDeps {
  broker: RedisService;
  results: ResultBackend;
  prefix: string;
  queues: string[];
  /** BullMQ queue handles (for removing a job the record says succeeded). */
  queue(name: string): Queue;
  intervalMs: number;
  metrics: WorkerMetrics;
  logger: Logger;
  /** Told of each job it settled, with the job's BullMQ options (the Celery bridge writes Celery's record). */
  onSettled?: (job: { id: string; opts: object }, error: JobErrorInfo) => Promise<void>;
}

/**
 * Every job the broker fails gets a final record, even when no handler wrote one: BullMQ fails a
 * job on its own when it stalls more than `maxStalledCount` times, and an attempt whose result
 * could not be stored fails without a record. The settler reads each queue's failed set (newest
 * first since the last pass; at start-up as far back as records live) and settles any record that
 * is not final to FAILURE with the broker's reason. A failed job whose record says SUCCESS (its
 * completion was lost) is removed from the failed set, so record and broker agree.
 * Idempotent: every worker on a queue settles it; the compare-and-set makes repeats harmless.
 */
export class FailedJobSettler {
  readonly #deps: FailedJobSettlerDeps;
  readonly #since = new Map<string, number>();
  #timer: NodeJS.Timeout | null = null;
  #running: Promise<void> | null = null;
  #stopped = false;

  constructor(deps: FailedJobSettlerDeps) {
    this.#deps = deps;
    const from = Date.now() - deps.results.expiresSeconds * 1000;
    for (const q of deps.queues) this.#since.set(q, from);
  }

  start(): void {
    if (this.#stopped || this.#timer) return;
    this.#timer = setInterval(() => void this.settle(), this.#deps.intervalMs);
    this.#timer.unref();
    void this.settle();
  }

  /** One pass over every queue (a pass already running is awaited, not doubled). */
  settle(): Promise<void> {
    this.#running ??= (async () => {
      for (const queue of this.#deps.queues) {
        if (this.#stopped) return;
        try {
          await this.#settleQueue(queue);
        } catch (err) {
          this.#deps.logger.warn('Could not settle failed jobs; will try again', { queue, error: err });
        }
      }
    })().finally(() => {
      this.#running = null;
    });
    return this.#running;
  }

  async #settleQueue(queue: string): Promise<void> {
    const client = this.#deps.broker.client();
    const failedKey = `${this.#deps.prefix}:${queue}:failed`;
    for (;;) {
      const since = this.#since.get(queue) ?? 0;
      const page = await client.zrangebyscore(failedKey, since, '+inf', 'WITHSCORES', 'LIMIT', 0, PAGE);
      if (page.length === 0) return;
      const ids: string[] = [];
      let newest = since;
      for (let i = 0; i < page.length; i += 2) {
        ids.push(page[i] as string);
        newest = Math.max(newest, Number(page[i + 1]));
      }
      await this.#settleJobs(queue, ids);
      const full = ids.length === PAGE;
      // A full page moves past what it read; a short one keeps an overlap for late arrivals.
      this.#since.set(queue, full ? newest : Math.max(since, newest - OVERLAP_MS));
      if (!full || this.#stopped) return;
    }
  }

  async #settleJobs(queue: string, ids: string[]): Promise<void> {
    const records = await this.#deps.results.getMany(ids);
    const open = ids.filter(id => canTransition(records.get(id)?.state ?? null, 'FAILURE'));
    const succeeded = ids.filter(id => records.get(id)?.state === 'SUCCESS');
    if (open.length > 0) {
      const client = this.#deps.broker.client();
      const pipeline = client.pipeline();
      for (const id of open) pipeline.hmget(`${this.#deps.prefix}:${queue}:${id}`, 'name', 'failedReason', 'timestamp', 'atm', 'ats', 'finishedOn', 'opts');
      const replies = (await pipeline.exec()) ?? [];
      await Promise.all(
        open.map(async (id, i) => {
          const [err, fields] = replies[i] ?? [];
          if (err || !Array.isArray(fields) || fields[0] === null) return;
          const [name, failedReason, timestamp, atm, ats, finishedOn, opts] = fields as Array<string | null>;
          const at = Number(finishedOn) || Date.now();
          const previous = records.get(id);
          const base: RecordBase = {
            task: name ?? 'unknown',
            queue,
            attempt: Math.max(1, Number(atm) || 0),
            attempts: previous?.attempts ?? null,
            enqueuedAt: timestamp ? Number(timestamp) : null,
            startedAt: previous?.startedAt ? Date.parse(previous.startedAt) : null,
            finishedAt: at,
            updatedAt: at,
            ...(previous?.worker ? { worker: previous.worker } : {}),
          };
          const reason = failedReason || 'unknown reason';
          const error = { ...toJobErrorInfo(new WorkerLostError(id, reason)), stack: null };
          const answer = await this.#deps.results.transition({ kind: 'settle', id, delivery: Number(ats) || 0, state: 'FAILURE', base, outcome: { error } });
          if (answer === 'OK') {
            this.#deps.metrics.settled.inc({ queue, outcome: 'failure' });
            this.#deps.logger.warn('The broker failed a job outside its handler; its record is now FAILURE', { jobId: id, queue, reason });
            await this.#deps.onSettled?.({ id, opts: parseOpts(opts ?? null) }, error);
          }
        }),
      );
    }
    for (const id of succeeded) {
      // Its handler's SUCCESS was stored but the completion never reached the broker, which then
      // failed it (stalled). The record is final: take the job out of the failed set.
      const removed = await this.#deps.queue(queue).remove(id).catch(() => 0);
      if (removed) {
        this.#deps.metrics.settled.inc({ queue, outcome: 'conflict' });
        this.#deps.logger.warn('A job the broker failed had already succeeded; removed it from the failed set', { jobId: id, queue });
      }
    }
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#running?.catch(() => undefined);
  }
}

function parseOpts(text: string | null): object {
  try {
    const opts: unknown = JSON.parse(text ?? '{}');
    return opts !== null && typeof opts === 'object' ? opts : {};
  } catch {
    return {};
  }
}
