import { accessSync, constants } from 'node:fs';
import { ConfigError, type Secret, isProduction, type Logger } from '@taskline/shared';
import { assertQueueName } from '@taskline/shared/job';
import { resolveSetting, resolveSettings } from '@taskline/shared/settings';
import type { AnyProducer } from './producer.js';
import { API_SETTINGS, API_TLS_SETTINGS } from './settings.js';

type Env = Record<string, string | undefined>;

/** The API's own certificate (HTTPS), and optionally the CA its clients' certificates must chain to. */
export interface ApiTlsOptions {
  /** PEM certificate (chain) the API presents. */
  certFile: string;
  /** Its PEM private key. */
  keyFile: string;
  /** When set, every client must present a certificate issued by this CA (mutual TLS), besides the token. */
  caFile?: string | null;
}

export interface ApiServerOptions {
  producer: AnyProducer;
  /** @defaultValue `8000` (env `PORT`) */
  port?: number;
  /** Address to bind. @defaultValue `PRODUCER_API_HOST` or `127.0.0.1` (loopback only) */
  host?: string;
  /** The bearer token; when unset, `PRODUCER_API_TOKEN` / `PRODUCER_API_TOKEN_FILE` are read. */
  token?: Secret | null;
  /** Strict mode: a token and HTTPS are required. @defaultValue `isProduction(env)` (`TASKLINE_ENV`, else `NODE_ENV`) */
  production?: boolean;
  /** Serve HTTPS with these files. @defaultValue `PRODUCER_API_TLS_CERT` / `_KEY` / `_CA`, else plain HTTP */
  tls?: ApiTlsOptions | null;
  /** Plain HTTP in production, for a TLS-terminating proxy in front; warned at start. @defaultValue `PRODUCER_API_ALLOW_HTTP` or `false` */
  allowHttp?: boolean;
  /**
   * Queues API callers may name in `options.queue`; the producer's default queue is always one.
   * @defaultValue {@link resolveApiQueues}: `TASKLINE_QUEUES` (comma-separated) plus the default queue
   */
  allowedQueues?: readonly string[];
  /** Largest request body. @defaultValue `PRODUCER_MAX_BODY_BYTES` or twice the producer's maxPayloadBytes */
  maxBodyBytes?: number;
  /** How long stop() waits for in-flight requests. @defaultValue `10000` */
  shutdownGraceMs?: number;
  logger: Logger;
  env?: Env;
}

export interface ResolvedApiTls {
  certFile: string;
  keyFile: string;
  caFile: string | null;
}

export interface ResolvedApiServerOptions {
  producer: AnyProducer;
  port: number;
  host: string;
  token: Secret | null;
  production: boolean;
  tls: ResolvedApiTls | null;
  allowHttp: boolean;
  allowedQueues: ReadonlySet<string>;
  maxBodyBytes: number;
  shutdownGraceMs: number;
  logger: Logger;
}

export const DEFAULT_API_HOST = API_SETTINGS.host.default;

/**
 * The HTTP API's bearer token: `PRODUCER_API_TOKEN`, or the file named by
 * `PRODUCER_API_TOKEN_FILE` (Docker secrets). `null` when neither is set.
 */
export function readApiToken(env: Env): Secret | null {
  checkOneToken(env);
  return resolveSetting('token', API_SETTINGS.token, { env }) ?? null;
}

function checkOneToken(env: Env): void {
  if (env['PRODUCER_API_TOKEN'] && env['PRODUCER_API_TOKEN_FILE']) {
    throw new ConfigError('CONFIG_API_TOKEN_TWICE', 'PRODUCER_API_TOKEN', 'Both PRODUCER_API_TOKEN and PRODUCER_API_TOKEN_FILE are set; keep only one.');
  }
}

function readable(variable: string, file: string, what: string): string {
  try {
    accessSync(file, constants.R_OK);
  } catch (err) {
    throw new ConfigError(
      'CONFIG_API_TLS',
      variable,
      `${variable} names ${what} "${file}" that cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'}); fix the path or the file's permissions.`,
      { cause: err },
    );
  }
  return file;
}

