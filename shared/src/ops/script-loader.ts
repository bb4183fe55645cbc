import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { TasklineError } from '../errors.js';
import { toConnectionError } from '../connection/index.js';
import type { TasklineConnections } from '../connection/index.js';
import type { Logger } from '../process/index.js';
import { RESULT_BACKEND_SCRIPTS } from '../job/index.js';
import type { RedisService } from '../connection/index.js';
import { luaScript, type LuaScript } from '../connection/index.js';

/** Every script taskline's processes run, by the Redis service they run on. */
export interface ScriptCatalog {
  broker: readonly LuaScript[];
  backend: readonly LuaScript[];
}

/** What one load or check found on one service. */
export interface ScriptReport {
  service: 'broker' | 'backend';
  host: string;
  port: number;
  total: number;
  /** Scripts that were missing (check) or that this call loaded (load). */
  missing: string[];
}

/**
 * BullMQ's Lua scripts exactly as BullMQ defines them on a client: read through its own
 * `RedisConnection.prototype.loadCommands` (pass BullMQ's `RedisConnection`), so the SHAs are the
 * ones its EVALSHA calls use, whatever the BullMQ version installed beside the bin.
 */
export function bullmqScripts(redisConnection: unknown): LuaScript[] {
  const loadCommands = (redisConnection as { prototype?: { loadCommands?: unknown } } | undefined)?.prototype?.loadCommands;
  const found: LuaScript[] = [];
  if (typeof loadCommands === 'function') {
    const client = {
      defineCommand: (name: string, definition: { lua: string }) => {
        found.push(luaScript(`bullmq:${name.split(':')[0] ?? name}`, definition.lua));
      },
    };
    loadCommands.call({ _client: client }, 'loader');
  }
  if (found.length === 0) {
    throw new TasklineError(
      'SCRIPTS_UNKNOWN_BULLMQ',
      "Cannot read BullMQ's Lua scripts from this BullMQ (no RedisConnection.prototype.loadCommands defining them); taskline's script loader supports BullMQ 6 — install the bullmq version in the bin's package.json.",
    );
  }
  return found;
}

/**
 * The scripts one package adds to the catalog, exported as `TASKLINE_SCRIPTS` from its `/scripts`
 * subpath (the beat's lease lives in @taskline/scheduler, not here).
 */
export interface ScriptContribution {
  package: string;
  broker: readonly LuaScript[];
  backend: readonly LuaScript[];
}

/** Packages that may contribute scripts; each is looked for beside the bin and the working directory. */
const CONTRIBUTORS = ['@taskline/scheduler/scripts'] as const;

/**
 * The contributions of the taskline packages installed beside this process (the image installs
 * every bin, so its loader knows every script). Read when a scripts command runs, never at import.
 */
export async function installedScriptContributions(bases: readonly string[] = [process.argv[1] ?? '', join(process.cwd(), 'index.js')]): Promise<ScriptContribution[]> {
  const found: ScriptContribution[] = [];
  for (const specifier of CONTRIBUTORS) {
    const path = resolveFrom(bases, specifier);
    if (path === null) continue;
    const mod = (await import(pathToFileURL(path).href)) as { TASKLINE_SCRIPTS?: ScriptContribution };
    if (mod.TASKLINE_SCRIPTS) found.push(mod.TASKLINE_SCRIPTS);
  }
  return found;
}

function resolveFrom(bases: readonly string[], specifier: string): string | null {
  for (const base of bases.filter(Boolean)) {
    try {
      return createRequire(base).resolve(specifier);
    } catch {
      // not installed beside this base
    }
  }
  return null;
}

/** The broker gets BullMQ's scripts and the contributions'; the result backend the job state machine and theirs. */
export function scriptCatalog(redisConnection: unknown, contributions: readonly ScriptContribution[] = []): ScriptCatalog {
  return {
    broker: [...bullmqScripts(redisConnection), ...contributions.flatMap(c => c.broker)],
    backend: [...RESULT_BACKEND_SCRIPTS, ...contributions.flatMap(c => c.backend)],
  };
}

