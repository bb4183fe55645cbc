import type { Job } from 'bullmq';
import { TasklineError, type Logger } from '@taskline/shared';
import { ResultNotSerializableError, ResultTooLargeError, TimeLimitError } from './errors.js';
import type { AttemptAbort } from './attempt-abort.js';
import type { ResolvedTask, TaskContext } from './tasks.js';
import type { Gauge, Histogram } from 'prom-client';

/** Label-bound metric children of one queue and task, made once (a label lookup per job is measurable). */
export interface AttemptMetrics {
  active: Gauge.Internal<string>;
  overrunning: Gauge.Internal<string>;
  duration: Histogram.Internal<string>;
}

/** Largest progress value, as JSON. */
const MAX_PROGRESS_BYTES = 16 * 1024;

export interface AttemptInput {
  task: ResolvedTask;
  job: Job;
  queue: string;
  /** The limit in force (the lower of the task's and the job's), or null. */
  timeoutMs: number | null;
  controller: AttemptAbort;
  redelivered: boolean;
  delivery: number;
  /** This queue's (and task's) metric children. */
  metrics: AttemptMetrics;
  logger: () => Logger;
  /** Stores a progress value on the record (throttled by the caller's interval). */
  progress(value: unknown): Promise<void>;
  progressIntervalMs: number;
  /** Runs the handler (in an isolated runner); by default it runs here, in the event loop. */
  invoke?: (ctx: TaskContext) => Promise<unknown>;
}

/** How the handler ended; `progress` is a last value not yet stored (it goes with the outcome). */
export type AttemptOutcome = ({ ok: true; value: unknown } | { ok: false; error: unknown }) & { progress?: unknown };

/**
 * Runs one attempt of a handler under its signal and time limit. The attempt ends when the
 * handler settles or the signal aborts, whichever is first; a handler that ignores its signal
 * keeps counting in the active-jobs gauge (and in the overrunning gauge) until it really ends.
 */
export async function runHandler(input: AttemptInput): Promise<AttemptOutcome> {
  const { task, job, controller, metrics } = input;
  const timer =
    input.timeoutMs === null ? null : setTimeout(() => controller.abort(new TimeLimitError(task.name, input.timeoutMs ?? 0)), input.timeoutMs);
  // Made on first use: most handlers never report progress.
  let progress: ProgressThrottle | null = null;
  const ctx: TaskContext = {
    jobId: job.id ?? '',
    task: task.name,
    queue: input.queue,
    attempt: job.attemptsMade + 1,
    attempts: job.opts.attempts ?? task.attempts,
    delivery: input.delivery,
    redelivered: input.redelivered,
    get signal() {
      return controller.signal;
    },
    get logger() {
      return input.logger();
    },
    progress: value => (progress ??= new ProgressThrottle(input.progress, input.progressIntervalMs, input.logger)).report(value),
  };
  metrics.active.inc();
  const started = performance.now();
  let settled = false;
  let overrunning = false;
  // One promise for the attempt: the handler settling or the signal aborting, whichever is first.
  const outcome = new Promise<AttemptOutcome>(resolve => {
    const end = (): void => {
      settled = true;
      metrics.active.dec();
      metrics.duration.observe((performance.now() - started) / 1000);
      if (overrunning) metrics.overrunning.dec();
    };
    let handler: Promise<unknown>;
    try {
      handler = Promise.resolve(input.invoke ? input.invoke(ctx) : task.run(job.data, ctx));
    } catch (err) {
      handler = Promise.reject(err);
    }
    handler.then(
      value => {
        end();
        // A handler that blocked the event loop past its limit settles before the timer can fire:
        // the limit is checked against the time it took, so an overrun is never a SUCCESS.
        const late = input.timeoutMs !== null && performance.now() - started >= input.timeoutMs;
        if (!late) return resolve({ ok: true, value });
        const error = new TimeLimitError(task.name, input.timeoutMs ?? 0);
        controller.abort(error);
        resolve({ ok: false, error });
      },
      (error: unknown) => {
        end();
        resolve({ ok: false, error });
      },
    );
    if (controller.aborted) resolve({ ok: false, error: controller.reason });
    else controller.onAbort(reason => resolve({ ok: false, error: reason }));
  });
  const result = await outcome;
  controller.onAbort(null);
  if (timer) clearTimeout(timer);
  // Assigned by the handler's ctx.progress (TypeScript cannot see the closure assign it).
  const reported = progress as ProgressThrottle | null;
  if (reported) {
    Object.assign(result, reported.unsent());
    reported.stop();
  }
  if (!settled) {
    // The attempt is over but the handler is not: it ignores ctx.signal. Report it until it ends.
    overrunning = true;
    metrics.overrunning.inc();
    input.logger().warn('The handler is still running after its attempt ended (it ignores ctx.signal); its outcome will be discarded', {
      reason: controller.reason instanceof Error ? controller.reason.name : String(controller.reason),
    });
  }
  return result;
}

