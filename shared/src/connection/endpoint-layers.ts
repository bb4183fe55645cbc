import { ConfigError, type ServiceName } from '../errors.js';
import { envPrefix } from './error-mapping.js';
import { endpointTable, type EndpointPrefix } from './connection-table.js';
import { int } from '../settings/index.js';
import { resolveSettings } from '../settings/index.js';
import { decodeUrlCredential, invalidUrlError } from './url-credentials.js';

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

/**
 * The layers a Redis endpoint is described in (a `redis://` / `rediss://` URL, the REDIS_* or
 * RESULT_REDIS_* environment, library options, the bins' flags), each parsed into the same raw
 * fields and merged in order; `resolveConnectionOptions` validates the merged result. Settings
 * that turn verification off are noted here (`insecure`) and refused there.
 */

type Env = Record<string, string | undefined>;

/** Raw, unvalidated endpoint fields from one layer (env, URL, options), plus any insecure setting seen. */
export type EndpointLayer = Omit<RedisEndpointOptions, 'url'> & { insecure?: string };

const INSECURE_CERT_REQS = new Set(['none', 'cert_none', 'optional', 'cert_optional']);

const PORT = int({ min: 1, max: 65_535 });
const DB = int({ min: 0, max: 1_000_000 });
const inUrl = (variable: string) => ({ variable, source: 'env' as const, secret: false });

/** Parses a redis URL into layer fields; refuses the query parameters that turn verification off. */
function parseRedisUrl(variable: string, raw: string): EndpointLayer {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw invalidUrlError(variable);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError(
      'CONFIG_INVALID_URL',
      variable,
      `${variable} must start with rediss:// (TLS) or redis:// (plaintext), got "${url.protocol}//"; fix the scheme.`,
    );
  }
  const layer: EndpointLayer = { tls: url.protocol === 'rediss:' };
  if (url.hostname) layer.host = url.hostname.replace(/^\[|\]$/g, '');
  if (url.port) layer.port = PORT.parse(url.port, inUrl(`${variable} (port)`));
  const path = url.pathname.replace(/^\//, '');
  if (path) layer.db = DB.parse(path, inUrl(`${variable} (database)`));
  if (url.username) layer.username = decodeUrlCredential(variable, 'user name', url.username);
  if (url.password) layer.password = decodeUrlCredential(variable, 'password', url.password);
  for (const [key, value] of url.searchParams) {
    const name = key.toLowerCase();
    const lowered = value.toLowerCase();
    if (name === 'ssl_cert_reqs' && INSECURE_CERT_REQS.has(lowered)) layer.insecure = `${key}=${value}`;
    else if ((name === 'rejectunauthorized' || name === 'verify') && FALSEY.has(lowered)) layer.insecure = `${key}=${value}`;
    else if (name === 'ssl_ca_certs' || name === 'ca') layer.caFile = value;
    else if (name === 'ssl_certfile') layer.certFile = value;
    else if (name === 'ssl_keyfile') layer.keyFile = value;
    else if (name === 'servername' || name === 'ssl_check_hostname') {
      if (name === 'servername') layer.servername = value;
      else if (FALSEY.has(lowered)) layer.insecure = `${key}=${value}`;
    } else if (name === 'ssl_cert_reqs') {
      // required / cert_required: what we do anyway
    } else if (name === 'db') {
      layer.db = DB.parse(value, inUrl(`${variable} (db)`));
    } else {
      throw new ConfigError(
        'CONFIG_UNKNOWN_URL_PARAMETER',
        variable,
        `${variable} has the unknown query parameter "${key}"; remove it (supported: ssl_cert_reqs=required, ssl_ca_certs, ssl_certfile, ssl_keyfile, servername, db).`,
      );
    }
  }
  return layer;
}

const FALSEY = new Set(['false', '0', 'no', 'off', 'none']);

