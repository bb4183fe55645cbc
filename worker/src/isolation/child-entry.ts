// The entry of a child process (fork) or worker thread that runs isolated handlers. It loads the
// tasks module itself (functions cannot cross), then runs one attempt at a time as told.
// Started only by HandlerPool; importing it outside a child does nothing.
import { parentPort, workerData, isMainThread, Worker as Thread } from 'node:worker_threads';
import { TasklineError } from '@taskline/shared';
import { loadTaskModule } from '../task-module.js';
import type { TaskContext } from '../tasks.js';
import { fromWireError, toWireError, type FromChild, type ToChild } from './protocol.js';

type Send = (message: FromChild) => void;

function channel(): { send: Send; onMessage: (handler: (message: ToChild) => void) => void; modulePath: string } | null {
  if (!isMainThread && parentPort) {
    const port = parentPort;
    return { send: m => port.postMessage(m), onMessage: h => port.on('message', h), modulePath: String((workerData as { modulePath: string }).modulePath) };
  }
  const modulePath = process.argv[2];
  if (typeof process.send === 'function' && modulePath) {
    const send = process.send.bind(process);
    return { send: m => void send(m), onMessage: h => process.on('message', h as (m: unknown) => void), modulePath };
  }
  return null;
}

/**
 * A runner process must not outlive its worker: when the worker dies (even SIGKILLed) the runner
 * kills its own process group — itself and whatever its handler started. A watchdog thread checks
 * the parent, because a handler that blocks the event loop would never see the IPC channel close.
 */
function dieWithParent(): void {
  const parent = process.ppid;
  const source = `
    const { workerData } = require('node:worker_threads');
    const tick = new Int32Array(new SharedArrayBuffer(4));
    for (;;) {
      Atomics.wait(tick, 0, 0, 250);
      if (process.ppid !== workerData.parent) {
        try { process.kill(-workerData.group, 'SIGKILL'); } catch { process.kill(workerData.group, 'SIGKILL'); }
      }
    }`;
  new Thread(source, { eval: true, workerData: { parent, group: process.pid } }).unref();
  process.on('disconnect', () => {
    try {
      process.kill(-process.pid, 'SIGKILL');
    } catch {
      process.exit(1);
    }
  });
}

async function serve(): Promise<void> {
  const io = channel();
  if (!io) return;
  if (isMainThread) dieWithParent();
  let tasks;
  try {
    tasks = await loadTaskModule(io.modulePath);
  } catch (err) {
    io.send({ t: 'fatal', error: toWireError(err) });
    return;
  }
  const running = new Map<number, AbortController>();
  io.onMessage(message => {
    if (message.t === 'abort') {
      running.get(message.id)?.abort(fromWireError(message.reason));
      return;
    }
    const { id, ctx: wire } = message;
    const task = tasks.byName.get(message.task);
    const controller = new AbortController();
    running.set(id, controller);
    const log = (level: 'debug' | 'info' | 'warn' | 'error') => (text: string, fields: Record<string, unknown> = {}) =>
      io.send({ t: 'log', id, level, message: String(text), fields: JSON.parse(JSON.stringify(fields ?? {})) as Record<string, unknown> });
    const logger = { debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
    const ctx = {
      ...wire,
      signal: controller.signal,
      logger,
      progress: (value: number | object) => {
        io.send({ t: 'progress', id, value });
        return Promise.resolve();
      },
    } as unknown as TaskContext;
    void (async () => {
      try {
        if (!task) throw new TasklineError('UNKNOWN_TASK', `The isolated runner has no task "${message.task}"; the tasks module changed since the worker started — restart the worker.`);
        const value: unknown = await task.run(message.data, ctx);
        io.send({ t: 'done', id, ok: true, value });
      } catch (err) {
        io.send({ t: 'done', id, ok: false, error: toWireError(err) });
      } finally {
        running.delete(id);
      }
    })();
  });
  io.send({ t: 'ready' });
}

void serve();
