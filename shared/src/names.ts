import { TasklineError } from './errors.js';

/**
 * The one set of name rules: what a queue, a task, a key prefix and a schedule id may be. Every
 * process, the HTTP API and the schedule file check names against these (they become parts of
 * Redis keys, metric labels and job ids, so they stay short and plain).
 */
export interface NameRule {
  readonly pattern: RegExp;
  /** The rule in words, for error messages: `1-128 letters, digits, "_", "." or "-"`. */
  readonly says: string;
  /** The pattern without anchors, to compose larger ones (a tick's job id holds a schedule id). */
  readonly source: string;
}

function rule(chars: string, max: number, says: string): NameRule {
  const source = `[${chars}]{1,${max}}`;
  return { pattern: new RegExp(`^${source}$`), says: `1-${max} ${says}`, source };
}

export const NAME_RULES = {
  queue: rule('A-Za-z0-9_.-', 128, 'letters, digits, "_", "." or "-"'),
  task: rule('A-Za-z0-9_.:-', 200, 'letters, digits, "_", ".", ":" or "-"'),
  prefix: rule('A-Za-z0-9_.-', 64, 'letters, digits, "_", "." or "-"'),
  scheduleId: rule('A-Za-z0-9_.-', 100, 'letters, digits, "_", "." or "-"'),
} as const;

export function isQueueName(value: unknown): value is string {
  return typeof value === 'string' && NAME_RULES.queue.pattern.test(value);
}

export function isTaskName(value: unknown): value is string {
  return typeof value === 'string' && NAME_RULES.task.pattern.test(value);
}

/** A queue or task name broke its rule. Callers that know the field (an option, a body) re-raise it as theirs. */
export class InvalidNameError extends TasklineError {
  override name = 'InvalidNameError';
  constructor(kind: 'queue' | 'task', value: unknown) {
    super(
      kind === 'queue' ? 'INVALID_QUEUE_NAME' : 'INVALID_TASK_NAME',
      kind === 'queue'
        ? `Queue name "${String(value)}" is invalid; use ${NAME_RULES.queue.says}.`
        : `Task name ${JSON.stringify(value)} is invalid; use ${NAME_RULES.task.says}.`,
    );
  }
}

export function assertQueueName(queue: string): string {
  if (!isQueueName(queue)) throw new InvalidNameError('queue', queue);
  return queue;
}

export function assertTaskName(task: string): string {
  if (!isTaskName(task)) throw new InvalidNameError('task', task);
  return task;
}
