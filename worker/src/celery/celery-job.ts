import type { Job, JobsOptions } from 'bullmq';
import { DEFAULT_QUEUE, type Routes } from '@taskline/shared';
import { withJobMeta } from '@taskline/shared/job';
import type { ResolvedTask } from '../tasks.js';
import { jobIdFor, type CelerySignature, type CeleryTaskMessage } from './celery-message.js';

/** What a handler of a task that came from Celery receives as its data. */
export interface CeleryTaskData {
  args: unknown[];
  kwargs: Record<string, unknown>;
}

/**
 * What a job made from a Celery message carries beside taskline's own options, under
 * `opts.celery` (BullMQ keeps option keys it does not know): enough to write Celery's record.
 */
export interface CeleryJobInfo {
  /** The Celery task id: the key of its `celery-task-meta-<id>` record. */
  taskId: string;
  /** The Celery queue the message came from. */
  queue: string;
  ignoreResult: boolean;
  /** After this (ms since the epoch) the job is REVOKED instead of started. */
  expiresMs: number | null;
  parentId: string | null;
  rootId: string | null;
  group: string | null;
  /** What Celery sends after a success (`link` callbacks, the rest of a `chain`); `null` when nothing. */
  next: CeleryNext | null;
}

export interface CeleryNext {
  callbacks: CelerySignature[];
  chain: CelerySignature[];
}

/** Stored as JSON text: BullMQ's Lua (cjson) would turn an empty list into an object. */
type StoredInfo = Omit<CeleryJobInfo, 'next'> & { next: string | null };

export const CELERY_OPTS_KEY = 'celery';

export interface CeleryJob {
  id: string;
  /** The taskline queue the job goes to. */
  queue: string;
  name: string;
  data: CeleryTaskData;
  opts: JobsOptions;
}

/**
 * The BullMQ job a Celery message becomes, with the producer's conventions (producer/src/enqueue.ts
 * `prepareJob`): a fixed job id (derived from the Celery id), the enqueue timestamp, `delay` for
 * an ETA, `priority`, `attempts` only where the message changes them, and a per-job time limit in
 * taskline's meta. The task's own definition fills the rest on every attempt, as for any job.
 */
export function celeryJob(message: CeleryTaskMessage, sourceQueue: string, task: ResolvedTask, routes: Routes, now: number): CeleryJob {
  const id = jobIdFor(message.id);
  const delay = message.etaMs === null ? 0 : Math.max(0, message.etaMs - now);
  // Celery's retries already used count against the task's attempts.
  const attempts = message.retries > 0 && task.attempts > 1 ? Math.max(1, task.attempts - message.retries) : undefined;
  // The soft limit aborts ctx.signal; a hard limit alone becomes the soft one (a handler in the
  // event loop can only be asked to stop). A per-job limit can only lower the task's own.
  const timeoutMs = message.softLimitMs ?? message.hardLimitMs ?? undefined;
  const info: StoredInfo = {
    taskId: message.id,
    queue: sourceQueue,
    ignoreResult: message.ignoreResult,
    expiresMs: message.expiresMs,
    parentId: message.parentId,
    rootId: message.rootId,
    group: message.group,
    next: message.embed.callbacks.length > 0 || message.embed.chain.length > 0 ? JSON.stringify({ callbacks: message.embed.callbacks, chain: message.embed.chain }) : null,
  };
  const opts = withJobMeta(
    {
      jobId: id,
      timestamp: now,
      ...(attempts !== undefined ? { attempts } : {}),
      ...(delay > 0 ? { delay } : {}),
      // kombu serves 0 first and 9 last, as BullMQ serves no priority first, then 1, 2, ...
      ...(message.priority ? { priority: message.priority } : {}),
      [CELERY_OPTS_KEY]: info,
    } as JobsOptions,
    timeoutMs === undefined ? {} : { timeoutMs },
  );
  return { id, queue: task.queue ?? routes.queueFor(task.name) ?? DEFAULT_QUEUE, name: task.name, data: { args: message.args, kwargs: message.kwargs }, opts };
}

/** The Celery side of a job, or `null` for a job that did not come from Celery. */
export function celeryInfoOf(job: Pick<Job, 'opts'>): CeleryJobInfo | null {
  const raw = (job.opts as Record<string, unknown>)[CELERY_OPTS_KEY];
  if (raw === null || typeof raw !== 'object') return null;
  const info = raw as Partial<StoredInfo>;
  if (typeof info.taskId !== 'string') return null;
  return {
    taskId: info.taskId,
    queue: typeof info.queue === 'string' ? info.queue : '',
    ignoreResult: info.ignoreResult === true,
    expiresMs: typeof info.expiresMs === 'number' ? info.expiresMs : null,
    parentId: typeof info.parentId === 'string' ? info.parentId : null,
    rootId: typeof info.rootId === 'string' ? info.rootId : null,
    group: typeof info.group === 'string' ? info.group : null,
    next: typeof info.next === 'string' ? parseNext(info.next) : null,
  };
}

function parseNext(text: string): CeleryNext | null {
  try {
    const next = JSON.parse(text) as Partial<CeleryNext>;
    return Array.isArray(next.callbacks) && Array.isArray(next.chain) ? { callbacks: next.callbacks, chain: next.chain } : null;
  } catch {
    return null;
  }
}

/**
 * A handler written with Celery's signature: `celeryTask((x, y) => x + y)` is called as
 * `fn(...args)`, with the kwargs object as one more argument when there are any, then the context.
 */
export function celeryTask<R>(fn: (...args: never[]) => R): (data: CeleryTaskData, ctx?: unknown) => R {
  return (data: CeleryTaskData) => {
    const args = Array.isArray(data?.args) ? data.args : [];
    const kwargs = data?.kwargs && Object.keys(data.kwargs).length > 0 ? [data.kwargs] : [];
    return (fn as (...a: unknown[]) => R)(...args, ...kwargs);
  };
}
