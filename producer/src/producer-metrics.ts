import type { Counter, Histogram, Registry } from 'prom-client';
import { ConnectionError, TasklineError } from '@taskline/shared';
import { getOrCreateCounter, getOrCreateHistogram } from '@taskline/shared/process';
import { PayloadTooLargeError, ValidationError } from './errors.js';

/** Why an enqueue failed, as the `reason` label. */
export type EnqueueErrorReason = 'invalid' | 'too_large' | 'connection' | 'other';

/** The `reason` an enqueue error is counted under. */
export function enqueueErrorReason(err: unknown): EnqueueErrorReason {
  if (err instanceof PayloadTooLargeError) return 'too_large';
  if (err instanceof ValidationError) return 'invalid';
  return err instanceof ConnectionError || !(err instanceof TasklineError) ? 'connection' : 'other';
}

/** Distinct `task` and `queue` label values kept per producer; later new ones count as `other`. */
export const MAX_TASK_LABELS = 200;
export const MAX_QUEUE_LABELS = 100;
/** The label value the overflow is counted under. */
export const OTHER_LABEL = 'other';

/**
 * Keeps the first `max` distinct values of a label and maps every later new one to `other`,
 * so callers naming ever new tasks or queues cannot grow the metric series without bound.
 */
export class LabelValueCap {
  readonly max: number;
  readonly #seen = new Set<string>();
  constructor(max: number) {
    this.max = max;
  }
  value(given: string): string {
    if (this.#seen.has(given)) return given;
    if (this.#seen.size >= this.max) return OTHER_LABEL;
    this.#seen.add(given);
    return given;
  }
}

/** `taskline_jobs_enqueued_total` with its `task` and `queue` values capped. */
export interface EnqueuedCounter {
  inc(labels: { task: string; queue: string }, value?: number): void;
}

/** The producer's metrics; the names are a public contract (dashboards and alerts use them). */
export class ProducerMetrics {
  readonly enqueued: EnqueuedCounter;
  readonly enqueueErrors: Counter<'reason'>;
  readonly httpRequests: Counter<'route' | 'status'>;
  readonly httpDuration: Histogram<'route'>;

  constructor(registry: Registry) {
    const enqueued = getOrCreateCounter(registry, {
      name: 'taskline_jobs_enqueued_total',
      help: `Jobs added to the broker (deduplicated repeats are not counted); past ${MAX_TASK_LABELS} tasks or ${MAX_QUEUE_LABELS} queues, new names count as "${OTHER_LABEL}".`,
      labelNames: ['task', 'queue'],
    });
    const tasks = new LabelValueCap(MAX_TASK_LABELS);
    const queues = new LabelValueCap(MAX_QUEUE_LABELS);
    this.enqueued = {
      inc: (labels, value = 1) => enqueued.inc({ task: tasks.value(labels.task), queue: queues.value(labels.queue) }, value),
    };
    this.enqueueErrors = getOrCreateCounter(registry, {
      name: 'taskline_enqueue_errors_total',
      help: 'Enqueues that failed, by reason (invalid, too_large, connection, other).',
      labelNames: ['reason'],
    });
    this.httpRequests = getOrCreateCounter(registry, {
      name: 'taskline_http_requests_total',
      help: 'Producer HTTP API requests by route and status code.',
      labelNames: ['route', 'status'],
    });
    this.httpDuration = getOrCreateHistogram(registry, {
      name: 'taskline_http_request_duration_seconds',
      help: 'Producer HTTP API request duration by route.',
      labelNames: ['route'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
    });
  }
}
