import { accessSync, constants, readFileSync } from 'node:fs';
import { ConfigError, type ServiceRole } from './errors.js';
import { envPrefix } from './error-mapping.js';
import { checkCommandLinePassword, envLayer, merge, optionsLayer, type EndpointLayer } from './endpoint-layers.js';
import { firstDefined, parseBooleanSetting, parseIntegerSetting, parseSecondsSetting } from './env-parsing.js';
import { isProduction } from './environment.js';
import { Secret } from './secret.js';
import { DEFAULT_TLS_CIPHERS, checkCipherList, parseTlsVersion, type TlsVersion } from './tls-policy.js';

export { DEFAULT_TLS_CIPHERS, type TlsVersion };

/** One Redis service (broker or result backend) as a caller may describe it. Every field is optional. */
export interface RedisEndpointOptions {
  /** `redis://` or `rediss://` URL; fields given beside it override its parts. */
  url?: string;
  /** @defaultValue `127.0.0.1` */
  host?: string;
  /** @defaultValue `6379` */
  port?: number;
  /** @defaultValue `0` */
  db?: number;
  /** ACL user name. */
  username?: string;
  password?: string;
  /** A file holding the password (Docker secrets); read once at start. */
  passwordFile?: string;
  /** Use TLS. @defaultValue `true` */
  tls?: boolean;
  /** PEM file of the CA that issued the server certificate; without it the system trust store is used. */
  caFile?: string;
  /** PEM client certificate for mutual TLS. */
  certFile?: string;
  /** PEM private key of the client certificate. */
  keyFile?: string;
  /** The name the server certificate must carry; defaults to `host` (needed when `host` is an IP not in the SANs). */
  servername?: string;
}

/** Everything a process needs to open its Redis connections. */
export interface ConnectionOptions {
  broker?: RedisEndpointOptions;
  /** Each field unset here falls back to the broker's. */
  backend?: RedisEndpointOptions;
  /** Strict mode: refuses plaintext and insecure TLS. @defaultValue `isProduction(env)`: `TASKLINE_ENV`, else `NODE_ENV`, is `production` */
  production?: boolean;
  /** Emergency rollback switch allowing plaintext in production; warns at every start. @defaultValue `false` */
  allowPlaintext?: boolean;
  /** Connections per service (broker, result backend). @defaultValue `50` */
  maxConnections?: number;
  /** How long a caller waits for a free connection before PoolExhaustedError. @defaultValue `10000` */
  acquireTimeoutMs?: number;
  /** How many callers may wait for a connection at once. @defaultValue `1000` */
  maxWaiting?: number;
  /** Interval of the background PING. @defaultValue `30000` */
  healthCheckIntervalMs?: number;
  /** First reconnect delay. @defaultValue `100` */
  retryBaseMs?: number;
  /** Longest reconnect delay. @defaultValue `2000` */
  retryCapMs?: number;
  /** Reconnect attempts a command waits through before failing (producers), and start-up attempts. @defaultValue `3` */
  retries?: number;
  /** TCP + TLS connect timeout. @defaultValue `5000` */
  connectTimeoutMs?: number;
  /** Per-command timeout for non-blocking commands (0 = none). @defaultValue `0` */
  commandTimeoutMs?: number;
  /** @defaultValue `'TLSv1.2'` */
  tlsMinVersion?: TlsVersion;
  /** @defaultValue `'TLSv1.3'` */
  tlsMaxVersion?: TlsVersion;
  /** OpenSSL cipher list for TLS 1.2; each entry must be forward-secret and AEAD. @defaultValue {@link DEFAULT_TLS_CIPHERS} */
  tlsCiphers?: string;
  /**
   * How Lua scripts reach Redis: `'eval'` (EVALSHA, and EVAL of the source on NOSCRIPT; the Redis
   * users need EVAL) or `'preloaded'` (EVALSHA only; `taskline-<bin> scripts load --watch` loads
   * them as the `loader` user, so app users need no EVAL — see docs/SECURITY.md).
   * @defaultValue `REDIS_SCRIPTS` or `'eval'`
   */
  scriptLoading?: 'eval' | 'preloaded';
  /** With `preloaded`: how long a call waits for a missing script (Redis restarted) before SCRIPTS_NOT_LOADED. @defaultValue `REDIS_SCRIPTS_WAIT_MS` or `10000` */
  scriptWaitMs?: number;
  /**
   * Where `broker.url` / `backend.url` came from. `'flags'` (the bins' `--redis-url` and
   * `--result-redis-url`) names the flags in errors, and a password in them — readable by every
   * user of the host in the process list — is warned about, and refused in production.
   * @defaultValue `'options'`
   */
  urlSource?: 'options' | 'flags';
}

