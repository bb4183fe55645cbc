import { existsSync, readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { assertQueueName } from '../names.js';

/**
 * Task routing shared by every process (Celery's `task_routes`): which queue a task goes to when
 * a caller names none. The library, the HTTP API, the CLI and the beat all route through it, and
 * a worker uses it to warn when it consumes a task from a queue its routes do not send it to.
 */
export interface Routes {
  /** The queue for `task`, or `null` when no route matches (the caller's default applies). */
  queueFor(task: string): string | null;
  /** Every queue some route names. */
  readonly queues: readonly string[];
  /** True when no route is configured. */
  readonly empty: boolean;
}

/** Routes as given: task name or glob (`reports.*`) → queue. The first match in order wins; exact names before globs. */
export type RouteTable = Record<string, string>;

const PATTERN = /^[A-Za-z0-9_.:*-]{1,200}$/;

function invalid(message: string, cause?: unknown): ConfigError {
  return new ConfigError('CONFIG_INVALID_ROUTES', 'TASKLINE_ROUTES', message, cause === undefined ? undefined : { cause });
}

function globToRegExp(glob: string): RegExp {
  const escaped = glob.replace(/[.+?^${}()|[\]\\:-]/g, '\\$&').replace(/\*/g, '.*');
  return new RegExp(`^${escaped}$`);
}

/** Validates a route table and builds the matcher. */
export function createRoutes(table: RouteTable = {}): Routes {
  if (table === null || typeof table !== 'object' || Array.isArray(table)) {
    throw invalid('TASKLINE_ROUTES must be a JSON object mapping task names or globs to queues, e.g. {"send-email": "email", "reports.*": "reports"}.');
  }
  const exact = new Map<string, string>();
  const globs: Array<{ pattern: RegExp; queue: string }> = [];
  for (const [task, queue] of Object.entries(table)) {
    if (!PATTERN.test(task)) {
      throw invalid(`TASKLINE_ROUTES has an invalid task pattern ${JSON.stringify(task)}; use task names with letters, digits, "_", ".", ":", "-" and "*" as a wildcard.`);
    }
    if (typeof queue !== 'string') throw invalid(`TASKLINE_ROUTES sends "${task}" to ${JSON.stringify(queue)}; a route's value must be a queue name.`);
    try {
      assertQueueName(queue);
    } catch (err) {
      throw invalid(`TASKLINE_ROUTES sends "${task}" to an invalid queue: ${(err as Error).message}`, err);
    }
    if (task.includes('*')) globs.push({ pattern: globToRegExp(task), queue });
    else exact.set(task, queue);
  }
  const queues = [...new Set(Object.values(table))];
  return {
    queueFor: task => exact.get(task) ?? globs.find(g => g.pattern.test(task))?.queue ?? null,
    queues,
    empty: queues.length === 0,
  };
}

/**
 * Reads `TASKLINE_ROUTES`: a JSON object, or the path of a JSON file holding one. An option
 * given in code wins over the environment.
 */
export function resolveRoutes(option: RouteTable | Routes | string | undefined, env: Record<string, string | undefined> = process.env): Routes {
  if (option !== undefined && typeof option === 'object' && typeof (option as Routes).queueFor === 'function') return option as Routes;
  const raw = option ?? env['TASKLINE_ROUTES'];
  if (raw === undefined || raw === '') return createRoutes({});
  if (typeof raw === 'object') return createRoutes(raw as RouteTable);
  const text = raw.trim();
  if (text.startsWith('{')) {
    try {
      return createRoutes(JSON.parse(text) as RouteTable);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw invalid(`TASKLINE_ROUTES is not valid JSON (${(err as Error).message}); give a JSON object or the path of a JSON file.`, err);
    }
  }
  if (!existsSync(text)) {
    throw invalid(`TASKLINE_ROUTES names the file ${text}, which does not exist; give a JSON object or the path of a JSON file holding one.`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(text, 'utf8'));
  } catch (err) {
    throw invalid(`The routes file ${text} (TASKLINE_ROUTES) is not valid JSON: ${(err as Error).message}`, err);
  }
  return createRoutes(parsed as RouteTable);
}
