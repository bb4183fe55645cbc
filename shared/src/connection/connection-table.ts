import { ConfigError } from '../errors.js';
import { DEFAULT_TLS_CIPHERS, checkCipherList, parseTlsVersion, type TlsVersion } from './tls-policy.js';
import { bool, custom, int, oneOf, secondsAsMs, text } from '../settings/index.js';
import { setting, type Setting, type Table } from '../settings/index.js';

/** The connection settings of every process, as data: `resolveConnectionOptions` reads them. */

const tlsVersion = custom<TlsVersion>('`TLSv1.2`, `TLSv1.3` (or `1.2`, `1.3`)', (raw, { variable }) => {
  const version = parseTlsVersion(variable, raw);
  if (version === undefined) throw new ConfigError('CONFIG_TLS_VERSION', variable, `${variable} must be TLSv1.2 or TLSv1.3; fix or unset it.`);
  return version;
});

const cipherList = custom<string>('OpenSSL cipher list of forward-secret AEAD ciphers', (raw, { variable }) => checkCipherList(variable, raw));

/** Settings applied to both services (broker and result backend). Keys are `ConnectionOptions` fields. */
export const CONNECTION_SETTINGS = {
  production: setting({
    parser: bool(),
    defaultDoc: '`TASKLINE_ENV` (else `NODE_ENV`) is `production`',
    doc: 'Strict mode: refuses plaintext and insecure TLS.',
  }),
  allowPlaintext: setting({
    env: 'REDIS_ALLOW_PLAINTEXT',
    parser: bool(),
    default: false,
    doc: 'Emergency rollback switch: allows plaintext in production, warning at every start.',
  }),
  tlsMinVersion: setting({
    env: 'REDIS_TLS_MIN_VERSION',
    parser: tlsVersion,
    default: 'TLSv1.2',
    doc: 'Lowest TLS version, both services; anything below TLS 1.2 is refused (`CONFIG_TLS_VERSION`), from the environment and from code alike.',
  }),
  tlsMaxVersion: setting({ env: 'REDIS_TLS_MAX_VERSION', parser: tlsVersion, default: 'TLSv1.3', doc: 'Highest TLS version, both services.' }),
  tlsCiphers: setting({
    env: 'REDIS_TLS_CIPHERS',
    parser: cipherList,
    default: DEFAULT_TLS_CIPHERS,
    doc: 'OpenSSL cipher list for TLS 1.2 (TLS 1.3 suites are always the strong defaults), both services. Every entry must allow only forward-secret (ECDHE/DHE) AEAD (AES-GCM, ChaCha20-Poly1305) ciphers; `ALL`, `HIGH`, `aNULL`, `eNULL`, RSA key exchange, CBC, RC4, 3DES, MD5, EXPORT and `@SECLEVEL` below 2 are refused (`CONFIG_TLS_CIPHERS`); `!X`/`-X` removals are always fine.',
  }),
  maxConnections: setting({
    env: 'REDIS_MAX_CONNECTIONS',
    parser: int({ min: 2, max: 10_000 }),
    default: 50,
    doc: 'Connections per service per process. BullMQ workers and result waits each hold one.',
  }),
  acquireTimeoutMs: setting({
    env: 'REDIS_POOL_ACQUIRE_TIMEOUT_MS',
    parser: int({ min: 1, max: 3_600_000 }),
    default: 10_000,
    doc: 'How long a caller waits for a free connection before `POOL_EXHAUSTED`.',
  }),
  maxWaiting: setting({
    env: 'REDIS_POOL_MAX_WAITING',
    parser: int({ min: 0, max: 1_000_000 }),
    default: 1000,
    doc: 'Callers that may wait at once; beyond it `POOL_QUEUE_FULL` at once.',
  }),
  healthCheckIntervalMs: setting({
    env: 'REDIS_HEALTH_CHECK_INTERVAL',
    parser: secondsAsMs({ min: 0, max: 86_400 }),
    default: 30_000,
    defaultDoc: '`30` seconds',
    doc: 'Between background PINGs: **seconds** in the variable, milliseconds in the option (`0` turns them off).',
  }),
  retryBaseMs: setting({ env: 'REDIS_RETRY_BASE_MS', parser: int({ min: 1, max: 60_000 }), default: 100, doc: 'First reconnect delay; doubles per attempt, with jitter.' }),
  retryCapMs: setting({ env: 'REDIS_RETRY_CAP_MS', parser: int({ min: 1, max: 600_000 }), default: 2000, doc: 'Longest reconnect delay (not below the base).' }),
  retries: setting({
    env: 'REDIS_RETRIES',
    parser: int({ min: 0, max: 100 }),
    default: 3,
    doc: "Reconnect attempts a command waits through before failing — producers' commands and every result-backend command (the worker's result writes then retry until `RESULT_WRITE_DEADLINE_MS`); workers' and the beat's broker commands wait through an outage instead. Also the attempts at start. Auth and certificate errors are never retried.",
  }),
  connectTimeoutMs: setting({ env: 'REDIS_CONNECT_TIMEOUT_MS', parser: int({ min: 100, max: 600_000 }), default: 5000, doc: 'TCP + TLS connect timeout.' }),
  commandTimeoutMs: setting({ env: 'REDIS_COMMAND_TIMEOUT_MS', parser: int({ min: 0, max: 600_000 }), default: 0, doc: 'Timeout of non-blocking commands; `0` = none.' }),
  scriptLoading: setting({
    env: 'REDIS_SCRIPTS',
    parser: oneOf({ eval: 'the Redis users may run EVAL', preloaded: 'scripts loaded by `taskline-<bin> scripts load` as the loader user' }),
    default: 'eval',
    doc: "How Lua scripts (taskline's and BullMQ's, always sent as EVALSHA first) reach Redis. `eval`: a script Redis lacks is loaded with EVAL, so the users need EVAL. `preloaded`: EVALSHA only; the `loader` user loads them (`taskline-<bin> scripts load --watch`), and the ACL users of ops/acl/generate-acl.sh, which have no EVAL, need this. docs/OPERATIONS.md, \"Loading the scripts\".",
  }),
  scriptWaitMs: setting({
    env: 'REDIS_SCRIPTS_WAIT_MS',
    parser: int({ min: 0, max: 600_000 }),
    default: 10_000,
    doc: 'With `preloaded`: how long a call waits for a script Redis lacks (it restarted; the loader reloads it) before `SCRIPTS_NOT_LOADED`.',
  }),
} satisfies Table;

