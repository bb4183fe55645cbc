import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CronExpressionParser } from 'cron-parser';
import { DEFAULT_QUEUE, TasklineError, createRoutes, isQueueName, isTaskName, type Backoff, type Routes } from '@taskline/shared';
import { NAME_RULES, encodeBackoff, resolveBackoff, type EncodedBackoff } from '@taskline/shared/job';

/**
 * The schedule file: which tasks the beat enqueues and when. JSON, either
 * `{ "schedules": [ … ] }` or a bare array of entries. See docs/SCHEDULES.md.
 */

/** One entry as written in the file. */
export interface ScheduleEntryInput {
  /** Unique within the file; the BullMQ job scheduler id is `beat:<id>`. */
  id: string;
  /** Task name (the BullMQ job name). */
  task: string;
  /** @defaultValue `default` */
  queue?: string;
  /** Job payload. @defaultValue `{}` */
  data?: unknown;
  /** Job options: attempts, backoff, priority, removeOnComplete, removeOnFail. */
  options?: ScheduleJobOptions;
  /** 5 fields (minute…weekday) or 6 (second first). Exactly one of `cron` and `every`. */
  cron?: string;
  /** IANA time zone for `cron`. @defaultValue `UTC` */
  tz?: string;
  /** Interval: `"30s"`, `"5m"`, `"1h"`, `"1d"`, `"250ms"` or a number of milliseconds. */
  every?: string | number;
  /** ISO date or ms since the epoch: no tick before it. */
  startDate?: string | number;
  /** ISO date or ms since the epoch: no tick after it. */
  endDate?: string | number;
  /** At most this many ticks. */
  limit?: number;
}

export interface ScheduleJobOptions {
  attempts?: number;
  /**
   * `{ "type": "exponential" | "fixed", "delayMs", "maxDelayMs"?, "jitter"? }`, the backoff shape
   * of every taskline API. BullMQ's `{ "type", "delay" }` is still accepted and keeps its meaning
   * (no cap, no jitter).
   */
  backoff?: Backoff | { type: 'fixed' | 'exponential'; delay: number };
  priority?: number;
  removeOnComplete?: boolean | number;
  removeOnFail?: boolean | number;
}

/** Job options after validation: the backoff as the BullMQ job carries it. */
export type ResolvedScheduleJobOptions = Omit<ScheduleJobOptions, 'backoff'> & { backoff?: EncodedBackoff };

/** One entry after validation, every default filled in. */
export interface ScheduleEntry {
  id: string;
  task: string;
  queue: string;
  data: unknown;
  options: ResolvedScheduleJobOptions;
  /** Exactly one of `cron` / `everyMs` is set. */
  cron: string | null;
  tz: string;
  everyMs: number | null;
  startDate: number | null;
  endDate: number | null;
  limit: number | null;
  /** Digest of everything above: a change means the scheduler in Redis must be updated. */
  hash: string;
}

export interface ScheduleFile {
  source: string;
  entries: ScheduleEntry[];
}

/** One problem in a schedule file, tied to an entry and field where there is one. */
export interface ScheduleProblem {
  /** `schedules[2] (id "nightly")`, or `file`. */
  entry: string;
  field: string | null;
  message: string;
}

/** A schedule file could not be read or is invalid; `problems` lists every fault found. */
export class ScheduleFileError extends TasklineError {
  override name = 'ScheduleFileError';
  readonly source: string;
  readonly problems: ScheduleProblem[];
  constructor(source: string, problems: ScheduleProblem[], options?: { cause?: unknown }) {
    const lines = problems.map(p => `  - ${p.entry}${p.field ? `, field "${p.field}"` : ''}: ${p.message}`);
    super(
      'SCHEDULE_FILE_INVALID',
      `Schedule file ${source} has ${problems.length} problem${problems.length === 1 ? '' : 's'}; fix ${problems.length === 1 ? 'it' : 'them'} and reload:\n${lines.join('\n')}`,
      options,
    );
    this.source = source;
    this.problems = problems;
  }
}