/** One service's REDIS_* or RESULT_REDIS_* variables (the endpoint table) as a layer. */
export function envLayer(env: Env, prefix: EndpointPrefix): EndpointLayer {
  const { url, sslCertReqs, tlsRejectUnauthorized, ...fields } = resolveSettings(endpointTable(prefix), { env });
  const layer: EndpointLayer = typeof url === 'string' ? parseRedisUrl(`${prefix}URL`, url) : {};
  for (const [key, value] of Object.entries(fields)) {
    if (value !== undefined) (layer as Record<string, unknown>)[key] = value;
  }
  if (typeof sslCertReqs === 'string' && INSECURE_CERT_REQS.has(sslCertReqs.toLowerCase())) layer.insecure = `${prefix}SSL_CERT_REQS=${sslCertReqs}`;
  if (typeof tlsRejectUnauthorized === 'string' && FALSEY.has(tlsRejectUnauthorized.toLowerCase())) {
    layer.insecure = `${prefix}TLS_REJECT_UNAUTHORIZED=${tlsRejectUnauthorized}`;
  }
  return layer;
}

const ENDPOINT_KEYS = ['host', 'port', 'db', 'username', 'password', 'passwordFile', 'tls', 'caFile', 'certFile', 'keyFile', 'servername'] as const;

export function optionsLayer(options: RedisEndpointOptions | undefined, name: string, urlName: string): EndpointLayer {
  if (!options) return {};
  const loose = options as Record<string, unknown>;
  const known = new Set<string>([...ENDPOINT_KEYS, 'url', 'rejectUnauthorized']);
  const unknown = Object.keys(loose).filter(key => !known.has(key) && loose[key] !== undefined);
  if (unknown.length > 0) {
    throw new ConfigError(
      'CONFIG_UNKNOWN_OPTION',
      `${name}.${unknown[0] ?? ''}`,
      `${unknown.map(key => `${name}.${key}`).join(', ')} ${unknown.length === 1 ? 'is not a connection option' : 'are not connection options'}; TLS versions and ciphers are set once for both services (tlsMinVersion, tlsMaxVersion, tlsCiphers), and an endpoint takes only url, ${ENDPOINT_KEYS.join(', ')}.`,
    );
  }
  if (options.tls !== undefined && typeof options.tls !== 'boolean') {
    throw new ConfigError('CONFIG_UNKNOWN_OPTION', `${name}.tls`, `${name}.tls must be true or false (TLS settings are caFile, certFile, keyFile, servername and the shared tlsMinVersion, tlsMaxVersion, tlsCiphers).`);
  }
  const layer: EndpointLayer = options.url ? parseRedisUrl(urlName, options.url) : {};
  for (const key of ENDPOINT_KEYS) {
    const value = options[key];
    if (value !== undefined) (layer as Record<string, unknown>)[key] = value;
  }
  if (loose['rejectUnauthorized'] === false) layer.insecure = `${name}.rejectUnauthorized=false`;
  return layer;
}

/**
 * A password in a URL given on the command line is visible to every user of the host (`ps`,
 * /proc/<pid>/cmdline): warned about outside production, refused in production.
 */
export function checkCommandLinePassword(flag: string, url: string | undefined, service: ServiceName, production: boolean, warnings: string[]): void {
  if (!url) return;
  let password = '';
  try {
    password = new URL(url).password;
  } catch {
    return; // parseRedisUrl reports the bad URL
  }
  if (!password) return;
  const prefix = envPrefix(service);
  const sentence = `${flag} carries a password, which every user of this host can read in the process list (ps, /proc/<pid>/cmdline); put the password in ${prefix}PASSWORD_FILE (or ${prefix}PASSWORD) and drop it from the URL (the user name may stay)`;
  if (production) throw new ConfigError('CONFIG_PASSWORD_IN_ARGV', flag, `${sentence} (production refuses it).`);
  warnings.push(`${sentence}. Production refuses this.`);
}

/** Later layers win, field by field. */
export function merge(...layers: EndpointLayer[]): EndpointLayer {
  const out: EndpointLayer = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value !== undefined) (out as Record<string, unknown>)[key] = value;
    }
  }
  return out;
}