async function missingOn(service: RedisService, scripts: readonly LuaScript[]): Promise<LuaScript[]> {
  const exists = (await service.client().call('SCRIPT', 'EXISTS', ...scripts.map(s => s.sha))) as number[];
  return scripts.filter((_, i) => exists[i] !== 1);
}

function report(service: RedisService, total: number, missing: LuaScript[]): ScriptReport {
  return { service: service.service, host: service.target.host, port: service.target.port, total, missing: missing.map(s => s.name) };
}

/** Which scripts a service lacks (SCRIPT EXISTS; the loader user may run it). */
export async function checkScripts(service: RedisService, scripts: readonly LuaScript[]): Promise<ScriptReport> {
  try {
    return report(service, scripts.length, await missingOn(service, scripts));
  } catch (err) {
    throw toConnectionError(err, service.target);
  }
}

/** Loads the scripts a service lacks (SCRIPT LOAD, one pipeline); the report names what it loaded. */
export async function loadScripts(service: RedisService, scripts: readonly LuaScript[]): Promise<ScriptReport> {
  try {
    const missing = await missingOn(service, scripts);
    if (missing.length > 0) {
      const pipeline = service.client().pipeline();
      for (const s of missing) pipeline.call('SCRIPT', 'LOAD', s.source);
      const replies = (await pipeline.exec()) ?? [];
      replies.forEach(([err, sha], i) => {
        if (err) throw err;
        const expected = missing[i]?.sha;
        if (sha !== expected) {
          throw new TasklineError('SCRIPTS_SHA_MISMATCH', `Redis answered SHA ${String(sha)} for the script "${missing[i]?.name}", not ${expected}; this Redis hashes scripts differently and cannot run taskline with REDIS_SCRIPTS=preloaded.`);
        }
      });
    }
    return report(service, scripts.length, missing);
  } catch (err) {
    throw err instanceof TasklineError ? err : toConnectionError(err, service.target);
  }
}

/**
 * Keeps the scripts loaded: at once, after every reconnect (a restarted Redis has none — they
 * live in memory only) and every `intervalMs` (a SCRIPT FLUSH, a failover to a fresh replica).
 * Errors are logged and retried; resolves when `signal` aborts.
 */
/** What the watch last saw on one service: every script in place, or why not. */
export interface ScriptWatchState {
  ok: boolean;
  /** ISO time of the last load round. */
  checkedAt: string | null;
  error: string | null;
}

export async function watchScripts(
  connections: TasklineConnections,
  catalog: ScriptCatalog,
  options: { intervalMs: number; signal: AbortSignal; logger: Logger; state?: Record<'broker' | 'backend', ScriptWatchState> },
): Promise<void> {
  const { logger, signal } = options;
  const state = options.state ?? { broker: { ok: false, checkedAt: null, error: null }, backend: { ok: false, checkedAt: null, error: null } };
  const failing = new Map<string, string>();
  const ensure = async (service: RedisService): Promise<void> => {
    try {
      const done = await loadScripts(service, catalog[service.service]);
      if (done.missing.length > 0) logger.info('loaded scripts', { service: done.service, loaded: done.missing.length, total: done.total });
      if (failing.delete(service.service)) logger.info('scripts in place again', { service: service.service });
      state[service.service] = { ok: true, checkedAt: new Date().toISOString(), error: null };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (failing.get(service.service) !== message) logger.warn(message, { service: service.service, code: (err as { code?: string }).code });
      failing.set(service.service, message);
      state[service.service] = { ok: false, checkedAt: new Date().toISOString(), error: message };
    }
  };
  const services = [connections.broker, connections.backend];
  const running = new Map<RedisService, Promise<void>>();
  // One load at a time per service: a reconnect during a load waits for the next round.
  const kick = (service: RedisService): void => {
    if (signal.aborted || running.has(service)) return;
    running.set(service, ensure(service).finally(() => running.delete(service)));
  };
  for (const service of services) service.client().on('ready', () => kick(service));
  const timer = setInterval(() => services.forEach(kick), options.intervalMs);
  services.forEach(kick);
  await new Promise<void>(resolve => {
    if (signal.aborted) resolve();
    else signal.addEventListener('abort', () => resolve(), { once: true });
  });
  clearInterval(timer);
  await Promise.allSettled(running.values());
}
