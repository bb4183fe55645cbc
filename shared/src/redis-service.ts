import { connect as netConnect } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Redis, type RedisOptions } from 'ioredis';
import type { ResolvedConnectionOptions, ResolvedEndpoint } from './config.js';
import { ClosedError, ConnectionError, SERVICE_LABEL, type ServiceRole } from './errors.js';
import { errorKind, isFatalConnectionError, toConnectionError, type ConnectionTarget } from './error-mapping.js';
import type { ConnectionSlots } from './connection-pool.js';
import type { ConnectionMetrics } from './metrics.js';
import type { Logger } from './logger.js';
import { backoffDelay } from './retry-policy.js';
import { SafeConnector } from './safe-connector.js';
import { ScriptPolicy } from './script-policy.js';
import { TlsContextProvider } from './tls-context.js';

/** How a process uses Redis: decides whether commands wait through outages or fail fast. */
export type ProcessRole = 'producer' | 'worker' | 'scheduler' | 'cli';

/** What a connection is for; shown in `CLIENT LIST` as part of its name. */
type Purpose = 'shared' | 'dedicated' | 'bullmq';

/** A dedicated connection lent for blocking commands; give it back with `release()`. */
export interface Lease {
  readonly client: Redis;
  /** Returns the connection to the pool (or closes it if it broke). Safe to call twice. */
  release(): void;
}

/** What `checkHealth()` reports for one Redis service. */
export interface ConnectionHealth {
  service: ServiceRole;
  label: string;
  host: string;
  port: number;
  ok: boolean;
  latencyMs: number | null;
  tls: {
    protocol: string | null;
    cipher: string | null;
    peerCertificateExpires: string | null;
    peerCertificateDaysLeft: number | null;
  } | null;
  /** The one-sentence cause and fix, when not ok. */
  error: string | null;
  code: string | null;
}

const IDLE_CLOSE_MS = 30_000;
const PLAINTEXT_PROBE_AFTER_MS = 1000;
const DAY_MS = 86_400_000;

interface ClientState {
  established: boolean;
  /** Lost its connection after having been ready. */
  interrupted: boolean;
  /** disconnect() or quit() was called: never hand it out again (its status lags). */
  closing: boolean;
  holdsSlot: boolean;
  lastError: unknown;
  connectingAt: number;
}

/**
 * All connections of one process to one Redis service (the broker or the result backend):
 * one multiplexed connection for plain commands, leased dedicated connections for blocking
 * commands, and BullMQ's duplicates, every one of them counted against the service's bound.
 */
export class RedisService {
  readonly service: ServiceRole;
  readonly endpoint: ResolvedEndpoint;
  readonly target: ConnectionTarget;
  readonly #settings: ResolvedConnectionOptions;
  readonly #role: ProcessRole;
  readonly #component: string;
  readonly #slots: ConnectionSlots;
  readonly #metrics: ConnectionMetrics;
  readonly #logger: Logger;
  readonly #tls: TlsContextProvider | null;
  readonly #scripts: ScriptPolicy;
  readonly #clients = new Set<Redis>();
  readonly #states = new WeakMap<Redis, ClientState>();
  readonly #idle: Array<{ client: Redis; timer: NodeJS.Timeout }> = [];
  #shared: Redis | null = null;
  #reserved = 0;
  #closing = false;

  constructor(deps: {
    endpoint: ResolvedEndpoint;
    settings: ResolvedConnectionOptions;
    role: ProcessRole;
    component: string;
    slots: ConnectionSlots;
    metrics: ConnectionMetrics;
    logger: Logger;
  }) {
    this.service = deps.endpoint.service;
    this.endpoint = deps.endpoint;
    this.#settings = deps.settings;
    this.#role = deps.role;
    this.#component = deps.component;
    this.#slots = deps.slots;
    this.#metrics = deps.metrics;
    this.#logger = deps.logger;
    this.target = {
      service: this.service,
      host: deps.endpoint.host,
      port: deps.endpoint.port,
      tls: deps.endpoint.tls !== null,
      servername: deps.endpoint.tls?.servername,
    };
    this.#tls = deps.endpoint.tls ? new TlsContextProvider(this.service, deps.endpoint.tls) : null;
    this.#scripts = new ScriptPolicy({ loading: deps.settings.scriptLoading, waitMs: deps.settings.scriptWaitMs, target: this.target, logger: deps.logger });
    this.#reportLocalCertificates();
  }

  /** Connections open to this service, for tests and `health`. */
  get openConnections(): number {
    return this.#clients.size;
  }

