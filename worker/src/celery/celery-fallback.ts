import type { ChainableCommander } from 'ioredis';
import { kombuListFor, type CeleryRefusal } from './celery-message.js';

/** Dead letters kept at most (the oldest are trimmed): an operator reads and clears the list. */
export const DEAD_LETTER_MAX = 10_000;

/** The broker keys the bridge owns, beside BullMQ's (`<prefix>::` names no queue). */
export function celeryKeys(prefix: string) {
  const base = `${prefix}::celery`;
  return {
    /** Messages that cannot be parsed, newest first: `{ reason, code, queue, at, message }` JSON. */
    deadLetter: `${base}:dead-letter`,
    /** The consumers that may hold a processing list (each alive while its heartbeat key lives). */
    consumers: `${base}:consumers`,
    processing: (consumer: string) => `${base}:processing:${consumer}`,
    heartbeat: (consumer: string) => `${base}:consumer:${consumer}`,
  };
}

export type CeleryKeys = ReturnType<typeof celeryKeys>;

/**
 * Hands a message taskline does not run back to Celery: the raw envelope, unchanged, pushed as
 * kombu pushes it (priority list included) onto the fallback queue that Celery workers consume.
 */
export function queueFallback(multi: ChainableCommander, raw: string, fallbackQueue: string, priority: number | null): void {
  multi.lpush(kombuListFor(fallbackQueue, priority), raw);
}

/** Keeps a message that cannot be parsed, with why, where an operator can read it. */
export function queueDeadLetter(multi: ChainableCommander, keys: CeleryKeys, raw: string, queue: string, refusal: CeleryRefusal, now: number): void {
  multi.lpush(keys.deadLetter, JSON.stringify({ code: refusal.code, reason: refusal.reason, queue, at: new Date(now).toISOString(), message: raw }));
  multi.ltrim(keys.deadLetter, 0, DEAD_LETTER_MAX - 1);
}

/** The priority kombu filed a message under, read without trusting the rest of it. */
export function rawPriority(raw: string): number | null {
  try {
    const p = (JSON.parse(raw) as { properties?: { priority?: unknown } }).properties?.priority;
    return typeof p === 'number' && Number.isFinite(p) ? p : null;
  } catch {
    return null;
  }
}
