import type { CommandModule } from 'yargs';
import { ConfigError, ConnectionError, TasklineError } from '../errors.js';
import { backoffDelay, sleep } from '../process/index.js';
import type { ConnectionOptions } from '../connection/index.js';
import { createConnections, type TasklineConnections } from '../connection/index.js';
import { connectionOptionsFromFlags, withConnectionFlags } from './health-command.js';
import { createLogger } from '../process/index.js';
import { checkScripts, installedScriptContributions, loadScripts, scriptCatalog, watchScripts, type ScriptCatalog, type ScriptReport, type ScriptWatchState } from './script-loader.js';
import { startOpsServer, type OpsServer } from './ops-server.js';

type Out = (line: string) => void;
type Flags = { 'redis-url'?: string; 'result-redis-url'?: string };

function line(r: ScriptReport, verb: 'loaded' | 'missing'): string {
  const where = `${r.service === 'broker' ? 'broker' : 'result backend'} ${r.host}:${r.port}`;
  if (verb === 'missing') {
    return r.missing.length === 0
      ? `ok   ${where}: all ${r.total} scripts loaded`
      : `MISSING ${where}: ${r.missing.length} of ${r.total} scripts not loaded (${r.missing.slice(0, 3).join(', ')}${r.missing.length > 3 ? ', …' : ''}); run \`scripts load\` as the loader user`;
  }
  return `ok   ${where}: ${r.total} scripts in place, ${r.missing.length} loaded now`;
}

/** Runs `fn` with the loader's connections (the bin's REDIS_* / RESULT_REDIS_* settings); returns the exit code. */
async function withConnections(options: ConnectionOptions, out: Out, fn: (c: TasklineConnections) => Promise<number>): Promise<number> {
  let connections: TasklineConnections;
  try {
    connections = createConnections({
      options: { ...options, healthCheckIntervalMs: 0 },
      role: 'cli',
      component: 'script-loader',
      logger: createLogger({ component: 'script-loader', level: process.env['LOG_LEVEL'] ?? 'error' }),
    });
  } catch (err) {
    out(`FAIL configuration: ${err instanceof Error ? err.message : String(err)}`);
    return err instanceof ConfigError ? 2 : 1;
  }
  try {
    await connections.connect();
    return await fn(connections);
  } catch (err) {
    out(`FAIL ${err instanceof TasklineError ? err.message : err instanceof Error ? err.message : String(err)}`);
    return 1;
  } finally {
    await connections.close();
  }
}

/** `scripts load`: loads what is missing on both services once; exit 0 when both have every script. */
export function runScriptsLoad(options: ConnectionOptions, catalog: ScriptCatalog, out: Out = console.log): Promise<number> {
  return withConnections(options, out, async c => {
    for (const service of [c.broker, c.backend]) out(line(await loadScripts(service, catalog[service.service]), 'loaded'));
    return 0;
  });
}

/** `scripts check`: exit 0 when both services have every script, 1 when any is missing. */
export function runScriptsCheck(options: ConnectionOptions, catalog: ScriptCatalog, out: Out = console.log): Promise<number> {
  return withConnections(options, out, async c => {
    let missing = 0;
    for (const service of [c.broker, c.backend]) {
      const r = await checkScripts(service, catalog[service.service]);
      missing += r.missing.length;
      out(line(r, 'missing'));
    }
    return missing === 0 ? 0 : 1;
  });
}

/**
 * `scripts load --watch`: loads, then reloads after every Redis restart until SIGTERM/SIGINT. With
 * `metricsPort`, serves /healthz, /readyz (200 while both servers have every script) and /metrics.
 */