export interface ResolvedTlsOptions {
  caFile: string | null;
  certFile: string | null;
  keyFile: string | null;
  servername: string;
  minVersion: TlsVersion;
  maxVersion: TlsVersion;
  ciphers: string;
}

export interface ResolvedEndpoint {
  service: ServiceRole;
  host: string;
  port: number;
  db: number;
  username: string | null;
  password: Secret | null;
  /** `null` means plaintext (only ever outside production, or with the rollback switch). */
  tls: ResolvedTlsOptions | null;
}

export interface ResolvedConnectionOptions {
  broker: ResolvedEndpoint;
  backend: ResolvedEndpoint;
  production: boolean;
  maxConnections: number;
  acquireTimeoutMs: number;
  maxWaiting: number;
  healthCheckIntervalMs: number;
  retryBaseMs: number;
  retryCapMs: number;
  retries: number;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  scriptLoading: 'eval' | 'preloaded';
  scriptWaitMs: number;
  /** Non-fatal findings (plaintext outside production...) for the caller to log at start. */
  warnings: string[];
}

type Env = Record<string, string | undefined>;

function checkReadable(variable: string, file: string, what: string): string {
  try {
    accessSync(file, constants.R_OK);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new ConfigError(
      missing ? 'CONFIG_FILE_MISSING' : 'CONFIG_FILE_UNREADABLE',
      variable,
      missing
        ? `${variable} names ${what} "${file}" that does not exist; fix the path or mount the file.`
        : `${variable} names ${what} "${file}" that this process cannot read; fix its permissions (the process runs as uid ${process.getuid?.() ?? '?'}).`,
      { cause: err },
    );
  }
  return file;
}

function resolveEndpoint(
  service: ServiceRole,
  layer: EndpointLayer,
  shared: { production: boolean; allowPlaintext: boolean; minVersion: TlsVersion; maxVersion: TlsVersion; ciphers: string },
  warnings: string[],
): ResolvedEndpoint {
  const prefix = envPrefix(service);
  if (layer.insecure) {
    throw new ConfigError(
      'CONFIG_INSECURE_TLS',
      layer.insecure.split('=')[0] ?? prefix,
      `${layer.insecure} turns off certificate verification, which taskline never does; remove it and set ${prefix}CA_CERT to the CA that issued the Redis certificate (certs/generate-certs.sh makes one for development).`,
    );
  }
  const host = layer.host ?? '127.0.0.1';
  const port = layer.port ?? 6379;
  const useTls = layer.tls ?? true;
  if (!useTls) {
    if (shared.production && !shared.allowPlaintext) {
      throw new ConfigError(
        'CONFIG_PLAINTEXT_IN_PRODUCTION',
        `${prefix}SSL`,
        `The ${service === 'broker' ? 'broker' : 'result backend'} is configured for plaintext (${prefix}SSL=false or a redis:// URL), which production refuses; use TLS (rediss://, ${prefix}CA_CERT), or set REDIS_ALLOW_PLAINTEXT=true only as an emergency rollback.`,
      );
    }
    warnings.push(
      shared.production
        ? `The ${service} connection to ${host}:${port} is PLAINTEXT because REDIS_ALLOW_PLAINTEXT=true; passwords and job data cross the network unencrypted. Turn TLS back on as soon as possible.`
        : `The ${service} connection to ${host}:${port} is plaintext (allowed outside production only); use TLS before going to production.`,
    );
  }
  let password: Secret | null = null;
  if (layer.password !== undefined) password = new Secret(layer.password);
  else if (layer.passwordFile !== undefined) {
    const file = checkReadable(`${prefix}PASSWORD_FILE`, layer.passwordFile, 'a password file');
    password = new Secret(readFileSync(file, 'utf8').replace(/\r?\n$/, ''));
  }
  let tls: ResolvedTlsOptions | null = null;
  if (useTls) {
    const certFile = layer.certFile ?? null;
    const keyFile = layer.keyFile ?? null;
    if ((certFile === null) !== (keyFile === null)) {
      const missing = certFile === null ? `${prefix}CLIENT_CERT` : `${prefix}CLIENT_KEY`;
      throw new ConfigError(
        'CONFIG_CLIENT_CERT_INCOMPLETE',
        missing,
        `Mutual TLS needs both ${prefix}CLIENT_CERT and ${prefix}CLIENT_KEY; set ${missing} too, or unset both.`,
      );
    }
    tls = {
      caFile: layer.caFile ? checkReadable(`${prefix}CA_CERT`, layer.caFile, 'a CA file') : null,
      certFile: certFile && checkReadable(`${prefix}CLIENT_CERT`, certFile, 'a client certificate'),
      keyFile: keyFile && checkReadable(`${prefix}CLIENT_KEY`, keyFile, 'a client key'),
      servername: layer.servername ?? host,
      minVersion: shared.minVersion,
      maxVersion: shared.maxVersion,
      ciphers: shared.ciphers,
    };
  }
  return {
    service,
    host,
    port,
    db: layer.db ?? 0,
    username: layer.username ?? null,
    password,
    tls,
  };
}