  /**
   * The multiplexed connection for plain (non-blocking) commands. It is opened by `connect()`;
   * calling this first opens it lazily.
   */
  client(): Redis {
    if (this.#closing) throw new ClosedError(`The ${SERVICE_LABEL[this.service]} connections`);
    if (this.#shared && this.#shared.status !== 'end') return this.#shared;
    if (!this.#slots.tryTake()) throw this.#exhausted();
    this.#shared = this.#create('shared', {}, true);
    return this.#shared;
  }

  /** Opens the multiplexed connection; rejects within seconds on errors retrying cannot fix. */
  async connect(): Promise<void> {
    await this.#waitReady(this.client());
  }

  /**
   * The connection to give BullMQ (`connection:`). BullMQ duplicates it for blocking reads;
   * `blockingConnections` slots are reserved first (waiting in line if need be) so those
   * duplicates stay within the bound.
   */
  async bullmqConnection(blockingConnections = 0): Promise<Redis> {
    for (let i = 0; i < blockingConnections; i++) {
      await this.#slots.take();
      this.#reserved += 1;
    }
    const client = this.client();
    await this.#waitReady(client);
    return client;
  }

  /** Lends a dedicated connection for a blocking command, waiting in line if all are in use. */
  async lease(): Promise<Lease> {
    if (this.#closing) throw new ClosedError(`The ${SERVICE_LABEL[this.service]} connections`);
    let client: Redis | undefined;
    while (!client) {
      const idle = this.#idle.pop();
      if (!idle) break;
      clearTimeout(idle.timer);
      if (this.#usable(idle.client)) client = idle.client;
      else idle.client.disconnect();
    }
    this.#slots.setIdle(this.#idle.length);
    if (!client) {
      await this.#slots.take();
      client = this.#create('dedicated', { maxRetriesPerRequest: null }, true);
      try {
        await this.#waitReady(client);
      } catch (err) {
        client.disconnect();
        throw err;
      }
    }
    let released = false;
    const leased = client;
    return {
      client: leased,
      release: () => {
        if (released) return;
        released = true;
        this.#giveBack(leased);
      },
    };
  }

  #giveBack(client: Redis): void {
    // Someone waits for a slot: close this connection so its slot passes to them in FIFO order.
    if (this.#closing || !this.#usable(client) || this.#slots.waiting > 0) {
      client.disconnect();
      return;
    }
    const timer = setTimeout(() => {
      this.#dropIdle(client);
      client.disconnect();
    }, IDLE_CLOSE_MS);
    timer.unref();
    this.#idle.push({ client, timer });
    this.#slots.setIdle(this.#idle.length);
  }

  #usable(client: Redis): boolean {
    return client.status === 'ready' && this.#states.get(client)?.closing !== true;
  }

  /** An idle connection that closed (server timeout, network) leaves the pool. */
  #dropIdle(client: Redis): void {
    const index = this.#idle.findIndex(entry => entry.client === client);
    if (index < 0) return;
    const [entry] = this.#idle.splice(index, 1);
    if (entry) clearTimeout(entry.timer);
    this.#slots.setIdle(this.#idle.length);
  }

  #exhausted(): ConnectionError {
    return new ConnectionError(
      `All ${this.#slots.max} ${SERVICE_LABEL[this.service]} connections of this process are in use; raise REDIS_MAX_CONNECTIONS or run fewer workers/queues per process.`,
      { code: 'POOL_EXHAUSTED', kind: 'pool', retryable: true, service: this.service, host: this.target.host, port: this.target.port },
    );
  }

  #options(purpose: Purpose, extra: Partial<RedisOptions>): RedisOptions {
    const e = this.endpoint;
    const s = this.#settings;
    const waitsThroughOutages = this.#role === 'worker' || this.#role === 'scheduler';
    return {
      host: e.host,
      port: e.port,
      db: e.db,
      ...(e.username ? { username: e.username } : {}),
      ...(e.password ? { password: e.password.reveal() } : {}),
      ...(this.#tls ? { tls: this.#tls.ioredisOptions() } : {}),
      connectionName: `taskline:${this.#component}:${this.service}:${purpose}`,
      connectTimeout: s.connectTimeoutMs,
      ...(s.commandTimeoutMs > 0 && purpose === 'shared' && !waitsThroughOutages ? { commandTimeout: s.commandTimeoutMs } : {}),
      // Producers fail fast after `retries` reconnect attempts; workers and the beat wait for the
      // broker. Result-backend commands always fail fast: the result writer's own retry loop
      // and its deadline (RESULT_WRITE_DEADLINE_MS) decide, rather than a queue without end.
      maxRetriesPerRequest: waitsThroughOutages && this.service === 'broker' ? null : s.retries,
      enableReadyCheck: true,
      Connector: SafeConnector,
      lazyConnect: true,
      ...extra,
    };
  }

  /** Makes one counted connection. The caller has taken its slot. */
  #create(purpose: Purpose, extra: Partial<RedisOptions>, holdsSlot: boolean): Redis {
    const state: ClientState = { established: false, interrupted: false, closing: false, holdsSlot, lastError: undefined, connectingAt: 0 };
    const options = this.#options(purpose, extra);
    options.retryStrategy = (times: number) => {
      if (this.#closing) return null;
      if (isFatalConnectionError(state.lastError)) return null;
      if (!state.established && times > this.#settings.retries) return null;
      return backoffDelay(times, { baseMs: this.#settings.retryBaseMs, capMs: this.#settings.retryCapMs });
    };
    const client = new Redis(options);
    // Scripts (ours and BullMQ's) go out as EVALSHA; REDIS_SCRIPTS decides what NOSCRIPT does.
    this.#scripts.attach(client);
    this.#states.set(client, state);
    this.#clients.add(client);
    // BullMQ duplicates this connection for its blocking reads: count those too. Configurable and
    // writable, because BullMQ wraps the client in a Proxy, which must be free to return its own value.
    Object.defineProperty(client, 'duplicate', {
      configurable: true,
      writable: true,
      value: (override?: Partial<RedisOptions>) => this.#duplicate(override),
    });
    const disconnect = client.disconnect.bind(client);
    Object.defineProperty(client, 'disconnect', {
      configurable: true,
      writable: true,
      value: (reconnect?: boolean) => {
        if (!reconnect) state.closing = true;
        return disconnect(reconnect);
      },
    });
    const quit = client.quit.bind(client);
    Object.defineProperty(client, 'quit', {
      configurable: true,
      writable: true,
      value: (...args: Parameters<Redis['quit']>) => {
        state.closing = true;
        return quit(...args);
      },
    });
    client.on('connecting', () => {
      state.closing = false;
      state.connectingAt = performance.now();
      this.#clients.add(client);
      if (!state.holdsSlot && !this.#closing) {
        // A client BullMQ disconnected and reconnects: it counts again.
        state.holdsSlot = this.#slots.tryTake();
      }
    });
    client.on('connect', () => {
      if (this.#tls && state.connectingAt > 0) {
        this.#metrics.tlsHandshake.observe({ service: this.service }, (performance.now() - state.connectingAt) / 1000);
        this.#reportPeerCertificate(client);
      }
    });
    client.on('close', () => {
      this.#dropIdle(client);
      if (!state.established || this.#closing || state.interrupted) return;
      state.interrupted = true;
      // A dropped connection is a network error even when the socket closed cleanly.
      if (state.lastError === undefined) this.#metrics.connectionErrors.inc({ service: this.service, kind: 'network' });
    });
    client.on('ready', () => {
      if (state.interrupted) {
        state.interrupted = false;
        this.#logger.info(`Reconnected to the ${SERVICE_LABEL[this.service]}`, { service: this.service, purpose });
      }
      state.established = true;
      state.lastError = undefined;
    });
    client.on('error', (err: unknown) => {
      const first = state.lastError === undefined;
      state.lastError = err;
      this.#metrics.connectionErrors.inc({ service: this.service, kind: errorKind(err) });
      if (first && !this.#closing) {
        const mapped = toConnectionError(err, this.target);
        this.#logger.warn(mapped.message, { service: this.service, purpose, code: mapped.code, fatal: !mapped.retryable });
      }
    });
    client.on('end', () => {
      this.#clients.delete(client);
      if (state.holdsSlot) {
        state.holdsSlot = false;
        this.#slots.give();
      }
    });
    return client;
  }

  #duplicate(override?: Partial<RedisOptions>): Redis {
    if (this.#closing) throw new ClosedError(`The ${SERVICE_LABEL[this.service]} connections`);
    if (this.#reserved > 0) this.#reserved -= 1;
    else if (!this.#slots.tryTake()) throw this.#exhausted();
    const { connectionName, ...rest } = override ?? {};
    const client = this.#create('bullmq', { ...rest, maxRetriesPerRequest: null, lazyConnect: false }, true);
    if (connectionName) this.#logger.debug('BullMQ opened a blocking connection', { service: this.service, connectionName });
    return client;
  }

  /** Resolves when the client is ready; rejects with one clear sentence when it gives up. */
  async #waitReady(client: Redis): Promise<void> {
    if (client.status === 'ready') return;
    const state = this.#states.get(client);
    const outcome = new Promise<void>((resolve, reject) => {
      const cleanup = (): void => {
        client.off('ready', onReady);
        client.off('end', onEnd);
        client.off('error', onError);
      };
      const onReady = (): void => {
        cleanup();
        resolve();
      };
      const onError = (err: unknown): void => {
        if (isFatalConnectionError(err)) {
          cleanup();
          client.disconnect();
          reject(toConnectionError(err, this.target));
        }
      };
      const onEnd = (): void => {
        cleanup();
        reject(state?.lastError);
      };
      client.on('ready', onReady);
      client.on('end', onEnd);
      client.on('error', onError);
    });
    if (client.status === 'wait') client.connect().catch(() => undefined);
    // A plaintext Redis never answers a TLS hello (it waits for a newline): ask it in plaintext.
    const probe = this.#tls ? setTimeout(() => this.#probePlaintext(client), PLAINTEXT_PROBE_AFTER_MS) : null;
    try {
      await outcome;
    } catch (err) {
      throw await this.#explain(err);
    } finally {
      if (probe) clearTimeout(probe);
    }
  }

  #probePlaintext(client: Redis): void {
    if (client.status === 'ready' || client.status === 'end') return;
    speaksPlaintextRedis(this.target.host, this.target.port).then(plaintext => {
      if (!plaintext || client.status === 'ready') return;
      const state = this.#states.get(client);
      const err = Object.assign(new Error('plaintext server'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' });
      if (state) state.lastError = err;
      client.emit('error', err);
    }, () => undefined);
  }

  /** Maps a start-up failure; a plaintext client that was hung up on is checked for a TLS server. */
  async #explain(err: unknown): Promise<ConnectionError> {
    if (err !== undefined && isFatalConnectionError(err)) return toConnectionError(err, this.target);
    if (this.#tls) {
      // A TLS 1.3 server that wants a client certificate says so after the handshake; a client
      // that already wrote may see only a reset. A quiet, verified handshake hears the alert.
      const alert = this.#tls.settings.certFile === null ? await this.#quietTlsError() : undefined;
      return toConnectionError(alert !== undefined && isFatalConnectionError(alert) ? alert : (err ?? new Error('Connection is closed.')), this.target);
    }
    if (!this.#tls && (await this.#speaksTls())) {
      return toConnectionError(Object.assign(new Error('TLS server'), { code: 'PLAINTEXT_TO_TLS_SERVER' }), this.target);
    }
    return toConnectionError(err ?? new Error('Connection is closed.'), this.target);
  }

  /** A verified TLS connection that sends nothing: the error the server answers it with, if any. */
  #quietTlsError(): Promise<unknown> {
    return new Promise(resolve => {
      const socket = tlsConnect({ host: this.target.host, port: this.target.port, ...this.#tls?.ioredisOptions() });
      const finish = (result: unknown): void => {
        clearTimeout(timer);
        socket.destroy();
        resolve(result);
      };
      const timer = setTimeout(() => finish(undefined), 1000);
      socket.on('error', (error: unknown) => finish(error));
      socket.once('close', () => finish(undefined));
    });
  }

  /**
   * Diagnostic only: does the server complete a TLS handshake? No data is sent and the socket
   * is closed at once, so skipping verification here cannot leak or accept anything.
   */
  #speaksTls(): Promise<boolean> {
    return new Promise(resolve => {
      const socket = tlsConnect({ host: this.target.host, port: this.target.port, rejectUnauthorized: false, timeout: 2000 });
      const finish = (result: boolean): void => {
        socket.destroy();
        resolve(result);
      };
      socket.once('secureConnect', () => finish(true));
      socket.on('error', () => finish(false));
      socket.once('timeout', () => finish(false));
    });
  }

  /** PINGs over the multiplexed connection and describes the TLS session. */
  async checkHealth(): Promise<ConnectionHealth> {
    const report: ConnectionHealth = {
      service: this.service,
      label: SERVICE_LABEL[this.service],
      host: this.target.host,
      port: this.target.port,
      ok: false,
      latencyMs: null,
      tls: null,
      error: null,
      code: null,
    };
    try {
      const client = this.client();
      // A connection that was up and is lost: the next reconnect attempt decides (its error, or
      // the last one while waiting to retry), so a readiness probe gets its 503 at once instead
      // of timing out while we wait up to 2 × the connect timeout.
      const state = this.#states.get(client);
      if (state?.interrupted && client.status === 'reconnecting' && state.lastError !== undefined) throw state.lastError;
      const ready = state?.interrupted ? readyOrError(client) : this.#waitReady(client);
      await withTimeout(ready, this.#settings.connectTimeoutMs * 2, 'connect');
      const started = performance.now();
      // A server that just died may not have been noticed yet: its close ends the PING at once.
      const loss = connectionLoss(client);
      try {
        await withTimeout(Promise.race([client.ping(), loss.lost]), this.#settings.connectTimeoutMs, 'PING');
      } finally {
        loss.cancel();
      }
      report.latencyMs = Math.round((performance.now() - started) * 100) / 100;
      report.ok = true;
      report.tls = this.#tls ? describeTls(client) : null;
      this.#metrics.pingLatency.set({ service: this.service }, report.latencyMs / 1000);
    } catch (err) {
      const mapped = toConnectionError(err, this.target);
      report.error = mapped.message;
      report.code = mapped.code;
    }
    this.#metrics.up.set({ service: this.service }, report.ok ? 1 : 0);
    return report;
  }

  #reportPeerCertificate(client: Redis): void {
    const tls = describeTls(client);
    if (tls.peerCertificateExpires) {
      this.#metrics.certificateExpiry.set({ service: this.service, certificate: 'peer' }, Date.parse(tls.peerCertificateExpires) / 1000);
    }
    this.#reportLocalCertificates();
  }

  #reportLocalCertificates(): void {
    for (const cert of this.#tls?.localCertificates() ?? []) {
      this.#metrics.certificateExpiry.set({ service: this.service, certificate: cert.kind }, cert.validTo.getTime() / 1000);
    }
  }

  /**
   * Closes every connection of this service: pooled idle ones, leased ones, BullMQ's duplicates
   * and the multiplexed one last. QUIT is given `graceMs`, then the sockets are cut.
   */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    for (const { timer } of this.#idle.splice(0)) clearTimeout(timer);
    this.#slots.setIdle(0);
    const clients = [...this.#clients].filter(c => c !== this.#shared);
    if (this.#shared) clients.push(this.#shared);
    for (const client of clients) {
      await quitWithin(client, graceMs);
      this.#clients.delete(client);
    }
    this.#shared = null;
    while (this.#reserved > 0) {
      this.#reserved -= 1;
      this.#slots.give();
    }
  }
}

function describeTls(client: Redis): NonNullable<ConnectionHealth['tls']> {
  const socket = client.stream as unknown as TLSSocket | undefined;
  const peer = typeof socket?.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  const expires = peer?.valid_to ? new Date(peer.valid_to) : null;
  return {
    protocol: typeof socket?.getProtocol === 'function' ? socket.getProtocol() : null,
    cipher: typeof socket?.getCipher === 'function' ? socket.getCipher().name : null,
    peerCertificateExpires: expires ? expires.toISOString() : null,
    peerCertificateDaysLeft: expires ? Math.floor((expires.getTime() - Date.now()) / DAY_MS) : null,
  };
}

async function quitWithin(client: Redis, graceMs: number): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  const ended = new Promise<void>(resolve => client.once('end', () => resolve()));
  client.quit().catch(() => client.disconnect());
  const timer = setTimeout(() => client.disconnect(), graceMs);
  await ended;
  clearTimeout(timer);
}

/** Diagnostic only: does a plaintext PING get a RESP answer (+PONG, -NOAUTH...)? */
function speaksPlaintextRedis(host: string, port: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = netConnect({ host, port });
    const finish = (result: boolean): void => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (chunk: Buffer) => finish(chunk[0] === 0x2b || chunk[0] === 0x2d));
    socket.on('error', () => finish(false));
  });
}

/** Rejects when the client reports an error or loses its connection; `cancel` removes the listeners. */
function connectionLoss(client: Redis): { lost: Promise<never>; cancel: () => void } {
  let cancel = (): void => undefined;
  const lost = new Promise<never>((_, reject) => {
    const onError = (err: unknown): void => {
      cancel();
      reject(err);
    };
    const onClose = (): void => {
      cancel();
      reject(Object.assign(new Error('the connection was lost'), { code: 'ECONNRESET' }));
    };
    client.once('error', onError);
    client.once('close', onClose);
    cancel = () => {
      client.off('error', onError);
      client.off('close', onClose);
    };
  });
  lost.catch(() => undefined);
  return { lost, cancel };
}

/** Resolves when the client is ready; rejects on its next error or end. */
function readyOrError(client: Redis): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const settle = (err?: unknown): void => {
      client.off('ready', onReady);
      client.off('error', onError);
      client.off('end', onEnd);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onReady = (): void => settle();
    const onError = (err: unknown): void => settle(err);
    const onEnd = (): void => settle(new Error('the connection was closed'));
    client.once('ready', onReady);
    client.once('error', onError);
    client.once('end', onEnd);
  });
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
