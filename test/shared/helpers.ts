import { PassThrough } from 'node:stream';
import { createConnections, createLogger, type ConnectionOptions, type CreateConnectionsOptions, type TasklineConnections } from '@taskline/shared';
import type { RunningRedis } from '../harness/index.js';

/** Collects every log line a logger writes, for secret and message assertions. */
export function captureLogs(component = 'test'): { logger: ReturnType<typeof createLogger>; lines: string[] } {
  const lines: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => lines.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
  return { logger: createLogger({ component, format: 'json', level: 'debug', stream }), lines };
}

/** Connection options pointing both services at the given servers, through the same resolver as env. */
export function envFor(broker: RunningRedis, backend: RunningRedis = broker): Record<string, string> {
  return { ...broker.env('REDIS_'), ...backend.env('RESULT_REDIS_') };
}

const open = new Set<TasklineConnections>();

/** createConnections that the suite's afterEach closes. */
export function track(init: CreateConnectionsOptions): TasklineConnections {
  const connections = createConnections(init);
  open.add(connections);
  return connections;
}

export async function closeTracked(): Promise<void> {
  for (const c of open) await c.close();
  open.clear();
}

/** Runs `fn`, returning its error and how long it took to fail. */
export async function failure(fn: () => Promise<unknown>): Promise<{ error: Error & { code?: string }; ms: number }> {
  const started = performance.now();
  try {
    await fn();
  } catch (error) {
    return { error: error as Error & { code?: string }, ms: performance.now() - started };
  }
  throw new Error('expected a failure, but it succeeded');
}

export type { ConnectionOptions };