function parseScriptLoading(option: string | undefined, raw: string | undefined): 'eval' | 'preloaded' {
  const [variable, value] = option !== undefined ? ['scriptLoading', option] : ['REDIS_SCRIPTS', raw?.trim()];
  if (value === undefined || value === '') return 'eval';
  if (value === 'eval' || value === 'preloaded') return value;
  throw new ConfigError(
    'CONFIG_INVALID_VALUE',
    variable,
    `${variable} must be "eval" (the Redis users may run EVAL) or "preloaded" (scripts loaded by \`taskline-<bin> scripts load\` as the loader user), got "${value}"; fix or unset it.`,
  );
}

/** True for options that already went through `resolveConnectionOptions`. */
export function isResolvedConnectionOptions(options: ConnectionOptions | ResolvedConnectionOptions | undefined): options is ResolvedConnectionOptions {
  return options !== undefined && Array.isArray((options as ResolvedConnectionOptions).warnings);
}

/**
 * Fills every default and validates, in one place. Library options win over the environment;
 * the result backend's unset fields fall back to the broker's.
 */
export function resolveConnectionOptions(options: ConnectionOptions = {}, env: Env = process.env): ResolvedConnectionOptions {
  const warnings: string[] = [];
  const production = options.production ?? isProduction(env);
  const allowPlaintext = options.allowPlaintext ?? parseBooleanSetting('REDIS_ALLOW_PLAINTEXT', env['REDIS_ALLOW_PLAINTEXT']) ?? false;
  // Library options are judged by the same policy as the environment: a type is no check at run time.
  const minVersion =
    parseTlsVersion('tlsMinVersion', options.tlsMinVersion) ?? parseTlsVersion('REDIS_TLS_MIN_VERSION', env['REDIS_TLS_MIN_VERSION']) ?? 'TLSv1.2';
  const maxVersion =
    parseTlsVersion('tlsMaxVersion', options.tlsMaxVersion) ?? parseTlsVersion('REDIS_TLS_MAX_VERSION', env['REDIS_TLS_MAX_VERSION']) ?? 'TLSv1.3';
  if (minVersion === 'TLSv1.3' && maxVersion === 'TLSv1.2') {
    throw new ConfigError('CONFIG_TLS_VERSION', 'REDIS_TLS_MIN_VERSION', 'REDIS_TLS_MIN_VERSION is above REDIS_TLS_MAX_VERSION; lower the minimum or raise the maximum.');
  }
  const ciphers =
    options.tlsCiphers !== undefined
      ? checkCipherList('tlsCiphers', options.tlsCiphers)
      : env['REDIS_TLS_CIPHERS']
        ? checkCipherList('REDIS_TLS_CIPHERS', env['REDIS_TLS_CIPHERS'])
        : DEFAULT_TLS_CIPHERS;
  const shared = { production, allowPlaintext, minVersion, maxVersion, ciphers };

  const fromFlags = options.urlSource === 'flags';
  const brokerUrlName = fromFlags ? '--redis-url' : 'broker.url';
  const backendUrlName = fromFlags ? '--result-redis-url' : 'backend.url';
  if (fromFlags) {
    checkCommandLinePassword(brokerUrlName, options.broker?.url, 'broker', production, warnings);
    checkCommandLinePassword(backendUrlName, options.backend?.url, 'backend', production, warnings);
  }
  const brokerLayer = merge(envLayer(env, 'REDIS_'), optionsLayer(options.broker, 'broker', brokerUrlName));
  const backendLayer = merge(brokerLayer, envLayer(env, 'RESULT_REDIS_'), optionsLayer(options.backend, 'backend', backendUrlName));
  // A URL on the result backend names a whole server: don't inherit the broker's credentials into it.
  const backendUrl = options.backend?.url ?? env['RESULT_REDIS_URL'];
  if (backendUrl) {
    const fromUrl = merge(envLayer(env, 'RESULT_REDIS_'), optionsLayer(options.backend, 'backend', backendUrlName));
    if (fromUrl.password === undefined && fromUrl.passwordFile === undefined) {
      delete backendLayer.password;
      delete backendLayer.passwordFile;
    }
    if (fromUrl.username === undefined) delete backendLayer.username;
  }

  const int = (variable: string, option: number | undefined, range: { min: number; max: number }): number | undefined =>
    firstDefined(parseIntegerSetting(variable, option, range), parseIntegerSetting(variable, env[variable], range));

  const retryBaseMs = int('REDIS_RETRY_BASE_MS', options.retryBaseMs, { min: 1, max: 60_000 }) ?? 100;
  const retryCapMs = int('REDIS_RETRY_CAP_MS', options.retryCapMs, { min: 1, max: 600_000 }) ?? 2000;
  if (retryCapMs < retryBaseMs) {
    throw new ConfigError('CONFIG_RETRY_RANGE', 'REDIS_RETRY_CAP_MS', `REDIS_RETRY_CAP_MS (${retryCapMs}) is below REDIS_RETRY_BASE_MS (${retryBaseMs}); raise the cap.`);
  }
  return {
    broker: resolveEndpoint('broker', brokerLayer, shared, warnings),
    backend: resolveEndpoint('backend', backendLayer, shared, warnings),
    production,
    maxConnections: int('REDIS_MAX_CONNECTIONS', options.maxConnections, { min: 2, max: 10_000 }) ?? 50,
    acquireTimeoutMs: int('REDIS_POOL_ACQUIRE_TIMEOUT_MS', options.acquireTimeoutMs, { min: 1, max: 3_600_000 }) ?? 10_000,
    maxWaiting: int('REDIS_POOL_MAX_WAITING', options.maxWaiting, { min: 0, max: 1_000_000 }) ?? 1000,
    healthCheckIntervalMs:
      options.healthCheckIntervalMs ??
      parseSecondsSetting('REDIS_HEALTH_CHECK_INTERVAL', env['REDIS_HEALTH_CHECK_INTERVAL'], { min: 0, max: 86_400 }) ??
      30_000,
    retryBaseMs,
    retryCapMs,
    retries: int('REDIS_RETRIES', options.retries, { min: 0, max: 100 }) ?? 3,
    connectTimeoutMs: int('REDIS_CONNECT_TIMEOUT_MS', options.connectTimeoutMs, { min: 100, max: 600_000 }) ?? 5000,
    commandTimeoutMs: int('REDIS_COMMAND_TIMEOUT_MS', options.commandTimeoutMs, { min: 0, max: 600_000 }) ?? 0,
    scriptLoading: parseScriptLoading(options.scriptLoading, env['REDIS_SCRIPTS']),
    scriptWaitMs: int('REDIS_SCRIPTS_WAIT_MS', options.scriptWaitMs, { min: 0, max: 600_000 }) ?? 10_000,
    warnings,
  };
}