/** One problem in the options, turned into a line of the ScheduleFileError. */
class ScheduleOptionError extends TasklineError {
  readonly field: string;
  constructor(field: string, message: string) {
    super('SCHEDULE_FILE_INVALID', message);
    this.field = field;
  }
}

const ENTRY_KEYS = new Set(['id', 'task', 'queue', 'data', 'options', 'cron', 'tz', 'every', 'startDate', 'endDate', 'limit']);
const OPTION_KEYS = new Set(['attempts', 'backoff', 'priority', 'removeOnComplete', 'removeOnFail']);
const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const MIN_EVERY_MS = 100;
const MAX_EVERY_MS = 366 * 86_400_000;

/** `"30s"` → 30000; a number is taken as milliseconds. Returns an error message when invalid. */
export function parseEvery(raw: unknown): number | string {
  let ms: number;
  if (typeof raw === 'number') {
    ms = raw;
  } else if (typeof raw === 'string') {
    const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/.exec(raw);
    if (!match) return `must be a duration like "30s", "5m", "1h", "1d", "250ms" or a number of milliseconds, got ${JSON.stringify(raw)}`;
    ms = Number(match[1]) * (UNITS[match[2] as string] as number);
  } else {
    return `must be a duration string or a number of milliseconds, got ${describeType(raw)}`;
  }
  if (!Number.isInteger(ms) || ms < MIN_EVERY_MS || ms > MAX_EVERY_MS) {
    return `must be a whole number of milliseconds from ${MIN_EVERY_MS} (100ms) to ${MAX_EVERY_MS} (366d), got ${JSON.stringify(raw)}`;
  }
  return ms;
}

/** True for IANA names this Node.js knows (and for `UTC`). */
export function isKnownTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** Validates a cron expression of 5 or 6 fields; returns an error message or null. */
export function cronProblem(cron: string, tz: string): string | null {
  const fields = cron.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) {
    return `must have 5 fields (minute hour day month weekday) or 6 (second first), got ${fields.length} in ${JSON.stringify(cron)}`;
  }
  try {
    CronExpressionParser.parse(cron, { tz: isKnownTimeZone(tz) ? tz : 'UTC' });
    return null;
  } catch (err) {
    return `is not a valid cron expression (${err instanceof Error ? err.message : String(err)}): ${JSON.stringify(cron)}`;
  }
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseDate(raw: unknown): number | string {
  if (typeof raw === 'number' && Number.isFinite(raw)) return raw;
  if (typeof raw === 'string' && raw.trim() !== '') {
    const ms = Date.parse(raw);
    if (!Number.isNaN(ms)) return ms;
  }
  return `must be an ISO date (e.g. "2026-01-31T00:00:00Z") or milliseconds since the epoch, got ${describeType(raw)}`;
}

function checkOptions(raw: unknown, problem: (field: string, message: string) => void): ResolvedScheduleJobOptions {
  if (raw === undefined) return {};
  if (!isPlainObject(raw)) {
    problem('options', `must be an object, got ${describeType(raw)}`);
    return {};
  }
  for (const key of Object.keys(raw)) {
    if (!OPTION_KEYS.has(key)) problem(`options.${key}`, `is not a known job option; use one of ${[...OPTION_KEYS].join(', ')}`);
  }
  const out: ResolvedScheduleJobOptions = {};
  const { attempts, backoff, priority, removeOnComplete, removeOnFail } = raw;
  if (attempts !== undefined) {
    if (Number.isInteger(attempts) && (attempts as number) >= 1) out.attempts = attempts as number;
    else problem('options.attempts', `must be a whole number ≥ 1, got ${describeType(attempts)}`);
  }
  if (priority !== undefined) {
    if (Number.isInteger(priority) && (priority as number) >= 0) out.priority = priority as number;
    else problem('options.priority', `must be a whole number ≥ 0, got ${describeType(priority)}`);
  }
  if (isPlainObject(backoff) && 'delay' in backoff) {
    // BullMQ's own shape, from before the one backoff shape: passed on as it was.
    if ((backoff['type'] === 'fixed' || backoff['type'] === 'exponential') && Number.isInteger(backoff['delay']) && (backoff['delay'] as number) >= 0) {
      out.backoff = { type: backoff['type'], delay: backoff['delay'] as number };
    } else {
      problem('options.backoff', 'must be { "type": "fixed" | "exponential", "delayMs": <ms>, "maxDelayMs"?: <ms>, "jitter"?: 0..1 }');
    }
  } else if (backoff !== undefined) {
    try {
      out.backoff = encodeBackoff(resolveBackoff(backoff, 'options.backoff', (field, message) => new ScheduleOptionError(field, message)));
    } catch (err) {
      if (!(err instanceof ScheduleOptionError)) throw err;
      problem(err.field, err.message);
    }
  }
  for (const [key, value] of [['removeOnComplete', removeOnComplete], ['removeOnFail', removeOnFail]] as const) {
    if (value === undefined) continue;
    if (typeof value === 'boolean' || (Number.isInteger(value) && (value as number) >= 0)) out[key] = value as boolean | number;
    else problem(`options.${key}`, `must be true, false or a number of jobs to keep, got ${describeType(value)}`);
  }
  return out;
}

