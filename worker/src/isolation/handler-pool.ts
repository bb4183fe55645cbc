import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker as Thread } from 'node:worker_threads';
import { TasklineError, type Logger } from '@taskline/shared';
import { TimeLimitError } from '../errors.js';
import { fromWireError, toWireError, type FromChild, type IsolatedContext, type ToChild } from './protocol.js';

/** Where isolated handlers run: child processes (Celery's prefork) or worker threads. */
export type IsolationKind = 'process' | 'thread';

const ENTRY = fileURLToPath(new URL('./child-entry.js', import.meta.url));
/** A runner must load the tasks module within this time. */
const SPAWN_TIMEOUT_MS = 60_000;

/** SIGKILL to the runner's process group (the runner and every process its handler started). */
function killGroup(child: ChildProcess): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL'); // the group is gone already, or the runner never started
  }
}

/** An isolated runner did not start or died under a handler (not a time limit). */
export class IsolatedRunnerError extends TasklineError {
  override name = 'IsolatedRunnerError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('ISOLATED_RUNNER_FAILED', message, options);
  }
}

export interface HandlerPoolOptions {
  kind: IsolationKind;
  /** Runners at most; requests beyond wait for a free one. */
  size: number;
  /** The tasks module each runner loads (an isolated handler's code must be importable by path). */
  modulePath: string;
  logger: Logger;
}

export interface IsolatedRequest {
  task: string;
  data: unknown;
  ctx: IsolatedContext;
  /** Kill the runner this long after the handler started; the attempt fails with TimeLimitError. */
  hardTimeoutMs: number | null;
  /** After an abort (soft limit, revoke, shutdown), kill the runner if the handler has not ended within this. */
  killGraceMs: number;
  signal: AbortSignal;
  onProgress(value: unknown): void;
  onLog(level: 'debug' | 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown>): void;
}

interface Runner {
  send(message: ToChild): void;
  kill(): void;
  ready: Promise<void>;
  /** Resolves when the runner is gone (killed, crashed or exited). */
  gone: Promise<string>;
  onMessage: ((message: FromChild) => void) | null;
  busy: boolean;
  dead: boolean;
}

/**
 * A bounded pool of isolated runners. A handler that blocks its event loop (a CPU-bound loop)
 * blocks only its runner: the worker keeps renewing locks and taking other jobs. At the hard
 * limit, or after an abort when the handler ignores it, the runner is killed and replaced, so a
 * runaway handler can neither outlive its limit nor keep its memory.
 */
export class HandlerPool {
  readonly #o: HandlerPoolOptions;
  readonly #runners = new Set<Runner>();
  readonly #idle: Runner[] = [];
  readonly #waiting: Array<{ resolve: (runner: Runner) => void; reject: (err: Error) => void }> = [];
  #sequence = 0;
  #closed = false;
  /** Runners killed at a limit (metric source). */
  kills = 0;

  constructor(options: HandlerPoolOptions) {
    this.#o = options;
  }

  get size(): number {
    return this.#runners.size;
  }

  /** Runs one attempt in a runner; resolves with the value or rejects with what the handler threw. */
  async run(request: IsolatedRequest): Promise<unknown> {
    const runner = await this.#acquire();
    const id = ++this.#sequence;
    return new Promise<unknown>((resolve, reject) => {
      let hard: NodeJS.Timeout | null = null;
      let grace: NodeJS.Timeout | null = null;
      let settled = false;
      const finish = (kill: boolean, outcome: () => void): void => {
        if (settled) return;
        settled = true;
        if (hard) clearTimeout(hard);
        if (grace) clearTimeout(grace);
        request.signal.removeEventListener('abort', onAbort);
        runner.onMessage = null;
        if (kill) this.#kill(runner);
        else this.#release(runner);
        outcome();
      };
      const onAbort = (): void => {
        runner.send({ t: 'abort', id, reason: toWireError(request.signal.reason) });
        grace ??= setTimeout(
          () => finish(true, () => reject(request.signal.reason instanceof Error ? request.signal.reason : new Error(String(request.signal.reason)))),
          request.killGraceMs,
        );
      };
      runner.onMessage = message => {
        if (message.t === 'progress' && message.id === id) request.onProgress(message.value);
        else if (message.t === 'log' && message.id === id) request.onLog(message.level, message.message, message.fields);
        else if (message.t === 'done' && message.id === id) {
          finish(false, () => (message.ok ? resolve(message.value) : reject(fromWireError(message.error))));
        }
      };
      void runner.gone.then(why =>
        finish(false, () => reject(new IsolatedRunnerError(`The isolated runner of task "${request.task}" died (${why}) while the handler ran; the attempt fails and is retried if it has attempts left.`))),
      );
      if (request.hardTimeoutMs !== null) {
        const limit = request.hardTimeoutMs;
        hard = setTimeout(() => {
          this.kills += 1;
          finish(true, () => reject(new TimeLimitError(request.task, limit, 'hard')));
        }, limit);
      }
      request.signal.addEventListener('abort', onAbort, { once: true });
      runner.send({ t: 'run', id, task: request.task, data: request.data, ctx: request.ctx });
      if (request.signal.aborted) onAbort();
    });
  }

