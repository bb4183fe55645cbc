import { toJobErrorInfo } from '@taskline/shared/job';

/** Messages between a worker and the child process or thread that runs its isolated handlers. */

/** What a handler's context carries across the boundary (the signal and logger are rebuilt there). */
export interface IsolatedContext {
  jobId: string;
  task: string;
  queue: string;
  attempt: number;
  attempts: number;
  delivery: number;
  redelivered: boolean;
}

/** An error as it crosses the boundary; rebuilt as an Error of the same name on the other side. */
export interface WireError {
  name: string;
  message: string;
  stack: string | null;
  /** True when the handler threw something that is not an Error (message is a safe summary). */
  nonError?: boolean;
}

export type ToChild =
  | { t: 'run'; id: number; task: string; data: unknown; ctx: IsolatedContext }
  | { t: 'abort'; id: number; reason: WireError };

export type FromChild =
  | { t: 'ready' }
  | { t: 'fatal'; error: WireError }
  | { t: 'done'; id: number; ok: true; value: unknown }
  | { t: 'done'; id: number; ok: false; error: WireError }
  | { t: 'progress'; id: number; value: unknown }
  | { t: 'log'; id: number; level: 'debug' | 'info' | 'warn' | 'error'; message: string; fields: Record<string, unknown> };

/** Anything thrown, as it crosses: the same summary an in-process failure would store. */
export function toWireError(thrown: unknown): WireError {
  const info = toJobErrorInfo(thrown);
  return { name: info.type, message: info.message, stack: info.stack, ...(thrown instanceof Error ? {} : { nonError: true }) };
}

/** Rebuilds an error from the wire: same name, message and stack (so records and retries see it as thrown). */
export function fromWireError(wire: WireError, make?: (message: string) => Error): Error {
  const error = make ? make(wire.message) : new Error(wire.message);
  Object.defineProperty(error, 'name', { value: wire.name, configurable: true, writable: true });
  if (wire.stack !== null) error.stack = wire.stack;
  return error;
}