function checkEntry(raw: unknown, index: number, problems: ScheduleProblem[], routes: Routes): ScheduleEntry | null {
  const rawId = isPlainObject(raw) && typeof raw['id'] === 'string' ? raw['id'] : null;
  const entry = rawId ? `schedules[${index}] (id ${JSON.stringify(rawId)})` : `schedules[${index}]`;
  const before = problems.length;
  const problem = (field: string | null, message: string): void => void problems.push({ entry, field, message });
  if (!isPlainObject(raw)) {
    problem(null, `must be an object with at least "id", "task" and "cron" or "every", got ${describeType(raw)}`);
    return null;
  }
  for (const key of Object.keys(raw)) {
    if (!ENTRY_KEYS.has(key)) problem(key, `is not a known field; use one of ${[...ENTRY_KEYS].join(', ')}`);
  }
  const { id, task, queue, data, cron, tz, every, startDate, endDate, limit } = raw;
  if (typeof id !== 'string' || !NAME_RULES.scheduleId.pattern.test(id)) problem('id', `must be ${NAME_RULES.scheduleId.says}, got ${describeType(id)}`);
  if (!isTaskName(task)) problem('task', `must be a task name (${NAME_RULES.task.says}), got ${describeType(task)}`);
  if (queue !== undefined && !isQueueName(queue)) problem('queue', `must be a queue name (${NAME_RULES.queue.says}), got ${describeType(queue)}`);
  if (data !== undefined) {
    try {
      JSON.stringify(data);
    } catch {
      problem('data', 'must be JSON-serialisable');
    }
  }
  const options = checkOptions(raw['options'], problem);
  let zone = 'UTC';
  if (tz !== undefined) {
    if (typeof tz !== 'string' || !isKnownTimeZone(tz)) problem('tz', `must be an IANA time zone such as "Europe/Berlin" or "America/New_York", got ${describeType(tz)}`);
    else zone = tz;
    if (cron === undefined) problem('tz', 'only applies to "cron" schedules; remove it or use "cron"');
  }
  let everyMs: number | null = null;
  if (cron !== undefined && every !== undefined) problem('cron', 'and "every" are both set; keep exactly one of them');
  else if (cron === undefined && every === undefined) problem('cron', 'or "every" is required; add exactly one of them');
  if (cron !== undefined) {
    const message = typeof cron === 'string' ? cronProblem(cron, zone) : `must be a string, got ${describeType(cron)}`;
    if (message) problem('cron', message);
  }
  if (every !== undefined) {
    const parsed = parseEvery(every);
    if (typeof parsed === 'string') problem('every', parsed);
    else everyMs = parsed;
  }
  const dates: Record<'startDate' | 'endDate', number | null> = { startDate: null, endDate: null };
  for (const [field, value] of [['startDate', startDate], ['endDate', endDate]] as const) {
    if (value === undefined) continue;
    const parsed = parseDate(value);
    if (typeof parsed === 'string') problem(field, parsed);
    else dates[field] = parsed;
  }
  if (dates.startDate !== null && dates.endDate !== null && dates.endDate <= dates.startDate) {
    problem('endDate', 'must be after "startDate"');
  }
  if (limit !== undefined && (!Number.isInteger(limit) || (limit as number) < 1)) {
    problem('limit', `must be a whole number ≥ 1, got ${describeType(limit)}`);
  }
  if (problems.length > before) return null;
  const resolved: Omit<ScheduleEntry, 'hash'> = {
    id: id as string,
    task: task as string,
    // An entry naming no queue goes where TASKLINE_ROUTES sends its task, as an enqueue would.
    queue: (queue as string | undefined) ?? routes.queueFor(task as string) ?? DEFAULT_QUEUE,
    data: data ?? {},
    options,
    cron: typeof cron === 'string' ? cron.trim().split(/\s+/).join(' ') : null,
    tz: zone,
    everyMs,
    startDate: dates.startDate,
    endDate: dates.endDate,
    limit: (limit as number | undefined) ?? null,
  };
  return { ...resolved, hash: hashEntry(resolved) };
}

