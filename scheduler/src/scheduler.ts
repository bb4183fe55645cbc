import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { TasklineError, createConnections, createSilentLogger, type LifecycleState, type Logger, type TasklineConnections } from '@taskline/shared';
import { QueueRegistry } from '@taskline/shared/job';
import { closeInOrder, withTimeout } from '@taskline/shared/process';
import { resolveSchedulerOptions, type ResolvedSchedulerOptions, type SchedulerOptions } from './config.js';
import { FileWatcher } from './file-watcher.js';
import { LeaderLease } from './leader-lease.js';
import { BeatMetrics } from './metrics.js';
import { NotLeaderError, readOwned, reconcileSchedules, SCHEDULER_ID_PREFIX, type ReconcileResult } from './reconciler.js';
import { loadScheduleFile, type ScheduleFile } from './schedule-file.js';

/** `idle` → `starting` → `ready` (leading or standing by) → `closing` → `closed`. */
export type SchedulerState = Extract<LifecycleState, 'idle' | 'starting' | 'ready' | 'closing' | 'closed'>;

/** How long `close()` gives the in-flight reconcile, the lease release, the queues and the connections, together. */
const CLOSE_GRACE_MS = 10_000;

export interface Scheduler {
  /** Connects, loads the file (rejecting on an invalid one), then leads or stands by. */
  start(): Promise<void>;
  /** Steps down (releasing the lease so a standby takes over at once), stops timers, closes what it opened. Idempotent. */
  close(): Promise<void>;
  /** Re-reads the file and, if this replica leads, reconciles it into Redis. Standbys resolve with `null`. */
  reconcile(reason?: string): Promise<ReconcileResult | null>;
  readonly isLeader: boolean;
  readonly state: SchedulerState;
  readonly fence: number | null;
  /** The last valid schedule file loaded. */
  readonly schedule: ScheduleFile | null;
  /** Why the last lease step failed (e.g. NOPERM, a script not loaded), while it keeps failing; `null` once one succeeds. */
  readonly leaseError: Error | null;
  readonly connections: TasklineConnections;
  readonly metrics: BeatMetrics;
}

/**
 * The beat. Every replica loads and watches the schedule file; exactly one, holding the lease in
 * Redis (see LeaderLease), writes it into BullMQ job schedulers (see reconcileSchedules, which also
 * explains how ticks are produced). Standbys poll the lease and take over when it expires.
 */
class BeatScheduler implements Scheduler {
  readonly connections: TasklineConnections;
  readonly metrics: BeatMetrics;
  readonly #options: ResolvedSchedulerOptions;
  readonly #logger: Logger;
  readonly #ownsConnections: boolean;
  readonly #queues = new Map<string, Queue>();
  readonly #registry: QueueRegistry;
  #client: Redis | null = null;
  #lease: LeaderLease | null = null;
  #leaseError: Error | null = null;
  #watcher: FileWatcher | null = null;
  #state: SchedulerState = 'idle';
  #schedule: ScheduleFile | null = null;
  #leaseTimer: NodeJS.Timeout | null = null;
  #reconcileTimer: NodeJS.Timeout | null = null;
  #statsTimer: NodeJS.Timeout | null = null;
  #running: Promise<ReconcileResult | null> | null = null;
  #again = false;
  #iterations = new Map<string, number>();
  #closePromise: Promise<void> | null = null;

