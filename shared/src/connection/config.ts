import { accessSync, constants, readFileSync } from 'node:fs';
import { ConfigError, type ServiceName } from '../errors.js';
import { envPrefix } from './error-mapping.js';
import { checkCommandLinePassword, envLayer, merge, optionsLayer, type EndpointLayer, type RedisEndpointOptions } from './endpoint-layers.js';
import { isProduction } from '../process/index.js';
import { Secret } from '../process/index.js';
import { CONNECTION_SETTINGS, ENDPOINT_SETTINGS } from './connection-table.js';
import { resolveSettings } from '../settings/index.js';
import type { SettingsOptions, SettingsValues } from '../settings/index.js';
import { DEFAULT_TLS_CIPHERS, type TlsVersion } from './tls-policy.js';

export { DEFAULT_TLS_CIPHERS, type TlsVersion, type RedisEndpointOptions };

/**
 * Everything a process needs to open its Redis connections. The settings applied to both services
 * (`production`, `maxConnections`, `tlsCiphers`, …) are the rows of `CONNECTION_SETTINGS`
 * (shared/src/connection/connection-table.ts), each documented there with its variable and default.
 */
export interface ConnectionOptions extends SettingsOptions<typeof CONNECTION_SETTINGS> {
  broker?: RedisEndpointOptions;
  /** Each field unset here falls back to the broker's. */
  backend?: RedisEndpointOptions;
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
  service: ServiceName;
  host: string;
  port: number;
  db: number;
  username: string | null;
  password: Secret | null;
  /** `null` means plaintext (only ever outside production, or with the rollback switch). */
  tls: ResolvedTlsOptions | null;
}

/** Every `CONNECTION_SETTINGS` row resolved, plus both endpoints. */
export interface ResolvedConnectionOptions extends SettingsValues<typeof CONNECTION_SETTINGS> {
  broker: ResolvedEndpoint;
  backend: ResolvedEndpoint;
  production: boolean;
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
  service: ServiceName,
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
  const host = layer.host ?? ENDPOINT_SETTINGS.host.default;
  const port = layer.port ?? ENDPOINT_SETTINGS.port.default;
  const useTls = layer.tls ?? ENDPOINT_SETTINGS.tls.default;
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
    db: layer.db ?? ENDPOINT_SETTINGS.db.default,
    username: layer.username ?? null,
    password,
    tls,
  };
}

/** True for options that already went through `resolveConnectionOptions`. */
export function isResolvedConnectionOptions(options: ConnectionOptions | ResolvedConnectionOptions | undefined): options is ResolvedConnectionOptions {
  return options !== undefined && Array.isArray((options as ResolvedConnectionOptions).warnings);
}

/** The broker's and the result backend's layers, merged field by field (env, then options). */
function endpointLayers(options: ConnectionOptions, env: Env, production: boolean, warnings: string[]): { broker: EndpointLayer; backend: EndpointLayer } {
  const fromFlags = options.urlSource === 'flags';
  const brokerUrlName = fromFlags ? '--redis-url' : 'broker.url';
  const backendUrlName = fromFlags ? '--result-redis-url' : 'backend.url';
  if (fromFlags) {
    checkCommandLinePassword(brokerUrlName, options.broker?.url, 'broker', production, warnings);
    checkCommandLinePassword(backendUrlName, options.backend?.url, 'backend', production, warnings);
  }
  const broker = merge(envLayer(env, 'REDIS_'), optionsLayer(options.broker, 'broker', brokerUrlName));
  const backend = merge(broker, envLayer(env, 'RESULT_REDIS_'), optionsLayer(options.backend, 'backend', backendUrlName));
  // A URL on the result backend names a whole server: don't inherit the broker's credentials into it.
  const backendUrl = options.backend?.url ?? env['RESULT_REDIS_URL'];
  if (backendUrl) {
    const fromUrl = merge(envLayer(env, 'RESULT_REDIS_'), optionsLayer(options.backend, 'backend', backendUrlName));
    if (fromUrl.password === undefined && fromUrl.passwordFile === undefined) {
      delete backend.password;
      delete backend.passwordFile;
    }
    if (fromUrl.username === undefined) delete backend.username;
  }
  return { broker, backend };
}

/**
 * Fills every default and validates, in one place: each `CONNECTION_SETTINGS` row through the
 * layers (library options, then the environment, then its default); the result backend's unset
 * fields fall back to the broker's.
 */
export function resolveConnectionOptions(options: ConnectionOptions = {}, env: Env = process.env): ResolvedConnectionOptions {
  const warnings: string[] = [];
  // Library options are judged by the same parsers as the environment: a type is no check at run time.
  const settings = resolveSettings(CONNECTION_SETTINGS, { options, env });
  const production = settings.production ?? isProduction(env);
  const { tlsMinVersion: minVersion, tlsMaxVersion: maxVersion, tlsCiphers: ciphers, allowPlaintext } = settings;
  if (minVersion === 'TLSv1.3' && maxVersion === 'TLSv1.2') {
    throw new ConfigError('CONFIG_TLS_VERSION', 'REDIS_TLS_MIN_VERSION', 'REDIS_TLS_MIN_VERSION is above REDIS_TLS_MAX_VERSION; lower the minimum or raise the maximum.');
  }
  if (settings.retryCapMs < settings.retryBaseMs) {
    throw new ConfigError(
      'CONFIG_RETRY_RANGE',
      'REDIS_RETRY_CAP_MS',
      `REDIS_RETRY_CAP_MS (${settings.retryCapMs}) is below REDIS_RETRY_BASE_MS (${settings.retryBaseMs}); raise the cap.`,
    );
  }
  const shared = { production, allowPlaintext, minVersion, maxVersion, ciphers };
  const layers = endpointLayers(options, env, production, warnings);
  return {
    ...settings,
    broker: resolveEndpoint('broker', layers.broker, shared, warnings),
    backend: resolveEndpoint('backend', layers.backend, shared, warnings),
    production,
    warnings,
  };
}
