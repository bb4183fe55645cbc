import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * One prom-client registry per process. Every taskline metric is created through
 * `getOrCreate*` so a component built twice in one process (tests) reuses its metrics.
 */
export function createMetricsRegistry(options: { defaultMetrics?: boolean; labels?: Record<string, string> } = {}): Registry {
  const registry = new Registry();
  if (options.labels) registry.setDefaultLabels(options.labels);
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry }); // stock names (process_*, nodejs_*): stock dashboards expect them
  return registry;
}

type Config<T extends string> = { name: string; help: string; labelNames?: readonly T[] };

export function getOrCreateCounter<T extends string>(registry: Registry, config: Config<T>): Counter<T> {
  return (registry.getSingleMetric(config.name) as Counter<T> | undefined) ?? new Counter<T>({ ...config, registers: [registry] });
}

export function getOrCreateGauge<T extends string>(registry: Registry, config: Config<T>): Gauge<T> {
  return (registry.getSingleMetric(config.name) as Gauge<T> | undefined) ?? new Gauge<T>({ ...config, registers: [registry] });
}

export function getOrCreateHistogram<T extends string>(
  registry: Registry,
  config: Config<T> & { buckets: number[] },
): Histogram<T> {
  return (registry.getSingleMetric(config.name) as Histogram<T> | undefined) ?? new Histogram<T>({ ...config, registers: [registry] });
}

/** The connection package's metrics. Names are part of the public contract (alerts use them). */
export class ConnectionMetrics {
  readonly poolConnections: Gauge<'service' | 'state'>;
  readonly poolWaiting: Gauge<'service'>;
  readonly poolMax: Gauge<'service'>;
  readonly acquireWait: Histogram<'service'>;
  readonly poolExhausted: Counter<'service'>;
  readonly tlsHandshake: Histogram<'service'>;
  readonly connectionErrors: Counter<'service' | 'kind'>;
  readonly certificateExpiry: Gauge<'service' | 'certificate'>;
  readonly up: Gauge<'service'>;
  readonly pingLatency: Gauge<'service'>;

  constructor(readonly registry: Registry) {
    this.poolConnections = getOrCreateGauge(registry, {
      name: 'taskline_redis_pool_connections',
      help: 'Redis connections held by this process, by state (in_use: leased or multiplexed; idle: pooled, free).',
      labelNames: ['service', 'state'],
    });
    this.poolWaiting = getOrCreateGauge(registry, {
      name: 'taskline_redis_pool_waiting',
      help: 'Callers waiting for a Redis connection.',
      labelNames: ['service'],
    });
    this.poolMax = getOrCreateGauge(registry, {
      name: 'taskline_redis_pool_max',
      help: 'Bound on Redis connections per service (REDIS_MAX_CONNECTIONS).',
      labelNames: ['service'],
    });
    this.acquireWait = getOrCreateHistogram(registry, {
      name: 'taskline_redis_pool_acquire_wait_seconds',
      help: 'Time spent waiting for a pooled Redis connection.',
      labelNames: ['service'],
      buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30],
    });
    this.poolExhausted = getOrCreateCounter(registry, {
      name: 'taskline_redis_pool_exhausted_total',
      help: 'Acquires that failed because every connection stayed in use past the acquire timeout, or the wait queue was full.',
      labelNames: ['service'],
    });
    this.tlsHandshake = getOrCreateHistogram(registry, {
      name: 'taskline_redis_tls_handshake_seconds',
      help: 'Time from starting a connection to a verified TLS session (TCP connect + handshake).',
      labelNames: ['service'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    });
    this.connectionErrors = getOrCreateCounter(registry, {
      name: 'taskline_redis_connection_errors_total',
      help: 'Redis connection errors by kind (network, auth, tls, protocol).',
      labelNames: ['service', 'kind'],
    });
    this.certificateExpiry = getOrCreateGauge(registry, {
      name: 'taskline_redis_certificate_expiry_timestamp_seconds',
      help: 'Expiry (Unix time) of the server certificate seen (peer) and of the local CA and client certificate files.',
      labelNames: ['service', 'certificate'],
    });
    this.up = getOrCreateGauge(registry, {
      name: 'taskline_redis_up',
      help: '1 if the last health check of this Redis service succeeded, else 0.',
      labelNames: ['service'],
    });
    this.pingLatency = getOrCreateGauge(registry, {
      name: 'taskline_redis_ping_latency_seconds',
      help: 'Round-trip time of the last health-check PING.',
      labelNames: ['service'],
    });
  }
}
