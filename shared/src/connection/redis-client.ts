import type { Redis, RedisOptions } from 'ioredis';
import type { ResolvedConnectionOptions, ResolvedEndpoint } from './config.js';
import { SafeConnector } from './safe-connector.js';
import type { TlsContextProvider } from './tls-context.js';

/**
 * One ioredis client as a RedisService makes it: its options, the state the service keeps about
 * it, the wrapping that tells the service when BullMQ closes or duplicates it, and its close.
 */

/** How a process uses Redis: decides whether commands wait through outages or fail fast. */
export type ProcessRole = 'producer' | 'worker' | 'scheduler' | 'cli';

/** What a connection is for; shown in `CLIENT LIST` as part of its name. */
export type Purpose = 'shared' | 'dedicated' | 'bullmq';

export interface ClientState {
  established: boolean;
  /** Lost its connection after having been ready. */
  interrupted: boolean;
  /** disconnect() or quit() was called: never hand it out again (its status lags). */
  closing: boolean;
  holdsSlot: boolean;
  lastError: unknown;
  connectingAt: number;
}

export function newClientState(holdsSlot: boolean): ClientState {
  return { established: false, interrupted: false, closing: false, holdsSlot, lastError: undefined, connectingAt: 0 };
}

/** The ioredis options of one connection (the service adds the retry strategy). */
export function clientOptions(
  init: { endpoint: ResolvedEndpoint; settings: ResolvedConnectionOptions; role: ProcessRole; component: string; tls: TlsContextProvider | null },
  purpose: Purpose,
  extra: Partial<RedisOptions>,
): RedisOptions {
  const e = init.endpoint;
  const s = init.settings;
  const waitsThroughOutages = init.role === 'worker' || init.role === 'scheduler';
  return {
    host: e.host,
    port: e.port,
    db: e.db,
    ...(e.username ? { username: e.username } : {}),
    ...(e.password ? { password: e.password.reveal() } : {}),
    ...(init.tls ? { tls: init.tls.ioredisOptions() } : {}),
    connectionName: `taskline:${init.component}:${e.service}:${purpose}`,
    connectTimeout: s.connectTimeoutMs,
    ...(s.commandTimeoutMs > 0 && purpose === 'shared' && !waitsThroughOutages ? { commandTimeout: s.commandTimeoutMs } : {}),
    // Producers fail fast after `retries` reconnect attempts; workers and the beat wait for the
    // broker. Result-backend commands always fail fast: the result writer's own retry loop
    // and its deadline (RESULT_WRITE_DEADLINE_MS) decide, rather than a queue without end.
    maxRetriesPerRequest: waitsThroughOutages && e.service === 'broker' ? null : s.retries,
    enableReadyCheck: true,
    Connector: SafeConnector,
    lazyConnect: true,
    ...extra,
  };
}

/**
 * Marks the client `closing` when anyone (BullMQ included) disconnects or quits it, and routes its
 * `duplicate()` (BullMQ's blocking connections) to `duplicate`, so those are counted too.
 * Configurable and writable, because BullMQ wraps the client in a Proxy, which must be free to
 * return its own value.
 */
export function trackClient(client: Redis, state: ClientState, duplicate: (override?: Partial<RedisOptions>) => Redis): void {
  const define = (name: 'duplicate' | 'disconnect' | 'quit', value: unknown): void => {
    Object.defineProperty(client, name, { configurable: true, writable: true, value });
  };
  define('duplicate', duplicate);
  const disconnect = client.disconnect.bind(client);
  define('disconnect', (reconnect?: boolean) => {
    if (!reconnect) state.closing = true;
    return disconnect(reconnect);
  });
  const quit = client.quit.bind(client);
  define('quit', (...args: Parameters<Redis['quit']>) => {
    state.closing = true;
    return quit(...args);
  });
}

/**
 * QUIT, then cut the socket if the server has not hung up within `graceMs`. Cut means destroyed:
 * ioredis' own disconnect() waits another `disconnectTimeout` (2 s) for a server that does not answer.
 */
export async function quitWithin(client: Redis, graceMs: number): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  const ended = new Promise<void>(resolve => client.once('end', () => resolve()));
  client.quit().catch(() => client.disconnect());
  const timer = setTimeout(() => {
    client.disconnect();
    client.stream?.destroy();
  }, graceMs);
  await ended;
  clearTimeout(timer);
}
