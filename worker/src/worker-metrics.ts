import { Gauge, type Counter, type Histogram, type Registry } from 'prom-client';
import { getOrCreateCounter, getOrCreateGauge, getOrCreateHistogram } from '@taskline/shared/process';

/** What a finished attempt counts as in `taskline_jobs_total`. */
export type JobOutcome = 'success' | 'failure' | 'retry' | 'revoked';

/** Job counts of one queue, by BullMQ state. */
export type QueueCounts = Record<string, number>;

/** Reads queue depths when Prometheus scrapes; one per worker (several may share a registry in tests). */
export type QueueDepthSource = () => Promise<Array<{ queue: string; counts: QueueCounts }>>;

const QUEUE_STATES = ['waiting', 'active', 'delayed', 'failed', 'completed', 'paused'] as const;
const depthSources = new WeakMap<Registry, Set<QueueDepthSource>>();

/**
 * The worker's metrics. Names and labels are a contract (alerts and dashboards use them):
 * taskline_jobs_total{task,queue,outcome}, taskline_job_duration_seconds{task,queue},
 * taskline_job_latency_seconds{queue}, taskline_queue_jobs{queue,state},
 * taskline_worker_active_jobs{queue}, taskline_worker_ready.
 */
export class WorkerMetrics {
  readonly jobs: Counter<'task' | 'queue' | 'outcome'>;
  readonly duration: Histogram<'task' | 'queue'>;
  readonly latency: Histogram<'queue'>;
  readonly active: Gauge<'queue'>;
  readonly overrunning: Gauge<'queue'>;
  readonly refusedWrites: Counter<'queue' | 'reason'>;
  readonly settled: Counter<'queue' | 'outcome'>;
  readonly ready: Gauge;
  readonly #registry: Registry;

  constructor(registry: Registry) {
    this.#registry = registry;
    this.jobs = getOrCreateCounter(registry, {
      name: 'taskline_jobs_total',
      help: 'Finished job attempts by outcome (success, failure, retry, revoked).',
      labelNames: ['task', 'queue', 'outcome'],
    });
    this.duration = getOrCreateHistogram(registry, {
      name: 'taskline_job_duration_seconds',
      help: 'Time a handler ran, per attempt.',
      labelNames: ['task', 'queue'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    });
    this.latency = getOrCreateHistogram(registry, {
      name: 'taskline_job_latency_seconds',
      help: 'Time from enqueue (or the end of the requested delay) to the first start of a job.',
      labelNames: ['queue'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60],
    });
    this.active = getOrCreateGauge(registry, {
      name: 'taskline_worker_active_jobs',
      help: 'Jobs this worker process is running now.',
      labelNames: ['queue'],
    });
    this.overrunning = getOrCreateGauge(registry, {
      name: 'taskline_worker_overrunning_handlers',
      help: 'Handlers still running after their attempt ended (time limit, revoke or shutdown) because they ignore ctx.signal.',
      labelNames: ['queue'],
    });
    this.refusedWrites = getOrCreateCounter(registry, {
      name: 'taskline_result_writes_refused_total',
      help: 'Outcomes not stored because the record was already final (reason=final) or a newer delivery owned the job (reason=stale).',
      labelNames: ['queue', 'reason'],
    });
    this.settled = getOrCreateCounter(registry, {
      name: 'taskline_jobs_settled_total',
      help: 'Jobs the broker failed on its own whose record was made to agree (outcome=failure), or completed jobs removed from the failed set (outcome=conflict).',
      labelNames: ['queue', 'outcome'],
    });
    this.ready = getOrCreateGauge(registry, {
      name: 'taskline_worker_ready',
      help: '1 while the worker consumes (connections healthy, not draining), else 0.',
    });
    ensureQueueGauge(registry);
  }

  /** Adds a source for `taskline_queue_jobs`; returns its removal. */
  addDepthSource(source: QueueDepthSource): () => void {
    const sources = depthSources.get(this.#registry) ?? new Set<QueueDepthSource>();
    depthSources.set(this.#registry, sources);
    sources.add(source);
    return () => sources.delete(source);
  }
}

function ensureQueueGauge(registry: Registry): void {
  if (registry.getSingleMetric('taskline_queue_jobs')) return;
  new Gauge({
    name: 'taskline_queue_jobs',
    help: 'Jobs in each queue by state, read from the broker at scrape time (cached briefly). Every worker exports the same value: aggregate with max by (queue, state), never sum.',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const source of depthSources.get(registry) ?? []) {
        for (const { queue, counts } of await source()) {
          for (const state of QUEUE_STATES) this.set({ queue, state }, counts[state] ?? 0);
        }
      }
    },
  });
}

/** Wraps a depth reader with a short cache so frequent scrapes cost one broker read. */
export function cachedDepthSource(read: QueueDepthSource, ttlMs: number): QueueDepthSource {
  let cached: { at: number; value: Promise<Array<{ queue: string; counts: QueueCounts }>> } | null = null;
  return () => {
    const now = Date.now();
    if (!cached || now - cached.at > ttlMs) {
      const value = read().catch(() => []);
      cached = { at: now, value };
    }
    return cached.value;
  };
}

export { QUEUE_STATES };
