import { createHash, randomUUID } from 'node:crypto';
import type { JobsOptions, Queue } from 'bullmq';
import { TasklineError, type JobId } from '@taskline/shared';
import { assertTaskName, withJobMeta, type ResultBackend } from '@taskline/shared/job';
import type { Redis } from 'ioredis';
import { ValidationError } from './errors.js';
import { assertKnownTask } from './known-tasks.js';
import { checkPayload } from './payload.js';
import { resolveEnqueueOptions, type EnqueueOptions, type ResolvedEnqueueOptions, type ResolvedProducerOptions } from './options.js';

export interface EnqueueResult<Task extends string = string> {
  /** The job's id; its type remembers the task, so `waitForResult(id)` types the result. */
  id: JobId<Task>;
  /** True when an earlier job with the same idempotency key (and task) was returned instead of a new one. */
  deduplicated: boolean;
}

export interface BulkJob<Task extends string = string, Data = unknown> {
  task: Task;
  data: Data;
  options?: EnqueueOptions;
}

/**
 * What became of one job of a bulk that did not fully succeed: `added` or `deduplicated` (the
 * job exists: do not send it again), `failed` (it does not exist: send it again), `unknown`
 * (the check itself failed: only a retry with an idempotency key is safe).
 */
export interface BulkJobOutcome {
  /** The job's id (for `deduplicated`, the first job's); the id it would have had otherwise. */
  id: string;
  status: 'added' | 'deduplicated' | 'failed' | 'unknown';
}

/** Part of a bulk enqueue failed; `outcomes` says, per job in input order, which jobs exist. */
export class EnqueueBulkError extends TasklineError {
  override name = 'EnqueueBulkError';
  readonly outcomes: BulkJobOutcome[];
  constructor(outcomes: BulkJobOutcome[], cause: unknown) {
    const n = (status: BulkJobOutcome['status']) => outcomes.filter(o => o.status === status).length;
    const detail = cause instanceof Error ? cause.message : String(cause);
    super(
      cause instanceof TasklineError ? cause.code : 'ENQUEUE_PARTIAL',
      `${n('added') + n('deduplicated')} of ${outcomes.length} jobs were enqueued, ${n('failed')} were not and ${n('unknown')} are unknown (${detail}); ` +
        'send again only the jobs whose status is "failed" (or all of them with idempotency keys), never the whole batch.',
      { cause },
    );
    this.outcomes = outcomes;
  }
}

export interface PreparedJob {
  task: string;
  data: unknown;
  options: ResolvedEnqueueOptions;
  /** The id the job gets if it is new. */
  id: string;
  jobOptions: JobsOptions;
  /** The broker's deduplication id (idempotency key scoped by task), if keyed. */
  dedupId: string | undefined;
}

/** An idempotency key names one job per task: the broker's deduplication id. */
export function deduplicationId(task: string, key: string): string {
  return createHash('sha256').update(`${task}\n${key}`).digest('hex').slice(0, 40);
}

/** Validates one job and turns it into BullMQ options. Sends only what the caller set. */
export function prepareJob(
  task: string,
  data: unknown,
  input: EnqueueOptions | undefined,
  producer: ResolvedProducerOptions,
  now: number,
  retryOf?: string,
): PreparedJob {
  try {
    assertTaskName(task);
  } catch (err) {
    throw new ValidationError('INVALID_TASK', 'task', (err as Error).message, { cause: err });
  }
  assertKnownTask(task, producer.knownTasks, producer.routes);
  const options = resolveEnqueueOptions(input, producer, now, task);
  checkPayload(data, producer.maxPayloadBytes);
  const id = randomUUID();
  const dedupId = options.idempotencyKey === undefined ? undefined : deduplicationId(task, options.idempotencyKey);
  const jobOptions: JobsOptions = withJobMeta(
    {
      jobId: id,
      timestamp: now,
      ...(options.attempts !== undefined ? { attempts: options.attempts } : {}),
      ...(options.backoff !== undefined ? { backoff: options.backoff } : {}),
      ...(options.delay > 0 ? { delay: options.delay } : {}),
      ...(options.priority !== undefined ? { priority: options.priority } : {}),
      ...(dedupId ? { deduplication: { id: dedupId, ttl: producer.resultExpiresSeconds * 1000 } } : {}),
    },
    {
      ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
      ...(retryOf === undefined ? {} : { retryOf }),
    },
  );
  return { task, data, options, id, jobOptions, dedupId };
}

