import { Redis, type RedisOptions } from 'ioredis';
import type { ResolvedConnectionOptions, ResolvedEndpoint } from './config.js';
import { ClosedError, PoolExhaustedError, SERVICE_LABEL, type ServiceName } from '../errors.js';
import { errorKind, isFatalConnectionError, toConnectionError, type ConnectionTarget } from './error-mapping.js';
import { explainStartFailure, probePlaintextLater } from './connection-diagnostics.js';
import { checkConnectionHealth, describeTls, type ConnectionHealth } from './connection-health.js';
import type { ConnectionSlots } from './connection-pool.js';
import type { ConnectionMetrics } from '../process/index.js';
import type { Logger } from '../process/index.js';
import { backoffDelay } from '../process/index.js';
import { ScriptPolicy } from './script-policy.js';
import { clientOptions, newClientState, quitWithin, trackClient, type ClientState, type ProcessRole, type Purpose } from './redis-client.js';
import { TlsContextProvider } from './tls-context.js';

export type { ConnectionHealth, ProcessRole };

/** A dedicated connection lent for blocking commands; give it back with `release()`. */
export interface LeasedConnection {
  readonly client: Redis;
  /** Returns the connection to the pool (or closes it if it broke). Safe to call twice. */
  release(): void;
}

const IDLE_CLOSE_MS = 30_000;

/**
 * All connections of one process to one Redis service (the broker or the result backend):
 * one multiplexed connection for plain commands, leased dedicated connections for blocking
 * commands, and BullMQ's duplicates, every one of them counted against the service's bound.
 */
export class RedisService {
  readonly service: ServiceName;
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
  async lease(): Promise<LeasedConnection> {
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
      if (this.#closing) {
        this.#slots.give();
        throw new ClosedError(`The ${SERVICE_LABEL[this.service]} connections`);
      }
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

  #exhausted(): PoolExhaustedError {
    return new PoolExhaustedError(this.service, this.#slots.max, null);
  }

  /** Makes one counted connection. The caller has taken its slot. */
  #create(purpose: Purpose, extra: Partial<RedisOptions>, holdsSlot: boolean): Redis {
    const state = newClientState(holdsSlot);
    const options = clientOptions({ endpoint: this.endpoint, settings: this.#settings, role: this.#role, component: this.#component, tls: this.#tls }, purpose, extra);
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
    trackClient(client, state, override => this.#duplicate(override));
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
        // What reconnecting cannot fix is an error, not a warning.
        this.#logger[mapped.retryable ? 'warn' : 'error'](mapped.message, { service: this.service, purpose, code: mapped.code, fatal: !mapped.retryable });
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
    const cancelProbe = this.#tls
      ? probePlaintextLater(client, this.target, err => {
          if (state) state.lastError = err;
        })
      : null;
    try {
      await outcome;
    } catch (err) {
      throw await explainStartFailure(err, this.target, this.#tls);
    } finally {
      cancelProbe?.();
    }
  }

  /** PINGs over the multiplexed connection and describes the TLS session. */
  async checkHealth(): Promise<ConnectionHealth> {
    const report = await checkConnectionHealth({
      target: this.target,
      client: () => this.client(),
      waitReady: client => this.#waitReady(client),
      interruption: client => {
        const state = this.#states.get(client);
        return { interrupted: state?.interrupted === true, lastError: state?.lastError };
      },
      connectTimeoutMs: this.#settings.connectTimeoutMs,
    });
    if (report.latencyMs !== null) this.#metrics.pingLatency.set({ service: this.service }, report.latencyMs / 1000);
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
   * Closes every connection of this service (pooled, leased, BullMQ's duplicates and the
   * multiplexed one) at once: each is sent QUIT and cut when `graceMs` runs out. Callers still
   * waiting for a connection are released with a ClosedError.
   */
  async close(graceMs: number): Promise<void> {
    this.#closing = true;
    for (const { timer } of this.#idle.splice(0)) clearTimeout(timer);
    this.#slots.setIdle(0);
    this.#slots.close();
    const clients = [...this.#clients];
    await Promise.all(clients.map(client => quitWithin(client, graceMs)));
    for (const client of clients) this.#clients.delete(client);
    this.#shared = null;
    while (this.#reserved > 0) {
      this.#reserved -= 1;
      this.#slots.give();
    }
  }
}
