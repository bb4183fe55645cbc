/**
 * `pnpm bench:connections` — what a pooled request saves over a fresh TLS connection per request.
 * Both sides over TLS 1.3 against one throwaway redis-server, measured in the same run.
 * Prints one JSON line: fresh_ms, pooled_ms, pooled_lease_ms (median per request), ratio.
 */
import { createConnections, resolveConnectionOptions } from '@taskline/shared';
import { startRedis } from '../harness/index.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 300);

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await fn();
  return performance.now() - started;
}

const server = await startRedis({ tls: true });
const connections = createConnections({
  options: resolveConnectionOptions({ healthCheckIntervalMs: 0 }, server.env('REDIS_')),
  role: 'cli',
  component: 'bench',
});
try {
  await connections.connect();
  const shared = connections.broker.client();
  const fresh: number[] = [];
  const pooled: number[] = [];
  const pooledLease: number[] = [];
  for (let i = 0; i < 20; i++) await shared.ping(); // warm-up
  // Phases run one after another so no connection of one phase serves another.
  for (let i = 0; i < ROUNDS; i++) {
    // A fresh TLS connection per request: a new connection, PING, close it.
    fresh.push(
      await time(async () => {
        const lease = await connections.broker.lease();
        await lease.client.ping();
        lease.client.disconnect();
        lease.release();
      }),
    );
  }
  // The multiplexed pooled connection.
  for (let i = 0; i < ROUNDS; i++) pooled.push(await time(() => shared.ping()));
  // A dedicated connection taken from the idle pool and given back.
  for (let i = 0; i < ROUNDS; i++) {
    pooledLease.push(
      await time(async () => {
        const lease = await connections.broker.lease();
        await lease.client.ping();
        lease.release();
      }),
    );
  }
  const freshMs = median(fresh);
  const pooledMs = median(pooled);
  const result = {
    bench: 'connections',
    rounds: ROUNDS,
    tls: 'TLSv1.3',
    fresh_ms: Number(freshMs.toFixed(3)),
    pooled_ms: Number(pooledMs.toFixed(3)),
    pooled_lease_ms: Number(median(pooledLease).toFixed(3)),
    ratio: Number((freshMs / pooledMs).toFixed(1)),
    target_ratio: 25,
    target_met: freshMs / pooledMs >= 25,
  };
  console.log(JSON.stringify(result));
} finally {
  await connections.close();
  await server.stop();
}