  constructor(options: SchedulerOptions) {
    this.#options = resolveSchedulerOptions(options);
    this.#logger = this.#options.logger ?? createSilentLogger();
    this.#registry = new QueueRegistry(this.#options.prefix);
    this.#ownsConnections = this.#options.connections === null;
    this.connections =
      this.#options.connections ??
      createConnections({ options: this.#options.connection, env: this.#options.env, role: 'scheduler', component: 'scheduler', logger: this.#logger, ...(this.#options.registry ? { registry: this.#options.registry } : {}) });
    this.metrics = new BeatMetrics(this.#options.registry ?? this.connections.registry);
  }

  get isLeader(): boolean {
    return this.#lease?.held ?? false;
  }
  get state(): SchedulerState {
    return this.#state;
  }
  get fence(): number | null {
    return this.#lease?.fence ?? null;
  }
  get schedule(): ScheduleFile | null {
    return this.#schedule;
  }
  get leaseError(): Error | null {
    return this.#leaseError;
  }

  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new TasklineError('SCHEDULER_ALREADY_STARTED', `The scheduler was already started (state ${this.#state}); create a new one.`);
    this.#state = 'starting';
    await this.#load();
    await this.connections.connect();
    this.#client = await this.connections.broker.bullmqConnection(0);
    const o = this.#options;
    this.#lease = new LeaderLease({ client: this.#client, prefix: o.prefix, ttlMs: o.leaseTtlMs, minRemainingMs: o.minRemainingMs });
    this.#watcher = new FileWatcher(o.schedulePath, () => this.#background('file changed'), { intervalMs: o.watchIntervalMs, debounceMs: o.debounceMs });
    await this.#watcher.start();
    this.#state = 'ready';
    this.#logger.info('beat started', { schedule: o.schedulePath, prefix: o.prefix, leaseTtlMs: o.leaseTtlMs, declared: this.#schedule?.entries.length ?? 0 });
    await this.#leaseStep();
    this.#reconcileTimer = setInterval(() => this.#background('periodic'), o.reconcileIntervalMs);
    this.#reconcileTimer.unref();
    this.#statsTimer = setInterval(() => void this.#refreshStats().catch(() => undefined), o.statsIntervalMs);
    this.#statsTimer.unref();
  }

  async #load(): Promise<ScheduleFile> {
    try {
      this.#schedule = await loadScheduleFile(this.#options.schedulePath, this.#options.routes);
    } catch (err) {
      this.metrics.reconcileErrors.inc();
      throw err;
    }
    this.metrics.declared.set(this.#schedule.entries.length);
    return this.#schedule;
  }

  /** One turn of the lease loop: renew as leader, try to acquire as standby; re-arms itself. */
  async #leaseStep(): Promise<void> {
    const lease = this.#lease;
    if (!lease || this.#state !== 'ready') return;
    let delay = this.#options.renewIntervalMs;
    try {
      if (lease.fence !== null) {
        if (!(await this.#withTimeout(lease.renew()))) this.#steppedDown('lease lost at renewal');
      } else {
        const fence = await this.#withTimeout(lease.tryAcquire());
        if (fence !== null) {
          this.metrics.leader.set(1);
          this.#iterations.clear();
          this.#logger.info('became leader', { fence, leaseTtlMs: this.#options.leaseTtlMs });
          this.#background('became leader');
        } else {
          const left = await this.#withTimeout(lease.remainingMs());
          if (left > 0 && left < delay) delay = left + 10;
        }
      }
      this.#leaseError = null;
    } catch (err) {
      if (lease.fence !== null && !lease.held) this.#steppedDown('lease could not be renewed in time');
      this.#leaseError = err instanceof Error ? err : new Error(String(err));
      this.#logger.warn('lease step failed', { error: err });
    }
    if (this.#state !== 'ready') return;
    this.#leaseTimer = setTimeout(() => void this.#leaseStep(), delay);
    this.#leaseTimer.unref();
  }

  /** A lease command must answer while the lease it relies on still has time left. */
  #withTimeout<T>(promise: Promise<T>): Promise<T> {
    return withTimeout(promise, this.#options.minRemainingMs, 'the lease command');
  }

  #steppedDown(why: string): void {
    this.#lease?.drop();
    this.metrics.leader.set(0);
    this.#logger.warn('stepped down', { reason: why });
  }

  #background(reason: string): void {
    this.reconcile(reason).catch(() => undefined);
  }

  /** Coalesces: while one reconcile runs, further requests make it run once more afterwards. */
  reconcile(reason = 'requested'): Promise<ReconcileResult | null> {
    if (this.#state !== 'ready') return Promise.resolve(null);
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = this.#reconcileOnce(reason).finally(() => {
      this.#running = null;
      if (this.#again && this.#state === 'ready') {
        this.#again = false;
        this.#background('coalesced');
      }
    });
    return this.#running;
  }

  async #reconcileOnce(reason: string): Promise<ReconcileResult | null> {
    let file: ScheduleFile;
    try {
      file = await this.#load();
    } catch (err) {
      this.#logger.error('schedule file rejected; keeping the schedules already in Redis', { reason, error: err instanceof Error ? err.message : String(err) });
      throw err;
    }
    const lease = this.#lease;
    if (!lease?.held || !this.#client) return null;
    try {
      // Ticks land in these queues: list them for operators and for finding a tick by its id.
      await this.#registry.register(this.#client, file.entries.map(e => e.queue));
      const result = await reconcileSchedules(file.entries, {
        prefix: this.#options.prefix,
        client: this.#client,
        lease,
        queue: name => this.#queue(name),
        logger: this.#logger,
      });
      this.metrics.reconciles.inc();
      this.#logger.info('reconciled', { reason, fence: lease.fence, ...result });
      await this.#refreshStats().catch(() => undefined);
      return result;
    } catch (err) {
      this.metrics.reconcileErrors.inc();
      if (err instanceof NotLeaderError) {
        this.#steppedDown('lease lost before a reconcile write');
        return null;
      }
      this.#logger.error('reconcile failed', { reason, error: err });
      throw err;
    }
  }

  #queue(name: string): Queue {
    let queue = this.#queues.get(name);
    if (!queue) {
      if (!this.#client) throw new TasklineError('SCHEDULER_NOT_STARTED', 'The scheduler is not connected; call start() first.');
      queue = new Queue(name, { connection: this.#client, prefix: this.#options.prefix });
      queue.on('error', err => this.#logger.warn('queue error', { queue: name, error: err }));
      this.#queues.set(name, queue);
    }
    return queue;
  }

  /** Active schedulers (every replica) and ticks from iteration-count growth (leader only). */
  async #refreshStats(): Promise<void> {
    if (!this.#client) return;
    const owned = await readOwned(this.#client, this.#options.prefix);
    let active = 0;
    for (const record of owned.values()) {
      const live = await this.#queue(record.queue).getJobScheduler(record.schedulerId);
      if (!live) continue;
      active += 1;
      if (!this.isLeader) continue;
      const id = record.schedulerId.slice(SCHEDULER_ID_PREFIX.length);
      const count = live.iterationCount ?? 0;
      const seen = this.#iterations.get(record.schedulerId);
      if (seen !== undefined && count > seen) this.metrics.ticks.inc({ schedule: id }, count - seen);
      else if (seen === undefined) this.metrics.ticks.inc({ schedule: id }, 0);
      this.#iterations.set(record.schedulerId, count);
    }
    this.metrics.active.set(active);
  }

  close(): Promise<void> {
    this.#closePromise ??= (async () => {
      const was = this.#state;
      this.#state = 'closing';
      await closeInOrder(
        [
          {
            name: 'timers',
            close: () => {
              for (const t of [this.#leaseTimer, this.#reconcileTimer, this.#statsTimer]) if (t) clearTimeout(t);
              this.#watcher?.close();
            },
          },
          { name: 'in-flight reconcile', close: () => this.#running?.catch(() => undefined) },
          {
            name: 'lease',
            close: async () => {
              try {
                if (was === 'ready' && this.#lease?.fence !== null) await this.#withTimeout(this.#lease?.release() ?? Promise.resolve());
              } finally {
                this.metrics.leader.set(0);
              }
            },
          },
          { name: 'queues', close: () => Promise.all([...this.#queues.values()].map(q => q.close())) },
          { name: 'connections', close: () => (this.#ownsConnections ? this.connections.close() : undefined) },
        ],
        CLOSE_GRACE_MS,
        { logger: this.#logger, owner: 'the beat' },
      );
      this.#state = 'closed';
      this.#logger.info('beat stopped');
    })();
    return this.#closePromise;
  }
}

/** Builds a beat replica; nothing connects until `start()`. */
export function createScheduler(options: SchedulerOptions): Scheduler {
  return new BeatScheduler(options);
}
