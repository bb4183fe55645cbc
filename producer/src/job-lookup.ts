import { Job, type Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { isTerminalState, type JobResultRecord, type JobState } from '@taskline/shared';
import { toJobErrorInfo } from '@taskline/shared/job';

/** A job as the broker holds it, when it has no record yet (records are written from STARTED on). */
export interface BrokerJob {
  queue: string;
  job: Job;
  /** BullMQ's state: waiting, delayed, prioritized, active, completed, failed, ... */
  brokerState: string;
  /** Completed or failed on the broker. */
  finished: boolean;
}

/**
 * What a job without a record reads as, by its BullMQ state. `completed` is absent: a job's
 * SUCCESS record is stored before the broker completes it, so a completed job without one has
 * outlived its record.
 */
const STATE_ON_BROKER: ReadonlyMap<string, JobState> = new Map([
  ['waiting', 'PENDING'],
  ['prioritized', 'PENDING'],
  ['delayed', 'PENDING'],
  ['paused', 'PENDING'],
  ['waiting-children', 'PENDING'],
  ['active', 'STARTED'],
  ['failed', 'FAILURE'],
]);

/**
 * Finds a job on the broker by id across the given queues (one EXISTS each, in one round trip).
 * A job id is unique per queue; taskline ids are random UUIDs, so at most one queue holds it.
 */
export async function findOnBroker(
  client: Redis,
  prefix: string,
  id: string,
  queues: string[],
  queue: (name: string) => Promise<Queue>,
): Promise<BrokerJob | null> {
  if (queues.length === 0) return null;
  const pipeline = client.pipeline();
  for (const name of queues) pipeline.exists(`${prefix}:${name}:${id}`);
  const replies = (await pipeline.exec()) ?? [];
  const index = replies.findIndex(([err, value]) => !err && value === 1);
  const name = queues[index];
  if (index < 0 || name === undefined) {
    // A lookup that failed (broker unreachable) is not "no such job".
    const failed = replies.find(([err]) => err)?.[0];
    if (failed) throw failed;
    return null;
  }
  const q = await queue(name);
  const job = await Job.fromId(q, id);
  if (!job) return null;
  const brokerState = await job.getState();
  const state = STATE_ON_BROKER.get(brokerState);
  return { queue: name, job, brokerState, finished: brokerState === 'completed' || (state !== undefined && isTerminalState(state)) };
}

/**
 * The record a job without one reads as, from the broker: PENDING while it waits, STARTED while a
 * worker holds it (its STARTED write may be held back briefly), FAILURE if the broker failed it
 * on its own before any record was written.
 */
export function recordFromBroker(found: BrokerJob): JobResultRecord | null {
  const { job, queue, brokerState } = found;
  const state = STATE_ON_BROKER.get(brokerState);
  if (state === undefined) return null;
  const enqueuedAt = new Date(job.timestamp).toISOString();
  const record: JobResultRecord = {
    id: job.id ?? '',
    task: job.name,
    queue,
    state,
    attempt: state === 'PENDING' ? job.attemptsMade : job.attemptsMade + (state === 'STARTED' ? 1 : 0),
    attempts: job.opts.attempts || null,
    enqueuedAt,
    startedAt: job.processedOn ? new Date(job.processedOn).toISOString() : null,
    finishedAt: state === 'FAILURE' && job.finishedOn ? new Date(job.finishedOn).toISOString() : null,
    updatedAt: new Date(job.finishedOn ?? job.processedOn ?? job.timestamp).toISOString(),
  };
  if (state === 'FAILURE') record.error = { ...toJobErrorInfo(new Error(job.failedReason || 'failed on the broker')), stack: null };
  return record;
}
