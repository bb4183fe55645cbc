import type { Counter, Histogram, Registry } from 'prom-client';
import { getOrCreateCounter, getOrCreateHistogram } from '@taskline/shared';

/** Why an enqueue failed, as the `reason` label. */
export type EnqueueErrorReason = 'invalid' | 'too_large' | 'connection' | 'other';

/** The producer's metrics; the names are a public contract (dashboards and alerts use them). */
export class ProducerMetrics {
  readonly enqueued: Counter<'task' | 'queue'>;
  readonly enqueueErrors: Counter<'reason'>;
  readonly httpRequests: Counter<'route' | 'status'>;
  readonly httpDuration: Histogram<'route'>;

  constructor(registry: Registry) {
    this.enqueued = getOrCreateCounter(registry, {
      name: 'taskline_jobs_enqueued_total',
      help: 'Jobs added to the broker (deduplicated repeats are not counted).',
      labelNames: ['task', 'queue'],
    });
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
