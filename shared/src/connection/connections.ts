import type { Registry } from 'prom-client';
import { isResolvedConnectionOptions, resolveConnectionOptions, type ConnectionOptions, type ResolvedConnectionOptions } from './config.js';
import { ConnectionSlots } from './connection-pool.js';
import { closeInOrder, type CloseContext, type LifecycleState } from '../process/index.js';
import { createSilentLogger, type Logger } from '../process/index.js';
import { ConnectionMetrics, createMetricsRegistry } from '../process/index.js';
import { RedisService, type ConnectionHealth, type ProcessRole } from './redis-service.js';
import { redactRedisDebugOutput } from './redis-debug.js';
import { warnUnknownVariables } from '../settings/index.js';

export interface CreateConnectionsOptions {
  /** Unresolved options (env and defaults are layered in) or an already resolved set. */
  options?: ConnectionOptions | ResolvedConnectionOptions;
  /** How the process uses Redis. @defaultValue `'producer'` */
  role?: ProcessRole;
  /** Named in connection names and logs. @defaultValue the role */
  component?: string;
  /** @defaultValue a silent logger */
  logger?: Logger;
  /** @defaultValue a new registry */
  registry?: Registry;
  /** How long `close()` lets QUIT finish, for every connection of both services together, before cutting sockets. @defaultValue `2000` */
  closeGraceMs?: number;
  /** The environment unresolved `options` are layered over. @defaultValue `process.env` */
  env?: Record<string, string | undefined>;
}

export interface HealthReport {
  ok: boolean;
  broker: ConnectionHealth;
  backend: ConnectionHealth;
}

/** `idle` → `starting` (connecting) → `ready` → `closing` → `closed`. */
export type ConnectionsState = Extract<LifecycleState, 'idle' | 'starting' | 'ready' | 'closing' | 'closed'>;

/**
 * Every Redis connection a taskline process opens, to the broker and to the result backend,
 * each service bounded by `maxConnections`, health-checked and closed in a fixed order.
 */
export class TasklineConnections {
  readonly options: ResolvedConnectionOptions;
  readonly role: ProcessRole;
  readonly registry: Registry;
  readonly metrics: ConnectionMetrics;
  readonly logger: Logger;
  readonly broker: RedisService;
  readonly backend: RedisService;
  #state: ConnectionsState = 'idle';
  #healthTimer: NodeJS.Timeout | null = null;
  #lastHealth: HealthReport | null = null;
  #closePromise: Promise<void> | null = null;
  readonly #closeGraceMs: number;

  constructor(init: CreateConnectionsOptions = {}) {
    this.options = isResolvedConnectionOptions(init.options) ? init.options : resolveConnectionOptions(init.options, init.env);
    this.role = init.role ?? 'producer';
    this.logger = init.logger ?? createSilentLogger();
    this.registry = init.registry ?? createMetricsRegistry();
    this.metrics = new ConnectionMetrics(this.registry);
    this.#closeGraceMs = init.closeGraceMs ?? 2000;
    const component = init.component ?? this.role;
    const limits = {
      max: this.options.maxConnections,
      acquireTimeoutMs: this.options.acquireTimeoutMs,
      maxWaiting: this.options.maxWaiting,
    };
    const make = (service: 'broker' | 'backend'): RedisService =>
      new RedisService({
        endpoint: this.options[service],
        settings: this.options,
        role: this.role,
        component,
        slots: new ConnectionSlots(service, limits, this.metrics),
        metrics: this.metrics,
        logger: this.logger,
      });
    this.broker = make('broker');
    this.backend = make('backend');
    for (const warning of this.options.warnings) this.logger.warn(warning);
    // A typo'd TASKLINE_*/REDIS_* variable would otherwise be ignored without a word (once per variable and process).
    warnUnknownVariables(init.env ?? process.env, this.logger);
    const passwords = [this.options.broker.password, this.options.backend.password].map(p => p?.reveal() ?? '');
    redactRedisDebugOutput(passwords, this.logger);
  }

  get state(): ConnectionsState {
    return this.#state;
  }

  /** The last periodic health report, if one ran. */
  get lastHealth(): HealthReport | null {
    return this.#lastHealth;
  }

  /**
   * Opens the broker and result-backend connections and starts the periodic PING. Rejects with a
   * ConnectionError naming the cause and the fix; errors that retrying cannot fix reject at once.
   */
  async connect(): Promise<void> {
    this.#state = 'starting';
    await Promise.all([this.broker.connect(), this.backend.connect()]);
    this.#state = 'ready';
    this.#startHealthChecks();
  }

  #startHealthChecks(): void {
    const interval = this.options.healthCheckIntervalMs;
    if (interval <= 0 || this.#healthTimer) return;
    this.#healthTimer = setInterval(() => {
      this.checkHealth().then(
        report => {
          const was = this.#lastHealth?.ok;
          this.#lastHealth = report;
          if (was !== false && !report.ok) {
            const failing = [report.broker, report.backend].filter(r => !r.ok);
            for (const r of failing) this.logger.error(r.error ?? 'health check failed', { service: r.service, code: r.code });
          }
        },
        (err: unknown) => this.logger.error('health check crashed', { error: err }),
      );
    }, interval);
    this.#healthTimer.unref();
  }

  /** PINGs both services and reports reachability, latency and the TLS session of each. */
  async checkHealth(): Promise<HealthReport> {
    const [broker, backend] = await Promise.all([this.broker.checkHealth(), this.backend.checkHealth()]);
    const report = { ok: broker.ok && backend.ok, broker, backend };
    this.#lastHealth = report;
    return report;
  }

  /**
   * Stops the health checks, then closes the broker's connections and then the result
   * backend's (results written during the drain land before their connection goes), all within
   * one `closeGraceMs`. Safe to call twice: the second call returns the first call's promise.
   */
  close(): Promise<void> {
    this.#closePromise ??= (async () => {
      this.#state = 'closing';
      if (this.#healthTimer) clearInterval(this.#healthTimer);
      this.#healthTimer = null;
      // Each service cuts its sockets when its share of the grace is up; the slack lets it finish.
      const slackMs = 100;
      const quitWithin = (ctx: CloseContext): number => Math.max(0, ctx.remainingMs() - slackMs);
      await closeInOrder(
        [
          { name: 'the broker connections', close: ctx => this.broker.close(quitWithin(ctx)) },
          { name: 'the result backend connections', close: ctx => this.backend.close(quitWithin(ctx)) },
        ],
        this.#closeGraceMs + slackMs,
        { logger: this.logger, owner: 'the connections' },
      );
      this.#state = 'closed';
    })();
    return this.#closePromise;
  }
}

/** Builds (but does not yet open) a process's connections. */
export function createConnections(init: CreateConnectionsOptions = {}): TasklineConnections {
  return new TasklineConnections(init);
}
