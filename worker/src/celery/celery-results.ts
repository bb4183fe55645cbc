import type { Redis } from 'ioredis';
import type { JobErrorInfo } from '@taskline/shared';

/** Celery's states (celery/states.py); READY ones carry `date_done`. */
export type CeleryState = 'STARTED' | 'RETRY' | 'SUCCESS' | 'FAILURE' | 'REVOKED';
const READY: ReadonlySet<CeleryState> = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);

/** Celery's result key prefix (celery/backends/base.py `KeyValueStoreBackend.task_keyprefix`). */
export const CELERY_META_PREFIX = 'celery-task-meta-';

/**
 * A stored exception as Celery's JSON serializer writes it (backends/base.py `prepare_exception`)
 * and `exception_to_python` turns back into an exception: class name, the args list, the module.
 */
export interface CeleryException {
  exc_type: string;
  exc_message: unknown[];
  exc_module: string | null;
}

// Names that are Python built-in exceptions too: re-raised as that class. Any other name becomes
// a class Celery makes on the fly (exc_module null), never a lookup in a module (which Celery
// refuses unless the name is an exception class there).
const PYTHON_BUILTIN_EXCEPTIONS = new Set([
  'TypeError', 'ValueError', 'KeyError', 'IndexError', 'LookupError', 'RuntimeError', 'NotImplementedError', 'ZeroDivisionError',
  'TimeoutError', 'PermissionError', 'FileNotFoundError', 'AttributeError', 'OSError', 'ConnectionError', 'ArithmeticError', 'AssertionError',
]);

/** A taskline error as the exception Python's `AsyncResult.get()` raises, with the handler's message. */
export function celeryException(error: Pick<JobErrorInfo, 'type' | 'message'>): CeleryException {
  if (error.type === 'TimeLimitError') return { exc_type: 'TimeLimitExceeded', exc_message: [error.message], exc_module: 'billiard.exceptions' };
  if (error.type === 'JobRevokedError') return { exc_type: 'TaskRevokedError', exc_message: [error.message], exc_module: 'celery.exceptions' };
  const name = error.type.replace(/[^A-Za-z0-9_]/g, '_').slice(0, 100) || 'Error';
  return { exc_type: name, exc_message: [error.message], exc_module: PYTHON_BUILTIN_EXCEPTIONS.has(name) ? 'builtins' : null };
}

export function revokedException(reason: string): CeleryException {
  return { exc_type: 'TaskRevokedError', exc_message: [reason], exc_module: 'celery.exceptions' };
}

export interface CeleryMetaExtra {
  traceback?: string | null;
  parentId?: string | null;
  group?: string | null;
}

/**
 * Writes Celery's own result record, exactly as Celery's Redis backend does (backends/redis.py
 * `_set`): `SETEX celery-task-meta-<id> <RESULT_EXPIRES> <json>` and `PUBLISH` of the same value on
 * the key's name, which `AsyncResult.get()` subscribes to, in one MULTI.
 */
export class CeleryResultWriter {
  readonly #client: () => Redis;
  readonly #expiresSeconds: number;
  readonly #hostname: string;

  constructor(client: () => Redis, expiresSeconds: number, hostname: string) {
    this.#client = client;
    this.#expiresSeconds = expiresSeconds;
    this.#hostname = hostname;
  }

  /** The record Celery's `_get_result_meta` + `_store_result` make, as JSON. */
  meta(taskId: string, state: CeleryState, result: unknown, extra: CeleryMetaExtra = {}): string {
    const meta: Record<string, unknown> = {
      status: state,
      result: state === 'STARTED' ? { pid: process.pid, hostname: this.#hostname } : (result ?? null),
      traceback: extra.traceback ?? null,
      children: [],
      // Python's datetime.utcnow().isoformat(): naive UTC with microseconds.
      date_done: READY.has(state) ? `${new Date().toISOString().slice(0, -1)}000` : null,
      ...(extra.group ? { group_id: extra.group } : {}),
      ...(extra.parentId ? { parent_id: extra.parentId } : {}),
      task_id: taskId,
    };
    return JSON.stringify(meta);
  }

  async write(taskId: string, state: CeleryState, result: unknown, extra: CeleryMetaExtra = {}): Promise<void> {
    const key = `${CELERY_META_PREFIX}${taskId}`;
    const value = this.meta(taskId, state, result, extra);
    const replies = await this.#client().multi().setex(key, this.#expiresSeconds, value).publish(key, value).exec();
    const failed = replies?.find(([err]) => err)?.[0];
    if (failed) throw failed;
  }
}
