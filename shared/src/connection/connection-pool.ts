import { ClosedError, PoolExhaustedError, PoolQueueFullError, type ServiceName } from '../errors.js';
import type { ConnectionMetrics } from '../process/index.js';

interface Waiter {
  resolve: () => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * The bound on Redis connections of one service in one process. Every connection the process
 * opens to that service holds one slot; when none is free, callers wait in a bounded FIFO queue
 * until a slot frees up or the acquire timeout runs out.
 */
export class ConnectionSlots {
  readonly service: ServiceName;
  readonly max: number;
  readonly #acquireTimeoutMs: number;
  readonly #maxWaiting: number;
  readonly #metrics: ConnectionMetrics;
  #used = 0;
  #idle = 0;
  #closed = false;
  readonly #waiters: Waiter[] = [];

  constructor(service: ServiceName, limits: { max: number; acquireTimeoutMs: number; maxWaiting: number }, metrics: ConnectionMetrics) {
    this.service = service;
    this.max = limits.max;
    this.#acquireTimeoutMs = limits.acquireTimeoutMs;
    this.#maxWaiting = limits.maxWaiting;
    this.#metrics = metrics;
    metrics.poolMax.set({ service }, limits.max);
    this.#report();
  }

  get used(): number {
    return this.#used;
  }
  get waiting(): number {
    return this.#waiters.length;
  }

  /** Takes a slot now if one is free. */
  tryTake(): boolean {
    if (this.#closed) throw new ClosedError(`The ${this.service} connection pool`);
    if (this.#used >= this.max || this.#waiters.length > 0) return false;
    this.#used += 1;
    this.#report();
    return true;
  }

  /** Takes a slot, waiting in line up to the acquire timeout. */
  async take(): Promise<void> {
    const started = performance.now();
    if (this.tryTake()) {
      this.#metrics.acquireWait.observe({ service: this.service }, 0);
      return;
    }
    if (this.#waiters.length >= this.#maxWaiting) {
      this.#metrics.poolExhausted.inc({ service: this.service });
      throw new PoolQueueFullError(this.service, this.#maxWaiting);
    }
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#remove(waiter);
          this.#metrics.poolExhausted.inc({ service: this.service });
          reject(new PoolExhaustedError(this.service, this.max, Math.round(performance.now() - started)));
        }, this.#acquireTimeoutMs),
      };
      this.#waiters.push(waiter);
      this.#report();
    });
    this.#metrics.acquireWait.observe({ service: this.service }, (performance.now() - started) / 1000);
  }

  /** Gives a slot back; hands it straight to the first waiter if there is one. */
  give(): void {
    if (this.#used <= 0) return;
    const next = this.#waiters.shift();
    if (next && !this.#closed) {
      clearTimeout(next.timer);
      this.#report();
      next.resolve(); // the slot passes from the releaser to the waiter: #used is unchanged
      return;
    }
    this.#used -= 1;
    this.#report();
  }

  /** How many of the used slots are pooled, free connections (for the metrics). */
  setIdle(count: number): void {
    this.#idle = count;
    this.#report();
  }

  /** Rejects every waiter; later takes fail. */
  close(): void {
    this.#closed = true;
    for (const waiter of this.#waiters.splice(0)) {
      clearTimeout(waiter.timer);
      waiter.reject(new ClosedError(`The ${this.service} connection pool`));
    }
    this.#report();
  }

  #remove(waiter: Waiter): void {
    const index = this.#waiters.indexOf(waiter);
    if (index >= 0) this.#waiters.splice(index, 1);
    this.#report();
  }

  #report(): void {
    const service = this.service;
    this.#metrics.poolConnections.set({ service, state: 'in_use' }, this.#used - this.#idle);
    this.#metrics.poolConnections.set({ service, state: 'idle' }, this.#idle);
    this.#metrics.poolWaiting.set({ service }, this.#waiters.length);
  }
}