  /**
   * Starts every runner now, so the first isolated jobs do not wait for a runner to load the tasks
   * module; resolves once they are all ready, rejects if one cannot load it.
   */
  async warm(): Promise<void> {
    const starting: Array<Promise<void>> = [];
    while (!this.#closed && this.#runners.size < this.#o.size) starting.push(this.#spawn().ready);
    await Promise.all(starting);
  }

  async #acquire(): Promise<Runner> {
    if (this.#closed) throw new IsolatedRunnerError('The isolated runners are closed (the worker is shutting down).');
    const idle = this.#idle.pop();
    if (idle) {
      idle.busy = true;
      return idle;
    }
    if (this.#runners.size < this.#o.size) this.#spawn();
    return new Promise<Runner>((resolve, reject) => this.#waiting.push({ resolve, reject }));
  }

  /** A runner is free (ready, or done with a job): the next waiting request gets it. */
  #release(runner: Runner): void {
    if (runner.dead) return;
    const next = this.#waiting.shift();
    if (next) {
      runner.busy = true;
      return next.resolve(runner);
    }
    runner.busy = false;
    this.#idle.push(runner);
  }

  #kill(runner: Runner): void {
    runner.kill();
    this.#forget(runner);
    // Keep the pool warm: the replacement starts loading now, not when the next job arrives.
    if (!this.#closed) this.#spawn();
  }

  #forget(runner: Runner): void {
    runner.dead = true;
    this.#runners.delete(runner);
    const i = this.#idle.indexOf(runner);
    if (i >= 0) this.#idle.splice(i, 1);
  }

  #spawn(): Runner {
    const runner = this.#o.kind === 'thread' ? this.#spawnThread() : this.#spawnProcess();
    this.#runners.add(runner);
    runner.ready.then(
      () => this.#release(runner),
      (err: unknown) => {
        if (this.#closed) return;
        // A runner that cannot load the tasks module fails the request waiting for it (and is not retried forever).
        this.#o.logger.error('An isolated runner failed to start', { error: err });
        this.#forget(runner);
        runner.kill();
        this.#waiting.shift()?.reject(err instanceof Error ? err : new IsolatedRunnerError(String(err)));
      },
    );
    void runner.gone.then(why => {
      if (runner.dead) return;
      // It crashed or exited on its own (a handler called process.exit, ran out of memory...).
      this.#o.logger.warn('An isolated runner exited; starting another', { why });
      this.#forget(runner);
      if (!this.#closed) this.#spawn();
    });
    return runner;
  }

  #wire(runner: Runner, setReady: () => void, setFailed: (err: Error) => void, message: FromChild): void {
    if (message.t === 'ready') setReady();
    else if (message.t === 'fatal') setFailed(new IsolatedRunnerError(`An isolated runner could not load the tasks module: ${message.error.message}`));
    else runner.onMessage?.(message);
  }

  #spawnProcess(): Runner {
    // Its own process group (detached): a kill at the hard limit reaches what the handler started
    // too. The runner ends itself, and its group, when the worker dies (child-entry.ts).
    const child: ChildProcess = fork(ENTRY, [this.#o.modulePath], {
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      detached: true,
    });
    return this.#runner(
      message => child.send(message),
      () => killGroup(child),
      (onMessage, onGone) => {
        child.on('message', m => onMessage(m as FromChild));
        child.once('exit', (code, signal) => onGone(signal ? `signal ${signal}` : `exit code ${code}`));
        child.once('error', err => onGone(err.message));
      },
    );
  }

  #spawnThread(): Runner {
    const thread = new Thread(ENTRY, { workerData: { modulePath: this.#o.modulePath } });
    return this.#runner(
      message => thread.postMessage(message),
      () => void thread.terminate(),
      (onMessage, onGone) => {
        thread.on('message', m => onMessage(m as FromChild));
        thread.once('exit', code => onGone(`exit code ${code}`));
        thread.once('error', err => onGone(err.message));
      },
    );
  }

  #runner(
    send: (message: ToChild) => void,
    kill: () => void,
    listen: (onMessage: (message: FromChild) => void, onGone: (why: string) => void) => void,
  ): Runner {
    let setReady: () => void = () => undefined;
    let setFailed: (err: Error) => void = () => undefined;
    let setGone: (why: string) => void = () => undefined;
    const ready = new Promise<void>((resolve, reject) => {
      setReady = resolve;
      setFailed = reject;
    });
    ready.catch(() => undefined);
    const gone = new Promise<string>(resolve => (setGone = resolve));
    const runner: Runner = {
      send: message => {
        try {
          send(message);
        } catch (err) {
          this.#o.logger.warn('Could not message an isolated runner', { error: err });
        }
      },
      kill,
      ready,
      gone,
      onMessage: null,
      busy: false,
      dead: false,
    };
    const timer = setTimeout(() => setFailed(new IsolatedRunnerError(`An isolated runner did not load the tasks module within ${SPAWN_TIMEOUT_MS} ms.`)), SPAWN_TIMEOUT_MS);
    timer.unref();
    void ready.finally(() => clearTimeout(timer)).catch(() => undefined);
    listen(
      message => this.#wire(runner, setReady, setFailed, message),
      why => {
        setFailed(new IsolatedRunnerError(`An isolated runner exited before it was ready (${why}).`));
        setGone(why);
      },
    );
    return runner;
  }

  /** Kills every runner (after the drain, or at once when forced); later runs are refused. */
  close(): void {
    this.#closed = true;
    for (const runner of [...this.#runners]) {
      runner.dead = true;
      runner.kill();
    }
    this.#runners.clear();
    this.#idle.length = 0;
    for (const waiter of this.#waiting.splice(0)) waiter.reject(new IsolatedRunnerError('The isolated runners are closed (the worker is shutting down).'));
  }
}
