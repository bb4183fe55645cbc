// Redis connections of a producer during 10,000 concurrent enqueues (bounded by REDIS_MAX_CONNECTIONS).
import { createProducer } from '@taskline/producer';
import { resolveConnectionOptions } from '@taskline/shared';
import type { RunningRedis } from '../../harness/index.js';
import { PREFIX, quiet, type Servers } from '../lib.js';

async function connectionCount(server: RunningRedis): Promise<number> {
  const list = await server.cli('CLIENT', 'LIST');
  // Our own redis-cli connection is in the list too.
  return list.split('\n').filter(l => l.trim() && !l.includes('cmd=client|list')).length;
}

export async function connectionsUnderLoad(servers: Servers, concurrentEnqueues: number): Promise<Record<string, unknown>> {
  const connection = resolveConnectionOptions({ healthCheckIntervalMs: 0 }, servers.env);
  const producer = createProducer({ connection, env: servers.env, prefix: PREFIX, defaultQueue: 'bench-conn', logger: quiet });
  await producer.enqueue('add', { a: 1, b: 1 }); // opens its connections
  const before = { broker: await connectionCount(servers.broker), backend: await connectionCount(servers.backend) };
  let peakBroker = 0;
  let peakBackend = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peakBroker = Math.max(peakBroker, await connectionCount(servers.broker));
      peakBackend = Math.max(peakBackend, await connectionCount(servers.backend));
    }
  })();
  const started = performance.now();
  const results = await Promise.allSettled(Array.from({ length: concurrentEnqueues }, (_, i) => producer.enqueue('add', { a: i, b: 1 })));
  const elapsed = performance.now() - started;
  sampling = false;
  await sampler;
  await producer.close();
  return {
    bench: 'connections_under_load',
    concurrent_enqueues: concurrentEnqueues,
    succeeded: results.filter(r => r.status === 'fulfilled').length,
    elapsed_ms: Math.round(elapsed),
    broker_connections_before: before.broker,
    broker_connections_peak: peakBroker,
    backend_connections_before: before.backend,
    backend_connections_peak: peakBackend,
    bound_per_service: connection.maxConnections,
    bounded: peakBroker <= connection.maxConnections && peakBackend <= connection.maxConnections,
  };
}
