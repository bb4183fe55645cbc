import { hostname } from 'node:os';
import { Queue, Worker } from 'bullmq';
import type { Registry } from 'prom-client';
import { createConnections, resolveConnectionOptions, type LifecycleState, type TasklineConnections } from '@taskline/shared';
import { closeInOrder, withTimeout } from '@taskline/shared/process';
import { QueueRegistry, ResultBackend } from '@taskline/shared/job';
import { type ReadinessReport } from '@taskline/shared/ops';
import { tasklineBackoffStrategy } from './backoff.js';
import { JobRevokedError, WorkerShutdownError } from './errors.js';
import type { Abortable } from './attempt-abort.js';
import { FailedJobSettler } from './failed-job-settler.js';
import { HandlerPool } from './isolation/handler-pool.js';
import type { IsolationKind } from './tasks.js';
import { createJobProcessor, type JobRunnerDeps } from './job-runner.js';
import { traceJobs } from './job-tracing.js';
import { RevokedJobs } from './revoked-jobs.js';
import { resolveWorkerOptions, type ResolvedWorkerOptions, type WorkerOptions } from './options.js';
import { TaskRateLimiter } from './rate-limiter.js';
import { FetchGuard } from './fetch-guard.js';
import { RateLimitedLog, refusesWrites } from './write-refusal.js';
import { cachedDepthSource, WorkerMetrics, type QueueCounts } from './worker-metrics.js';
import { createCeleryBridge, type CeleryBridge } from './celery/celery-bridge.js';

/** `idle` → `starting` → `ready` → `draining` (in-flight jobs finish) → `closing` → `closed`. */
export type WorkerState = Extract<LifecycleState, 'idle' | 'starting' | 'ready' | 'draining' | 'closing' | 'closed'>;

/** How `close()` ended: every in-flight job finished, or the grace ran out (or a second signal came). */
export type CloseOutcome = 'drained' | 'forced';

/** Completed jobs stay on the broker for an hour (at most 1000), failed ones for a week (at most 10 000). */
const KEEP_COMPLETED = { age: 3600, count: 1000 };
const KEEP_FAILED = { age: 7 * 86_400, count: 10_000 };
/** After forcing, how long BullMQ gets to hand jobs back before the connections are cut. */
const FORCE_CLOSE_MS = 5000;
/** After the drain, how long the runners, result backend, queues and connections get to close, together. */
const CLOSE_GRACE_MS = 5000;
const DEPTH_CACHE_MS = 2000;

/**
 * Runs tasks from one or more queues: one BullMQ Worker per queue on the broker, results in
 * the result backend. `start()` connects and consumes; `close()` drains within the grace period.
 */