/**
 * The fields of one endpoint (broker or result backend), by variable suffix: `REDIS_<suffix>` for
 * the broker, `RESULT_REDIS_<suffix>` for the result backend. Keys are `RedisEndpointOptions`
 * fields; `sslCertReqs` and `tlsRejectUnauthorized` exist only to be refused when insecure.
 * Defaults apply after the result backend fell back to the broker's fields.
 */
export const ENDPOINT_SETTINGS = {
  url: setting({
    env: 'URL',
    parser: text(),
    doc: 'The server as a URL: `rediss://[user[:password]@]host:port/db` (`rediss` = TLS, `redis` = plaintext); percent-encode a user name or password that holds `: / ? # @ %` (`%40` for `@`, `%25` for `%`), or keep the password out of the URL (`…PASSWORD_FILE`). The separate variables override its parts. Query parameters: see [below](#url-query-parameters).',
  }),
  host: setting({ env: 'HOST', parser: text(), default: '127.0.0.1', doc: 'Host.' }),
  port: setting({ env: 'PORT', parser: int({ min: 1, max: 65_535 }), default: 6379, doc: 'Port.' }),
  db: setting({ env: 'DB', parser: int({ min: 0, max: 1_000_000 }), default: 0, doc: 'Database number.' }),
  username: setting({ env: 'USERNAME', parser: text(), doc: 'ACL user ([OPERATIONS.md](OPERATIONS.md#acl-roles) lists the roles).' }),
  password: setting({ env: 'PASSWORD', parser: text(), secret: true, doc: 'Password. Never printed.' }),
  passwordFile: setting({
    env: 'PASSWORD_FILE',
    parser: text(),
    doc: 'File holding the password (read once at start; one trailing newline is dropped). Used when the password is not set.',
  }),
  tls: setting({ env: 'SSL', parser: bool(), default: true, doc: 'Use TLS. `false` (or a `redis://` URL) is plaintext: refused in production, a warning elsewhere.' }),
  caFile: setting({
    env: 'CA_CERT',
    parser: text(),
    defaultDoc: 'system trust store',
    doc: 'PEM file of the CA that issued the server certificate (may hold several CAs, e.g. during rotation).',
  }),
  certFile: setting({ env: 'CLIENT_CERT', parser: text(), doc: 'Client certificate for mutual TLS; with the key, or neither.' }),
  keyFile: setting({ env: 'CLIENT_KEY', parser: text(), doc: 'Client key for mutual TLS; with the certificate, or neither.' }),
  servername: setting({
    env: 'TLS_SERVERNAME',
    parser: text(),
    defaultDoc: 'the host',
    doc: "The name the server certificate must carry; set it when connecting by an IP that is not in the certificate's SANs.",
  }),
  sslCertReqs: setting({
    env: 'SSL_CERT_REQS',
    parser: text(),
    doc: 'Accepted for Celery habits: `required` / `cert_required` is what happens anyway; `none`, `cert_none`, `optional`, `cert_optional` are refused (`CONFIG_INSECURE_TLS`).',
  }),
  tlsRejectUnauthorized: setting({ env: 'TLS_REJECT_UNAUTHORIZED', parser: text(), doc: 'Only ever refused when false (`CONFIG_INSECURE_TLS`): verification cannot be turned off.' }),
} satisfies Table;

export type EndpointPrefix = 'REDIS_' | 'RESULT_REDIS_';

/**
 * The endpoint table with its variables for one service, as one layer of the merge: without
 * defaults (an unset result-backend field falls back to the broker's first). Only the URL has a
 * flag (`--redis-url`, `--result-redis-url`).
 */
export function endpointTable(prefix: EndpointPrefix): Record<keyof typeof ENDPOINT_SETTINGS, Setting> {
  const flagPrefix = prefix.toLowerCase().replace(/_/g, '-');
  const rows = Object.entries(ENDPOINT_SETTINGS).map(([key, row]) => {
    const { default: _default, ...rest } = row as Setting;
    const named: Setting = { ...rest, env: `${prefix}${row.env}` };
    const service = prefix === 'REDIS_' ? 'Broker' : 'Result backend';
    const flagDoc = `${service} URL (rediss://[user@]host:port/db). Keep the password out of it (${prefix}PASSWORD_FILE): argv is visible to every user of the host`;
    return [key, key === 'url' ? { ...named, flag: `${flagPrefix}url`, flagDoc } : named];
  });
  return Object.fromEntries(rows) as Record<keyof typeof ENDPOINT_SETTINGS, Setting>;
}
