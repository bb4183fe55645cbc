import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { formatInZone, nextRuns } from './next-runs.js';
import { liveMatches, ownedField, readOwned, schedulerIdFor, SCHEDULER_ID_PREFIX } from './reconciler.js';
import type { ScheduleFile } from './schedule-file.js';

/** What `taskline-scheduler list` shows for one schedule. */
export interface ScheduleStatus {
  id: string;
  task: string;
  queue: string;
  timing: string;
  tz: string;
  /** Next three runs, ISO UTC. */
  nextRuns: string[];
  /** The same runs as wall-clock times in the entry's zone. */
  nextRunsLocal: string[];
  /** When the last tick was due (ISO UTC), null if none yet. */
  lastRun: string | null;
  iterations: number;
  /** `in sync`, `missing in Redis`, `differs from the file`, or `in Redis only (will be removed)`. */
  redis: 'in sync' | 'missing in Redis' | 'differs from the file' | 'in Redis only (will be removed)';
}

/** Compares the file with Redis, read-only. */
export async function describeSchedules(file: ScheduleFile, client: Redis, prefix: string, now = new Date()): Promise<ScheduleStatus[]> {
  const owned = await readOwned(client, prefix);
  const queues = new Map<string, Queue>();
  const queue = (name: string): Queue => {
    let q = queues.get(name);
    if (!q) queues.set(name, (q = new Queue(name, { connection: client, prefix })));
    return q;
  };
  const out: ScheduleStatus[] = [];
  try {
    const declared = new Set<string>();
    for (const entry of file.entries) {
      const schedulerId = schedulerIdFor(entry);
      const field = ownedField(entry.queue, schedulerId);
      declared.add(field);
      const live = await queue(entry.queue).getJobScheduler(schedulerId);
      const record = owned.get(field);
      const runs = nextRuns(entry, 3, now, live?.next);
      const iterations = live?.iterationCount ?? 0;
      out.push({
        id: entry.id,
        task: entry.task,
        queue: entry.queue,
        timing: entry.cron !== null ? `cron "${entry.cron}"` : `every ${entry.everyMs} ms`,
        tz: entry.tz,
        nextRuns: runs.map(d => d.toISOString()),
        nextRunsLocal: runs.map(d => formatInZone(d, entry.tz)),
        lastRun: await lastRun(client, prefix, entry.queue, schedulerId, live?.next),
        iterations,
        redis: !live ? 'missing in Redis' : record?.hash === entry.hash && liveMatches(live, entry) ? 'in sync' : 'differs from the file',
      });
    }
    for (const [field, record] of owned) {
      if (declared.has(field) || !record.schedulerId.startsWith(SCHEDULER_ID_PREFIX)) continue;
      out.push({
        id: record.schedulerId.slice(SCHEDULER_ID_PREFIX.length),
        task: record.task,
        queue: record.queue,
        timing: '(not in the file)',
        tz: 'UTC',
        nextRuns: [],
        nextRunsLocal: [],
        lastRun: null,
        iterations: 0,
        redis: 'in Redis only (will be removed)',
      });
    }
  } finally {
    for (const q of queues.values()) await q.close();
  }
  return out;
}

/**
 * The due time of the newest tick job that left the delayed set: tick job ids are
 * `repeat:<scheduler id>:<ms>`, so the newest one other than the pending `next` is the last run.
 */
async function lastRun(client: Redis, prefix: string, queue: string, schedulerId: string, next: number | undefined): Promise<string | null> {
  const base = `${prefix}:${queue}`;
  const pattern = `repeat:${schedulerId}:`;
  let best = 0;
  for (const key of [`${base}:completed`, `${base}:failed`, `${base}:active`, `${base}:wait`]) {
    const type = await client.type(key);
    const ids = type === 'zset' ? await client.zrange(key, '-200', '-1') : type === 'list' ? await client.lrange(key, '0', '199') : [];
    for (const id of ids) {
      if (!id.startsWith(pattern)) continue;
      const ms = Number(id.slice(pattern.length));
      if (Number.isFinite(ms) && ms !== next && ms > best) best = ms;
    }
  }
  return best > 0 ? new Date(best).toISOString() : null;
}

/** Lines for a terminal. */
export function formatScheduleStatus(rows: ScheduleStatus[]): string {
  if (rows.length === 0) return 'No schedules declared.';
  return rows
    .map(r =>
      [
        `${r.id}  task=${r.task} queue=${r.queue} ${r.timing}${r.timing.startsWith('cron') ? ` tz=${r.tz}` : ''}`,
        `  redis: ${r.redis}; ticks so far: ${r.iterations}; last run: ${r.lastRun ?? 'never'}`,
        ...r.nextRuns.map((utc, i) => `  next: ${r.nextRunsLocal[i] ?? ''}  (${utc})`),
      ].join('\n'),
    )
    .join('\n');
}