/** A stable digest of an entry: same declaration, same hash, whatever the key order in the file. */
function hashEntry(entry: Omit<ScheduleEntry, 'hash'>): string {
  const stable = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(stable);
    if (isPlainObject(value)) return Object.fromEntries(Object.keys(value).sort().map(k => [k, stable(value[k])]));
    return value;
  };
  return createHash('sha256').update(JSON.stringify(stable(entry))).digest('hex').slice(0, 16);
}

/** Parses and validates a schedule file's text; throws one ScheduleFileError listing every problem. */
export function parseScheduleFile(text: string, source = '<schedule>', routes: Routes = createRoutes()): ScheduleFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ScheduleFileError(source, [{ entry: 'file', field: null, message: `is not valid JSON (${err instanceof Error ? err.message : String(err)})` }]);
  }
  const problems: ScheduleProblem[] = [];
  let list: unknown;
  if (Array.isArray(json)) {
    list = json;
  } else if (isPlainObject(json)) {
    for (const key of Object.keys(json)) {
      if (key !== 'schedules') problems.push({ entry: 'file', field: key, message: 'is not a known top-level field; the file holds only "schedules"' });
    }
    list = json['schedules'];
    if (!Array.isArray(list)) {
      problems.push({ entry: 'file', field: 'schedules', message: `must be an array of entries, got ${describeType(list)}` });
      list = [];
    }
  } else {
    throw new ScheduleFileError(source, [{ entry: 'file', field: null, message: 'must be {"schedules": [...]} or an array of entries' }]);
  }
  const entries: ScheduleEntry[] = [];
  const seen = new Map<string, number>();
  (list as unknown[]).forEach((raw, index) => {
    const entry = checkEntry(raw, index, problems, routes);
    const id = isPlainObject(raw) && typeof raw['id'] === 'string' ? raw['id'] : null;
    if (id !== null) {
      const first = seen.get(id);
      if (first !== undefined) {
        problems.push({ entry: `schedules[${index}] (id ${JSON.stringify(id)})`, field: 'id', message: `duplicates the id of schedules[${first}]; ids must be unique` });
      } else {
        seen.set(id, index);
      }
    }
    if (entry) entries.push(entry);
  });
  if (problems.length > 0) throw new ScheduleFileError(source, problems);
  return { source, entries };
}

/** Reads and validates a schedule file. */
export async function loadScheduleFile(path: string, routes: Routes = createRoutes()): Promise<ScheduleFile> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as { code?: string }).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'is not readable by this process' : `cannot be read (${code ?? String(err)})`;
    throw new ScheduleFileError(path, [{ entry: 'file', field: null, message: `${why}; pass the path of a JSON schedule file with --schedule` }], { cause: err });
  }
  return parseScheduleFile(text, path, routes);
}