export class TasklineWorker {
  readonly options: ResolvedWorkerOptions;
  readonly connections: TasklineConnections;
  readonly registry: Registry;
  readonly #metrics: WorkerMetrics;
  readonly #running = new Map<string, Abortable>();
  readonly #workers = new Map<string, Worker>();
  readonly #fetchGuards = new Map<string, FetchGuard>();
  readonly #runs: Array<Promise<void>> = [];
  #queues: Map<string, Queue> | null = null;
  #results: ResultBackend | null = null;
  #cleanups: Array<() => unknown> = [];
  #state: WorkerState = 'idle';
  #startPromise: Promise<void> | null = null;
  #closePromise: Promise<CloseOutcome> | null = null;
  #forceRequested = false;
  readonly #errors: RateLimitedLog;
  readonly #pools = new Map<IsolationKind, HandlerPool>();
  #celery: CeleryBridge | null = null;
  #force: () => void = () => {
    this.#forceRequested = true;
  };

  constructor(options: WorkerOptions) {
    this.options = resolveWorkerOptions(options);
    const o = this.options;
    this.connections = createConnections({
      options: resolveConnectionOptions(o.connection, o.env),
      role: 'worker',
      component: 'worker',
      logger: o.logger,
      ...(o.registry ? { registry: o.registry } : {}),
    });
    this.registry = this.connections.registry;
    this.#metrics = new WorkerMetrics(this.registry);
    this.#metrics.ready.set(0);
    this.#errors = new RateLimitedLog(o.logger);
  }

  get state(): WorkerState {
    return this.#state;
  }

  /** Jobs running now, across all queues. */
  get activeJobs(): number {
    return this.#running.size;
  }

  /** Connects both services and starts consuming every queue. Resolves once all are consuming. */
  start(): Promise<void> {
    this.#startPromise ??= this.#start();
    return this.#startPromise;
  }

  async #start(): Promise<void> {
    const o = this.options;
    this.#state = 'starting';
    await this.connections.connect();
    const results = new ResultBackend({
      service: this.connections.backend,
      prefix: o.prefix,
      expiresSeconds: o.resultExpiresSeconds,
      writeDeadlineMs: o.resultWriteDeadlineMs,
      logger: o.logger,
    });
    this.#results = results;
    const revoked = await this.#followRevokes(results);
    await new QueueRegistry(o.prefix).register(this.connections.broker.client(), o.queues);
    this.#warnRouteDisagreements();
    // Runners load the tasks module in a second or two: start them now, not at the first job, and
    // fail the start if they cannot load it.
    const kinds = new Set([...o.tasks.byName.values()].map(task => o.isolationOf(task)).filter(k => k !== null));
    await Promise.all([...kinds].map(kind => this.#pool(kind).warm()));
    if (o.celeryQueues.length > 0) {
      this.#celery = createCeleryBridge({ options: o, connections: this.connections, results, registry: this.registry, queue: name => this.#queue(name) });
    }
    const deps = this.#processorDeps(results, revoked);
    for (const queue of o.queues) {
      if (this.#closePromise) return;
      await this.#consume(queue, deps);
    }
    this.#cleanups.push(this.#metrics.addDepthSource(cachedDepthSource(() => this.#queueDepths(), DEPTH_CACHE_MS)));
    this.#startSettler(results);
    if (this.#celery) {
      const intake = this.#celery.intake;
      await intake.start();
      this.#cleanups.unshift(() => intake.close());
      o.logger.info('Consuming Celery queues', { celeryQueues: o.celeryQueues, fallbackQueue: o.celeryFallbackQueue });
    }
    if (this.#closePromise) return;
    this.#state = 'ready';
    this.#metrics.ready.set(1);
    o.logger.info('Worker ready', { queues: o.queues, concurrency: o.concurrency });
  }

  /** Revokes kept in memory: every one published from now on, and those stored before (resync). */
  async #followRevokes(results: ResultBackend): Promise<RevokedJobs> {
    const revoked = new RevokedJobs(results, this.options.logger);
    this.#cleanups.push(
      await results.onRevoke(
        jobId => {
          revoked.add(jobId);
          this.#running.get(jobId)?.abort(new JobRevokedError(jobId));
        },
        () => void revoked.resync(),
      ),
    );
    await revoked.resync();
    return revoked;
  }

  #warnRouteDisagreements(): void {
    const o = this.options;
    for (const task of o.tasks.byName.values()) {
      const routed = o.routes.queueFor(task.name);
      if (task.queue !== null && routed !== null && routed !== task.queue) {
        o.logger.warn('A task declares a queue its route disagrees with; producers follow the route', { task: task.name, declared: task.queue, routedTo: routed });
      }
    }
  }

  /** What every queue's job processor shares (all but the queue's name). */
  #processorDeps(results: ResultBackend, revoked: RevokedJobs): Omit<JobRunnerDeps, 'queue'> {
    const o = this.options;
    return {
      tasks: o.tasks,
      broker: this.connections.broker,
      results,
      revoked,
      rateLimiter: new TaskRateLimiter(o.prefix),
      metrics: this.#metrics,
      logger: o.logger,
      workerId: `${hostname()}:${process.pid}`,
      running: this.#running,
      startedDelayMs: o.startedDelayMs,
      maxResultBytes: o.maxResultBytes,
      progressIntervalMs: o.progressIntervalMs,
      routes: o.routes,
      isolationOf: o.isolationOf,
      pool: kind => this.#pool(kind),
      killGraceMs: o.killGraceMs,
      bridge: this.#celery?.bridge ?? null,
    };
  }

  /** One BullMQ worker for one queue, on a connection of its own, running once it is ready. */
  async #consume(queue: string, deps: Omit<JobRunnerDeps, 'queue'>): Promise<void> {
    const o = this.options;
    const connection = await this.connections.broker.bullmqConnection(1);
    const processor = traceJobs(queue, createJobProcessor({ ...deps, queue }));
    const worker = new Worker(queue, processor, {
      connection,
      prefix: o.prefix,
      concurrency: o.concurrency,
      autorun: false,
      lockDuration: o.lockDurationMs,
      stalledInterval: o.stalledIntervalMs,
      maxStalledCount: o.maxStalledCount,
      removeOnComplete: KEEP_COMPLETED,
      removeOnFail: KEEP_FAILED,
      settings: { backoffStrategy: tasklineBackoffStrategy },
    });
    // BullMQ waits before its next fetch after an error; the log says so once per window.
    worker.on('error', err => this.#errors.error(`${queue}:${errorKey(err)}`, 'Queue worker error', { queue, error: err }));
    // BullMQ refetches at once after a refused fetch (NOPERM, a script not loaded, OOM): back off.
    const guard = new FetchGuard();
    if (guard.install(worker)) this.#fetchGuards.set(queue, guard);
    this.#workers.set(queue, worker);
    this.#runs.push(
      worker.run().catch((err: unknown) => {
        o.logger.error('Queue worker stopped', { queue, error: err });
      }),
    );
    await worker.waitUntilReady();
  }

  /** Gives jobs the broker failed on its own (stall limit, unstorable result) their FAILURE record. */
  #startSettler(results: ResultBackend): void {
    const o = this.options;
    const settler = new FailedJobSettler({
      broker: this.connections.broker,
      results,
      prefix: o.prefix,
      queues: o.queues,
      queue: name => this.#queue(name),
      intervalMs: o.settleIntervalMs,
      metrics: this.#metrics,
      logger: o.logger,
      ...(this.#celery ? { onSettled: this.#celery.bridge.settled.bind(this.#celery.bridge) } : {}),
    });
    settler.start();
    this.#cleanups.unshift(() => settler.stop());
  }

  /** The runners of isolated handlers, made on first use. */
  #pool(kind: IsolationKind): HandlerPool {
    let pool = this.#pools.get(kind);
    if (!pool) {
      pool = new HandlerPool({ kind, size: this.options.isolatedPoolSize, modulePath: this.options.tasksModule ?? '', logger: this.options.logger });
      this.#pools.set(kind, pool);
    }
    return pool;
  }

  /** A BullMQ Queue handle on the shared connection (queue depths, the failed-job settler). */
  #queue(name: string): Queue {
    this.#queues ??= new Map();
    let queue = this.#queues.get(name);
    if (!queue) {
      queue = new Queue(name, { connection: this.connections.broker.client(), prefix: this.options.prefix });
      this.#queues.set(name, queue);
    }
    return queue;
  }

  async #queueDepths(): Promise<Array<{ queue: string; counts: QueueCounts }>> {
    if (this.#state === 'closed' || this.#state === 'draining') return [];
    const out: Array<{ queue: string; counts: QueueCounts }> = [];
    for (const name of this.options.queues) {
      const queue = this.#queue(name);
      const [counts, paused] = await Promise.all([
        queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed', 'completed'),
        queue.isPaused(),
      ]);
      // BullMQ 6 has no paused list: a paused queue's waiting jobs are reported as paused.
      const waiting = (counts['waiting'] ?? 0) + (counts['prioritized'] ?? 0);
      out.push({ queue: name, counts: { ...counts, waiting: paused ? 0 : waiting, paused: paused ? waiting : 0 } });
    }
    return out;
  }

  /**
   * Ready when both connections answer, every queue's BullMQ worker runs with its blocking
   * connection up, and the worker is not draining. A worker that lost its blocking connection
   * (and so silently stopped consuming) reports not ready.
   */
  async readiness(): Promise<ReadinessReport> {
    const health = await this.connections.checkHealth();
    const queues = await Promise.all(
      [...this.#workers].map(async ([queue, worker]) => {
        const blocking = worker.getBackend().blockingClient;
        const client = blocking ? await withTimeout(blocking, 1000, 'the blocking connection').catch(() => null) : null;
        const status = client?.status ?? 'unknown';
        return { queue, running: worker.isRunning(), blockingConnection: status };
      }),
    );
    const consuming = queues.length === this.options.queues.length && queues.every(q => q.running && q.blockingConnection === 'ready');
    // A server out of memory answers PING but refuses every write: no job can start or finish.
    const full = await Promise.all(
      (['broker', 'backend'] as const).map(async service =>
        health[service].ok && (await withTimeout(refusesWrites(this.connections[service].client()), 1000, 'the write check').catch(() => false)) ? service : null,
      ),
    );
    const refusing = full.filter((s): s is 'broker' | 'backend' => s !== null);
    const refusedFetches = [...this.#fetchGuards].flatMap(([queue, guard]) => (guard.failing ? [`queue "${queue}": the broker refuses to hand out jobs: ${guard.failing.message}`] : []));
    const ok = this.#state === 'ready' && health.ok && consuming && refusing.length === 0 && refusedFetches.length === 0 && !this.#celery?.intake.failing;
    this.#metrics.ready.set(ok ? 1 : 0);
    const failing = [health.broker, health.backend].filter(h => !h.ok).map(h => `${h.label}: ${h.error ?? 'unreachable'}`);
    for (const service of refusing) {
      failing.push(`${service === 'broker' ? 'broker' : 'result backend'}: out of memory (used memory over maxmemory), refusing writes; raise maxmemory or drain it`);
    }
    failing.push(...refusedFetches);
    const intakeFailing = this.#celery?.intake.failing;
    if (intakeFailing) failing.push(intakeFailing);
    return { ok, state: this.#state, broker: health.broker.ok, backend: health.backend.ok, queues, ...(refusing.length ? { refusingWrites: refusing } : {}), ...(failing.length ? { errors: failing } : {}) };
  }

  /**
   * Stops taking jobs and lets in-flight ones finish within `shutdownGraceMs`; then (or at once
   * with `{ force: true }`, e.g. on a second signal) aborts their signals and hands them back to
   * the queue. Closes the result backend and the connections last. Safe to call twice.
   */
  close(options: { force?: boolean } = {}): Promise<CloseOutcome> {
    if (options.force) this.#force();
    this.#closePromise ??= this.#close();
    return this.#closePromise;
  }

  async #close(): Promise<CloseOutcome> {
    const o = this.options;
    // A worker that never became ready (its start failed) closes quietly: its start's error said it all.
    const wasReady = this.#state === 'ready';
    const log = (level: 'info' | 'warn', message: string, fields: Record<string, unknown>): void => {
      o.logger[wasReady ? level : 'debug'](message, fields);
    };
    this.#state = 'draining';
    this.#metrics.ready.set(0);
    for (const guard of this.#fetchGuards.values()) guard.stop();
    log('info', 'Worker draining', { inFlight: this.#running.size, graceMs: o.shutdownGraceMs });
    await this.#startPromise?.catch(() => undefined);
    const workers = [...this.#workers.values()];
    const drained = Promise.allSettled(workers.map(w => w.close())).then(() => 'drained' as const);
    const forced = new Promise<'forced'>(resolve => {
      this.#force = () => resolve('forced');
      if (this.#forceRequested) resolve('forced');
    });
    const timer = setTimeout(() => this.#force(), o.shutdownGraceMs);
    const outcome = await Promise.race([drained, forced]);
    clearTimeout(timer);
    if (outcome === 'forced') {
      log('warn', 'Shutdown forced; aborting in-flight jobs', { inFlight: this.#running.size });
      for (const controller of this.#running.values()) controller.abort(new WorkerShutdownError());
      await withTimeout(drained, FORCE_CLOSE_MS, 'BullMQ close').catch(() => o.logger.warn('BullMQ did not close in time; cutting the connections'));
    }
    this.#state = 'closing';
    await closeInOrder(
      [
        [
          {
            name: 'isolated runners',
            close: () => {
              for (const pool of this.#pools.values()) pool.close();
            },
          },
          ...this.#cleanups.map((fn, i) => ({ name: `cleanup ${i}`, close: () => fn() })),
        ],
        [
          { name: 'result backend', close: () => this.#results?.close() },
          ...[...(this.#queues?.values() ?? [])].map(q => ({ name: `metrics queue ${q.name}`, close: () => q.close() })),
        ],
        { name: 'connections', close: () => this.connections.close() },
      ],
      CLOSE_GRACE_MS,
      { logger: o.logger, owner: 'the worker' },
    );
    this.#state = 'closed';
    log('info', 'Worker closed', { outcome });
    return outcome;
  }
}

/** Groups errors for rate-limited logging: by Redis error word (OOM, NOPERM...) or error name. */
function errorKey(err: unknown): string {
  if (!(err instanceof Error)) return 'unknown';
  return /^[A-Z]{3,}\b/.exec(err.message)?.[0] ?? err.name;
}

/** Builds a worker (not yet connected: call `start()`). */
export function createWorker(options: WorkerOptions): TasklineWorker {
  return new TasklineWorker(options);
}
