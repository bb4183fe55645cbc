// Reads the fixture tasks' execution log (see fixtures/tasks.ts): one run per handler start, with
// its end if it ended. A run is keyed by job, process and broker delivery, which no two runs share.
import { readFileSync } from 'node:fs';

export interface HandlerRun {
  jobId: string;
  pid: number;
  /** ctx.attempt and ctx.attempts as the handler saw them. */
  attempt: number;
  attempts: number;
  /** ctx.delivery */
  delivery: number;
  /** ctx.redelivered */
  redelivered: boolean;
  startedAt: number;
  /** null: the run never ended (its process was killed, or it is still running). */
  endedAt: number | null;
  /** `ok`, or the name of what the handler threw; null while it has not ended. */
  outcome: string | null;
}

/** Every handler run in the log, by job id, in start order. */
export function readRuns(file: string): Map<string, HandlerRun[]> {
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return new Map();
  }
  const byKey = new Map<string, HandlerRun>();
  const runs = new Map<string, HandlerRun[]>();
  for (const line of text.split('\n')) {
    const f = line.split(' ');
    if (f.length < 8 || (f[0] !== 'start' && f[0] !== 'end')) continue;
    const [kind, jobId = '', pid, attempt, attempts, delivery, redelivered, at, outcome] = f;
    const key = `${jobId} ${pid} ${delivery}`;
    if (kind === 'start') {
      const run: HandlerRun = {
        jobId,
        pid: Number(pid),
        attempt: Number(attempt),
        attempts: Number(attempts),
        delivery: Number(delivery),
        redelivered: redelivered === '1',
        startedAt: Number(at),
        endedAt: null,
        outcome: null,
      };
      byKey.set(key, run);
      const list = runs.get(jobId) ?? [];
      list.push(run);
      runs.set(jobId, list);
    } else {
      const run = byKey.get(key);
      if (run) {
        run.endedAt = Number(at);
        run.outcome = outcome ?? 'unknown';
      }
    }
  }
  return runs;
}

/** Completed executions (runs that ended `ok`) per job id. */
export function completedRuns(file: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const [id, list] of readRuns(file)) {
    const ok = list.filter(r => r.outcome === 'ok').length;
    if (ok > 0) counts.set(id, ok);
  }
  return counts;
}