/** Serialises a handler's return value once, checking it is JSON and within the size cap. */
export function serialiseResult(task: string, value: unknown, maxBytes: number): { ok: true; json: string } | { ok: false; error: Error } {
  let json: string;
  try {
    json = `{"result":${JSON.stringify(value === undefined ? null : value) ?? 'null'}}`;
  } catch (err) {
    return { ok: false, error: new ResultNotSerializableError(task, err) };
  }
  const bytes = Buffer.byteLength(json);
  if (bytes - 11 > maxBytes) return { ok: false, error: new ResultTooLargeError(task, bytes - 11, maxBytes) };
  return { ok: true, json };
}

/** Progress writes at most once per interval; the latest value always wins and is never lost. */
class ProgressThrottle {
  readonly #send: (value: unknown) => Promise<void>;
  readonly #intervalMs: number;
  readonly #logger: () => Logger;
  #lastSent = 0;
  #pending: { value: unknown } | null = null;
  #timer: NodeJS.Timeout | null = null;
  #stopped = false;

  constructor(send: (value: unknown) => Promise<void>, intervalMs: number, logger: () => Logger) {
    this.#send = send;
    this.#intervalMs = intervalMs;
    this.#logger = logger;
  }

  /** Validates at once (a bad value throws to the handler); the write itself never blocks it. */
  report(value: unknown): Promise<void> {
    let json: string | undefined;
    try {
      json = JSON.stringify(value);
    } catch {
      json = undefined;
    }
    if (json === undefined || (typeof value !== 'number' && (typeof value !== 'object' || value === null))) {
      return Promise.reject(new TasklineError('PROGRESS_INVALID', 'ctx.progress() takes a number or a plain JSON object.'));
    }
    if (Buffer.byteLength(json) > MAX_PROGRESS_BYTES) {
      return Promise.reject(new TasklineError('PROGRESS_TOO_LARGE', `ctx.progress() values are limited to ${MAX_PROGRESS_BYTES} bytes of JSON; report a summary.`));
    }
    if (this.#stopped) return Promise.resolve();
    this.#pending = { value: JSON.parse(json) as unknown };
    const wait = this.#lastSent + this.#intervalMs - Date.now();
    if (wait <= 0) this.#flush();
    else this.#timer ??= setTimeout(() => this.#flush(), wait);
    return Promise.resolve();
  }

  #flush(): void {
    this.#timer = null;
    const pending = this.#pending;
    if (!pending || this.#stopped) return;
    this.#pending = null;
    this.#lastSent = Date.now();
    this.#send(pending.value).catch((err: unknown) => this.#logger().warn('Could not store progress', { error: err }));
  }

  /** The value reported but not yet sent, to store with the outcome. */
  unsent(): { progress?: unknown } {
    return this.#pending ? { progress: this.#pending.value } : {};
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
