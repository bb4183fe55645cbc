import { CronExpressionParser } from 'cron-parser';
import type { ScheduleEntry } from './schedule-file.js';

/**
 * The next `count` run times of an entry after `from`, honouring startDate / endDate.
 * For `every` schedules pass `anchor` (the next run BullMQ has stored) to get exact times;
 * without it they are counted from `from`.
 */
export function nextRuns(entry: Pick<ScheduleEntry, 'cron' | 'tz' | 'everyMs' | 'startDate' | 'endDate'>, count: number, from: Date = new Date(), anchor?: number): Date[] {
  const start = Math.max(from.getTime(), entry.startDate ?? 0);
  const out: Date[] = [];
  if (entry.cron !== null) {
    const expression = CronExpressionParser.parse(entry.cron, {
      tz: entry.tz,
      currentDate: new Date(start),
      ...(entry.endDate !== null ? { endDate: new Date(entry.endDate) } : {}),
    });
    while (out.length < count && expression.hasNext()) out.push(expression.next().toDate());
    return out;
  }
  const every = entry.everyMs ?? 0;
  let at = anchor !== undefined && anchor >= start ? anchor : start + every;
  while (out.length < count && (entry.endDate === null || at <= entry.endDate)) {
    out.push(new Date(at));
    at += every;
  }
  return out;
}

/** `2026-03-08 03:00:00 EDT`: a wall-clock time in the given zone with its abbreviation. */
export function formatInZone(date: Date, tz: string): string {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: tz,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    timeZoneName: 'short',
  }).formatToParts(date);
  const get = (type: Intl.DateTimeFormatPartTypes): string => parts.find(p => p.type === type)?.value ?? '??';
  return `${get('year')}-${get('month')}-${get('day')} ${get('hour')}:${get('minute')}:${get('second')} ${get('timeZoneName')}`;
}