function resolveApiTls(option: ApiTlsOptions | null | undefined, env: Env): ResolvedApiTls | null {
  if (option === null) return null;
  const fromEnv = resolveSettings(API_TLS_SETTINGS, { env });
  const cert = option ? option.certFile : fromEnv.certFile;
  const key = option ? option.keyFile : fromEnv.keyFile;
  const ca = option ? (option.caFile ?? undefined) : fromEnv.caFile;
  const name = (variable: string, field: string): string => (option ? `tls.${field}` : variable);
  if (!cert && !key) {
    if (ca) {
      throw new ConfigError('CONFIG_API_TLS', name('PRODUCER_API_TLS_CA', 'caFile'), 'PRODUCER_API_TLS_CA (client certificates) needs HTTPS; set PRODUCER_API_TLS_CERT and PRODUCER_API_TLS_KEY too.');
    }
    return null;
  }
  if (!cert || !key) {
    const missing = cert ? name('PRODUCER_API_TLS_KEY', 'keyFile') : name('PRODUCER_API_TLS_CERT', 'certFile');
    throw new ConfigError('CONFIG_API_TLS', missing, `HTTPS needs both PRODUCER_API_TLS_CERT and PRODUCER_API_TLS_KEY; set ${missing} too.`);
  }
  return {
    certFile: readable(name('PRODUCER_API_TLS_CERT', 'certFile'), cert, 'a certificate file'),
    keyFile: readable(name('PRODUCER_API_TLS_KEY', 'keyFile'), key, 'a key file'),
    caFile: ca ? readable(name('PRODUCER_API_TLS_CA', 'caFile'), ca, 'a CA file') : null,
  };
}

/**
 * The queues HTTP API callers may name: `TASKLINE_QUEUES` (comma-separated) and the producer's
 * default queue. A fixed set, so no client can make the producer create queues, BullMQ objects
 * or metric series without bound. (The one place to add route targets to.)
 */
export function resolveApiQueues(env: Env, defaultQueue: string, explicit?: readonly string[], routed: readonly string[] = []): ReadonlySet<string> {
  const variable = explicit ? 'allowedQueues' : 'TASKLINE_QUEUES';
  const listed = resolveSetting('allowedQueues', API_SETTINGS.allowedQueues, { options: { allowedQueues: explicit }, env }) ?? [];
  // The queues the routes send tasks to are always allowed: a caller naming one goes where routing would.
  const queues = new Set<string>([defaultQueue, ...routed]);
  for (const queue of listed) {
    try {
      queues.add(assertQueueName(queue));
    } catch (err) {
      throw new ConfigError('CONFIG_INVALID_QUEUES', variable, `${variable}: ${(err as Error).message}`, { cause: err });
    }
  }
  return queues;
}

export function resolveApiServerOptions(options: ApiServerOptions): ResolvedApiServerOptions {
  const env = options.env ?? process.env;
  const production = options.production ?? isProduction(env);
  if (options.token === undefined) checkOneToken(env);
  // The token option (null: none) wins over PRODUCER_API_TOKEN(_FILE), and is judged the same way.
  const { allowedQueues: _queues, token, ...settings } = resolveSettings(API_SETTINGS, { options, env });
  if (!token && production) {
    throw new ConfigError(
      'CONFIG_API_TOKEN_MISSING',
      'PRODUCER_API_TOKEN',
      'The producer API refuses to start in production without a token; set PRODUCER_API_TOKEN (or PRODUCER_API_TOKEN_FILE) to a long random value, e.g. `openssl rand -hex 32`.',
    );
  }
  const tls = resolveApiTls(options.tls, env);
  if (!tls && production && !settings.allowHttp) {
    throw new ConfigError(
      'CONFIG_API_PLAINTEXT_IN_PRODUCTION',
      'PRODUCER_API_TLS_CERT',
      'The producer API refuses plain HTTP in production, where the bearer token would cross the network in clear; set PRODUCER_API_TLS_CERT and PRODUCER_API_TLS_KEY, or, only behind a TLS-terminating proxy, PRODUCER_API_ALLOW_HTTP=true.',
    );
  }
  return {
    ...settings,
    producer: options.producer,
    token: token ?? null,
    production,
    tls,
    allowedQueues: resolveApiQueues(env, options.producer.options.defaultQueue, options.allowedQueues, options.producer.options.routes.queues),
    maxBodyBytes: settings.maxBodyBytes ?? options.producer.options.maxPayloadBytes * 2,
    logger: options.logger,
  };
}
