import type { Argv, CommandModule } from 'yargs';
import { ConfigError, TasklineError } from '../errors.js';
import type { ConnectionOptions } from '../connection/index.js';
import { createConnections, type HealthReport } from '../connection/index.js';
import type { ConnectionHealth } from '../connection/index.js';
import { createLogger } from '../process/index.js';
import { CONNECTION_SETTINGS, endpointTable } from '../connection/index.js';
import { addFlags } from '../settings/index.js';
import { optionsFromFlags } from '../settings/index.js';
import { describeUnknownVariable, findUnknownVariables } from '../settings/index.js';

/** One line per connection: what an operator reads first. */
export function formatHealthLine(h: ConnectionHealth): string {
  const where = `${h.label} ${h.host}:${h.port}`;
  if (!h.ok) return `FAIL ${where}: ${h.error ?? 'unknown error'}`;
  const tls = h.tls
    ? `${h.tls.protocol ?? '?'} ${h.tls.cipher ?? '?'}, server certificate expires in ${h.tls.peerCertificateDaysLeft ?? '?'} days`
    : 'PLAINTEXT (no TLS)';
  return `ok   ${where}: ${tls}, latency ${h.latencyMs ?? '?'} ms`;
}

export function formatHealthReport(report: HealthReport): string {
  return [formatHealthLine(report.broker), formatHealthLine(report.backend)].join('\n');
}

type Flags = { 'redis-url'?: unknown; 'result-redis-url'?: unknown };

/**
 * The yargs flags every bin accepts for its connections, from the tables: the endpoint URLs
 * (`--redis-url`, `--result-redis-url`) and every `CONNECTION_SETTINGS` row with a flag. They
 * layer over the environment.
 */
export function withConnectionFlags<T>(yargs: Argv<T>): Argv<T & { 'redis-url'?: string | undefined; 'result-redis-url'?: string | undefined }> {
  const urls = { broker: endpointTable('REDIS_').url, backend: endpointTable('RESULT_REDIS_').url };
  return addFlags(addFlags(yargs, urls), CONNECTION_SETTINGS) as Argv<T & { 'redis-url'?: string | undefined; 'result-redis-url'?: string | undefined }>;
}

/**
 * Turns the connection flags into library options (the same resolver as env and code). The
 * resolver names the flags in its errors and warns about a password in them (argv is public).
 */
export function connectionOptionsFromFlags(argv: Flags): ConnectionOptions {
  const options: ConnectionOptions = { ...optionsFromFlags(CONNECTION_SETTINGS, argv), urlSource: 'flags' };
  if (typeof argv['redis-url'] === 'string' && argv['redis-url']) options.broker = { url: argv['redis-url'] };
  if (typeof argv['result-redis-url'] === 'string' && argv['result-redis-url']) options.backend = { url: argv['result-redis-url'] };
  return options;
}

type Env = Record<string, string | undefined>;

/** Checks both connections once, prints a line each; exit code 0 only when both are healthy. */
export async function runHealthCheck(options: ConnectionOptions, out: (line: string) => void = console.log, env: Env = process.env): Promise<number> {
  let connections;
  try {
    connections = createConnections({
      options: { ...options, healthCheckIntervalMs: 0 },
      env,
      role: 'cli',
      component: 'health',
      logger: createLogger({ component: 'health', level: env['LOG_LEVEL'] ?? 'error', env }),
    });
  } catch (err) {
    out(`FAIL configuration: ${err instanceof Error ? err.message : String(err)}`);
    return err instanceof ConfigError ? 2 : 1;
  }
  // Start-up warnings (plaintext, a password on the command line) are news to whoever runs this.
  for (const warning of connections.options.warnings) console.error(`WARN ${warning}`);
  for (const unknown of findUnknownVariables(env)) console.error(`WARN ${describeUnknownVariable(unknown)}`);
  try {
    const report = await connections.checkHealth();
    out(formatHealthReport(report));
    return report.ok ? 0 : 1;
  } catch (err) {
    out(`FAIL ${err instanceof TasklineError ? err.message : String(err)}`);
    return 1;
  } finally {
    await connections.close();
  }
}

/** `health`: mounted by every taskline bin, reading its settings from `env`. */
export function healthCommand(env: Env = process.env): CommandModule<object, Flags> {
  return {
    command: 'health',
    describe: 'Check the broker and result-backend connections (TLS version, cipher, certificate days left, latency)',
    builder: yargs => withConnectionFlags(yargs),
    handler: async argv => {
      process.exitCode = await runHealthCheck(connectionOptionsFromFlags(argv), console.log, env);
    },
  };
}