async function runScriptsWatch(options: ConnectionOptions, catalog: ScriptCatalog, intervalMs: number, metricsPort: number | null): Promise<number> {
  const logger = createLogger({ component: 'script-loader' });
  const stop = new AbortController();
  const onSignal = (signal: string): void => {
    logger.info('stopping', { signal });
    stop.abort();
  };
  process.once('SIGTERM', () => onSignal('SIGTERM'));
  process.once('SIGINT', () => onSignal('SIGINT'));
  // A sidecar may start before Redis: keep trying to connect, unless retrying cannot help
  // (bad configuration, password, permission or certificate).
  let connections: TasklineConnections | null = null;
  for (let attempt = 1; connections === null; attempt++) {
    let candidate: TasklineConnections;
    try {
      candidate = createConnections({ options: { ...options, healthCheckIntervalMs: 0 }, role: 'cli', component: 'script-loader', logger });
    } catch (err) {
      logger.error(err instanceof Error ? err.message : String(err), { code: (err as { code?: string }).code });
      return err instanceof ConfigError ? 2 : 1;
    }
    try {
      await candidate.connect();
      connections = candidate;
    } catch (err) {
      await candidate.close();
      const fatal = !(err instanceof ConnectionError) || !err.retryable;
      logger[fatal ? 'error' : 'warn'](err instanceof Error ? err.message : String(err), { code: (err as { code?: string }).code });
      if (fatal) return 1;
      await sleep(backoffDelay(attempt, { baseMs: 500, capMs: 5000 }), stop.signal);
      if (stop.signal.aborted) return 0;
    }
  }
  const state: Record<'broker' | 'backend', ScriptWatchState> = {
    broker: { ok: false, checkedAt: null, error: null },
    backend: { ok: false, checkedAt: null, error: null },
  };
  let ops: OpsServer | null = null;
  try {
    if (metricsPort !== null) {
      const registry = connections.registry;
      ops = await startOpsServer({ port: metricsPort, registry, ready: () => ({ ok: state.broker.ok && state.backend.ok, ...state }) });
      logger.info('ops server listening', { port: ops.port, paths: ['/metrics', '/healthz', '/readyz'] });
    }
    logger.info('watching: scripts are reloaded after every Redis restart', { broker: catalog.broker.length, backend: catalog.backend.length, intervalMs });
    await watchScripts(connections, catalog, { intervalMs, signal: stop.signal, logger, state });
  } catch (err) {
    logger.error(err instanceof Error ? err.message : String(err));
    return 1;
  } finally {
    await ops?.close();
    await connections.close();
  }
  return 0;
}

function usageError(message: string): void {
  console.error(message);
  process.exitCode = 2;
}

/**
 * `scripts load|check|list`: mounted by every taskline bin (like `health`). Give it BullMQ's
 * `RedisConnection` from the bin's own bullmq import, so the scripts are that BullMQ's.
 */
export function scriptsCommand(redisConnection: unknown): CommandModule<object, Flags> {
  const catalog = async (): Promise<ScriptCatalog> => scriptCatalog(redisConnection, await installedScriptContributions());
  return {
    command: 'scripts <action>',
    describe: "Load, check or list the Lua scripts taskline and BullMQ run (for REDIS_SCRIPTS=preloaded; run as the loader ACL user)",
    builder: yargs =>
      withConnectionFlags(yargs)
        .positional('action', { choices: ['load', 'check', 'list'] as const, describe: 'load: SCRIPT LOAD what is missing; check: exit 1 if any is missing; list: print service, SHA and name' })
        .option('watch', { type: 'boolean', default: false, describe: 'load: keep running and reload after every Redis restart (a sidecar beside the deployment)' })
        .option('interval-ms', { type: 'number', default: 5000, describe: 'load --watch: also check this often (catches SCRIPT FLUSH)' })
        .option('metrics-port', { type: 'number', describe: 'load --watch: serve /healthz, /readyz (200 while every script is in place) and /metrics on this port' }) as never,
    handler: async argv => {
      const args = argv as unknown as Flags & { action: 'load' | 'check' | 'list'; watch: boolean; 'interval-ms': number; 'metrics-port'?: number };
      const interval = args['interval-ms'];
      const port = args['metrics-port'];
      if (args.watch && args.action !== 'load') return usageError(`--watch goes with \`scripts load\`, not \`scripts ${args.action}\`; drop it.`);
      if (port !== undefined && !args.watch) return usageError('--metrics-port goes with `scripts load --watch`; add --watch or drop it.');
      if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) {
        return usageError(`--metrics-port must be a port number from 0 to 65535, got "${String(port)}"; fix it.`);
      }
      if (!Number.isInteger(interval) || interval < 100 || interval > 3_600_000) {
        return usageError(`--interval-ms must be a whole number from 100 to 3600000, got "${String(interval)}"; fix it.`);
      }
      let all: ScriptCatalog;
      try {
        all = await catalog();
      } catch (err) {
        console.error(err instanceof Error ? err.message : String(err));
        process.exitCode = 1;
        return;
      }
      const options = connectionOptionsFromFlags(args);
      if (args.action === 'list') {
        for (const service of ['broker', 'backend'] as const) for (const s of all[service]) console.log(`${service} ${s.sha} ${s.name}`);
      } else if (args.action === 'check') process.exitCode = await runScriptsCheck(options, all);
      else if (!args.watch) process.exitCode = await runScriptsLoad(options, all);
      else process.exitCode = await runScriptsWatch(options, all, interval, port ?? null);
    },
  };
}