export interface AddDeps {
  queue(name: string): Promise<Queue>;
  broker(): Redis;
  results: ResultBackend;
  prefix: string;
}

/**
 * Adds prepared jobs, one BullMQ add (or addBulk) per queue. A keyed job is deduplicated by the
 * broker in the same script that adds it, so "deduplicated" always names a job that exists.
 * When an add fails, each of its jobs is looked up, so the caller learns exactly which exist.
 */
export async function addJobs(prepared: PreparedJob[], deps: AddDeps): Promise<EnqueueResult[]> {
  const byQueue = new Map<string, number[]>();
  prepared.forEach((p, i) => {
    const list = byQueue.get(p.options.queue) ?? [];
    list.push(i);
    byQueue.set(p.options.queue, list);
  });
  const results: Array<EnqueueResult | undefined> = new Array(prepared.length);
  const failures: Array<{ indexes: number[]; error: unknown }> = [];
  await Promise.all(
    [...byQueue].map(async ([name, indexes]) => {
      try {
        const queue = await deps.queue(name);
        const jobs = indexes.map(i => prepared[i] as PreparedJob);
        const ids =
          jobs.length === 1
            ? [(await queue.add(jobs[0]!.task, jobs[0]!.data, jobs[0]!.jobOptions)).id]
            : (await queue.addBulk(jobs.map(p => ({ name: p.task, data: p.data, opts: p.jobOptions })))).map(j => j.id);
        indexes.forEach((index, k) => {
          const p = prepared[index] as PreparedJob;
          const id = ids[k] ?? p.id;
          results[index] = { id, deduplicated: id !== p.id };
        });
      } catch (error) {
        failures.push({ indexes, error });
      }
    }),
  );
  if (failures.length === 0) return results as EnqueueResult[];
  if (prepared.length === 1) throw failures[0]?.error;
  const outcomes: BulkJobOutcome[] = results.map((r, i) =>
    r ? { id: r.id, status: r.deduplicated ? 'deduplicated' : 'added' } : { id: (prepared[i] as PreparedJob).id, status: 'unknown' },
  );
  for (const failure of failures) {
    const found = await lookUp(failure.indexes.map(i => prepared[i] as PreparedJob), deps).catch(() => null);
    failure.indexes.forEach((index, k) => {
      const seen = found?.[k];
      if (seen) outcomes[index] = seen;
    });
  }
  throw new EnqueueBulkError(outcomes, failures[0]?.error);
}

/**
 * Which of these jobs exist after a failed add: a keyed job by its deduplication key (it names
 * the job that holds the key); any other by its broker hash or, if it already finished and left
 * the broker, its record (written before the broker hears of the completion).
 */
async function lookUp(jobs: PreparedJob[], deps: AddDeps): Promise<BulkJobOutcome[]> {
  const pipeline = deps.broker().pipeline();
  for (const p of jobs) {
    const base = `${deps.prefix}:${p.options.queue}:`;
    if (p.dedupId) pipeline.get(`${base}de:${p.dedupId}`);
    else pipeline.exists(`${base}${p.id}`);
  }
  const replies = (await pipeline.exec()) ?? [];
  const unseen: PreparedJob[] = [];
  const outcomes = jobs.map((p, i): BulkJobOutcome => {
    const [err, value] = replies[i] ?? [new Error('no reply')];
    if (err) return { id: p.id, status: 'unknown' };
    if (p.dedupId) return typeof value === 'string' ? { id: value, status: value === p.id ? 'added' : 'deduplicated' } : { id: p.id, status: 'failed' };
    if (value === 1) return { id: p.id, status: 'added' };
    unseen.push(p);
    return { id: p.id, status: 'failed' };
  });
  if (unseen.length > 0) {
    const records = await deps.results.getMany(unseen.map(p => p.id));
    for (const o of outcomes) if (o.status === 'failed' && records.get(o.id)) o.status = 'added';
  }
  return outcomes;
}
