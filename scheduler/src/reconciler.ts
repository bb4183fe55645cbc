import type { Queue, JobSchedulerJson, JobSchedulerTemplateOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import { TasklineError, type Logger } from '@taskline/shared';
import { beatKey, type LeaderLease } from './leader-lease.js';
import type { ScheduleEntry } from './schedule-file.js';
import { traceScheduleUpsert } from './schedule-tracing.js';

/**
 * Turns the schedule file into BullMQ Job Schedulers, one per entry, id `beat:<entry id>`.
 *
 * How ticks are produced: not by this process. `upsertJobScheduler` stores the scheduler and adds
 * its first iteration as a delayed job with the deterministic id `repeat:<scheduler id>:<ms>`.
 * When a worker moves that job to active, BullMQ's Worker (worker.js `nextJobFromJobData`) calls the
 * `updateJobScheduler` Lua script with the active job's id as producer id; the script adds the next
 * iteration only if that id is the scheduler's current iteration and the next job key does not
 * exist yet. So each tick is one job, created once, atomically, inside Redis:
 * - with no worker running, the pending iteration just waits (delayed, then waiting); no new ticks
 *   are created, and when a worker comes back the pending one runs late and the next is computed
 *   from "now" (missed ticks are skipped, not replayed — BullMQ's catch-up for `every` aligns to the
 *   next slot, cron takes the next match after now);
 * - a beat failover loses no tick at all: the beat only declares schedules, it is not in the tick
 *   path. While no beat leads, changes to the file wait; ticks keep coming.
 *
 * Ownership: `<prefix>::beat:schedules` (a hash, field `<queue>/<scheduler id>`, value the entry
 * hash) lists the schedulers this beat created. Only those are updated or removed; other job
 * schedulers in the same queues are never touched. The beat owns that key: it adds a field when it
 * creates a scheduler and deletes the field when it removes it (no TTL: it lives as long as the
 * schedules it describes). Before the double colon it was `<prefix>:beat:schedules`; a leader
 * adopts such a hash once (adoptLegacyOwnedKey) so no schedule is orphaned by an upgrade.
 */

export interface ReconcileResult {
  added: string[];
  updated: string[];
  removed: string[];
  unchanged: string[];
}

export interface OwnedRecord {
  hash: string;
  task: string;
  fence: number;
  updatedAt: string;
}

/** Thrown when the lease is found lost mid-reconcile; nothing further is written. */
export class NotLeaderError extends TasklineError {
  override name = 'NotLeaderError';
  constructor() {
    super('BEAT_NOT_LEADER', 'This beat replica lost its leader lease; it stepped down and wrote nothing further.');
  }
}

export const SCHEDULER_ID_PREFIX = 'beat:';

export function schedulerIdFor(entry: Pick<ScheduleEntry, 'id'>): string {
  return `${SCHEDULER_ID_PREFIX}${entry.id}`;
}

export function ownedKey(prefix: string): string {
  return beatKey(prefix, 'schedules');
}

/** What the owned-schedules hash's fields look like: `<queue>/beat:<id>`. */
const OWNED_FIELD = /^[A-Za-z0-9_.-]{1,128}\/beat:/;

/**
 * Renames the owned-schedules hash of earlier versions (`<prefix>:beat:schedules`) to its current
 * name, once, if the current one does not exist yet. Only a hash whose every field is an owned
 * schedule is taken: a queue named "beat" could hold a job "schedules" under the old name.
 * Returns true when it adopted one.
 */
export async function adoptLegacyOwnedKey(client: Redis, prefix: string): Promise<boolean> {
  const legacy = `${prefix}:beat:schedules`;
  if ((await client.type(legacy)) !== 'hash') return false;
  const fields = await client.hkeys(legacy);
  if (fields.length === 0 || !fields.every(field => OWNED_FIELD.test(field))) return false;
  return (await client.renamenx(legacy, ownedKey(prefix))) === 1;
}

export function ownedField(queue: string, schedulerId: string): string {
  return `${queue}/${schedulerId}`;
}

/** Reads the owned-schedules hash: field → record, with the queue and scheduler id split out. */
export async function readOwned(client: Redis, prefix: string): Promise<Map<string, OwnedRecord & { queue: string; schedulerId: string }>> {
  const raw = await client.hgetall(ownedKey(prefix));
  const out = new Map<string, OwnedRecord & { queue: string; schedulerId: string }>();
  for (const [field, value] of Object.entries(raw)) {
    const slash = field.indexOf('/');
    if (slash <= 0) continue;
    let record: OwnedRecord;
    try {
      record = JSON.parse(value) as OwnedRecord;
    } catch {
      record = { hash: '', task: '', fence: 0, updatedAt: '' };
    }
    out.set(field, { ...record, queue: field.slice(0, slash), schedulerId: field.slice(slash + 1) });
  }
  return out;
}

/** Does the scheduler stored in Redis carry the entry's timing and task? (Drift check.) */
export function liveMatches(live: JobSchedulerJson | undefined, entry: ScheduleEntry): boolean {
  if (!live) return false;
  if (live.name !== entry.task) return false;
  if (entry.cron !== null) return live.pattern === entry.cron && (live.tz ?? 'UTC') === entry.tz && !live.every;
  return live.every === entry.everyMs && !live.pattern;
}

/** Ticks are kept for inspection but not forever: BullMQ removes the oldest beyond these counts. */
const DEFAULT_KEEP = { removeOnComplete: 1000, removeOnFail: 5000 } as const;

function templateOptions(entry: ScheduleEntry): JobSchedulerTemplateOptions {
  return { ...DEFAULT_KEEP, ...entry.options };
}

export interface ReconcileDeps {
  prefix: string;
  client: Redis;
  lease: LeaderLease;
  queue: (name: string) => Queue;
  logger: Logger;
}

/** Brings Redis in line with `entries`. Every write is preceded by a lease check; see LeaderLease. */
export async function reconcileSchedules(entries: ScheduleEntry[], deps: ReconcileDeps): Promise<ReconcileResult> {
  const { lease, logger } = deps;
  const result: ReconcileResult = { added: [], updated: [], removed: [], unchanged: [] };
  if ((await lease.check()) && (await adoptLegacyOwnedKey(deps.client, deps.prefix))) {
    logger.info('adopted the owned-schedules hash of an earlier version', { from: `${deps.prefix}:beat:schedules`, to: ownedKey(deps.prefix) });
  }
  const owned = await readOwned(deps.client, deps.prefix);
  const declared = new Set<string>();
  const guard = async (): Promise<void> => {
    if (!(await lease.check())) throw new NotLeaderError();
  };

  for (const entry of entries) {
    const schedulerId = schedulerIdFor(entry);
    const field = ownedField(entry.queue, schedulerId);
    declared.add(field);
    const queue = deps.queue(entry.queue);
    const record = owned.get(field);
    const live = await queue.getJobScheduler(schedulerId);
    if (record?.hash === entry.hash && liveMatches(live, entry)) {
      result.unchanged.push(entry.id);
      continue;
    }
    await guard();
    await traceScheduleUpsert(entry, schedulerId, templateOptions(entry), opts =>
      queue.upsertJobScheduler(
        schedulerId,
        {
          ...(entry.cron !== null ? { pattern: entry.cron, tz: entry.tz } : { every: entry.everyMs as number }),
          ...(entry.startDate !== null ? { startDate: entry.startDate } : {}),
          ...(entry.endDate !== null ? { endDate: entry.endDate } : {}),
          ...(entry.limit !== null ? { limit: entry.limit } : {}),
        },
        { name: entry.task, data: entry.data, opts },
      ),
    );
    const value: OwnedRecord = { hash: entry.hash, task: entry.task, fence: lease.fence ?? 0, updatedAt: new Date().toISOString() };
    if (!(await lease.fencedHashWrite(ownedKey(deps.prefix), 'set', field, JSON.stringify(value)))) throw new NotLeaderError();
    (record ? result.updated : result.added).push(entry.id);
    logger.info(record ? 'schedule updated' : 'schedule added', { schedule: entry.id, queue: entry.queue, task: entry.task, cron: entry.cron, tz: entry.tz, everyMs: entry.everyMs });
  }

  for (const [field, record] of owned) {
    if (declared.has(field)) continue;
    if (!record.schedulerId.startsWith(SCHEDULER_ID_PREFIX)) continue;
    await guard();
    await deps.queue(record.queue).removeJobScheduler(record.schedulerId);
    if (!(await lease.fencedHashWrite(ownedKey(deps.prefix), 'del', field))) throw new NotLeaderError();
    const id = record.schedulerId.slice(SCHEDULER_ID_PREFIX.length);
    result.removed.push(id);
    logger.info('schedule removed', { schedule: id, queue: record.queue });
  }
  return result;
}
