import { ConfigError, Secret, isQueueName } from '@taskline/shared';
import { bool, custom, int, list, setting, text, type Table } from '@taskline/shared/settings';
import { NAME_RULES } from '@taskline/shared/job';
import { checkApiToken, readTokenFile } from './api-token.js';

/**
 * The producer's and its HTTP API's settings, as data: `resolveProducerOptions` and
 * `resolveApiServerOptions` resolve them (options, then flags, then the environment, then a
 * `_FILE`, then the default), `taskline-producer` declares its flags from them, and
 * docs/CONFIGURATION.md is generated from them.
 */

const queueName = custom<string>(NAME_RULES.queue.says, (raw, { variable }) => {
  if (!isQueueName(raw)) {
    throw new ConfigError('CONFIG_INVALID_QUEUES', variable, `${variable} must be a queue name (${NAME_RULES.queue.says}), got ${JSON.stringify(raw) ?? String(raw)}; fix it.`);
  }
  return raw;
});

/** Keys are `ProducerOptions` fields. */
export const PRODUCER_SETTINGS = {
  defaultQueue: setting({ parser: queueName, default: 'default', doc: 'Queue for jobs that name none and match no route.' }),
  maxPayloadBytes: setting({
    env: 'TASKLINE_MAX_PAYLOAD_BYTES',
    parser: int({ min: 1, max: 512 * 1024 * 1024 }),
    default: 512 * 1024,
    defaultDoc: '`524288` (512 KiB)',
    doc: 'Largest job payload, as JSON bytes (`PAYLOAD_TOO_LARGE` above it).',
  }),
  keepFailedCount: setting({ parser: int({ min: 0, max: 10_000_000 }), default: 1000, doc: 'Failed jobs kept on the broker for `inspect`: at most this many…' }),
  keepFailedSeconds: setting({ parser: int({ min: 1, max: 31_536_000 }), default: 604_800, doc: '…and at most this old, in seconds (7 days).' }),
  enqueueTimeoutMs: setting({ parser: int({ min: 1, max: 600_000 }), default: 10_000, doc: 'How long one enqueue may wait on Redis before failing with a ConnectionError.' }),
  tasks: setting({
    env: 'TASKLINE_TASKS',
    parser: list(),
    defaultDoc: 'any task',
    doc: "The tasks this producer enqueues: the option takes the tasks module's `defineTasks(...)` result (its schemas then validate data at enqueue), the variable task names, comma-separated. When set, an unknown task that no route names is refused (`UNKNOWN_TASK`, HTTP 400).",
  }),
} satisfies Table;

const apiToken = custom<Secret | null>('at least 32 visible ASCII characters, 10 different', (raw, { variable }) => {
  if (raw === null) return null;
  return checkApiToken(raw instanceof Secret ? raw : new Secret(String(raw)), variable);
});

/** Keys are `ApiServerOptions` fields (the TLS files are the `tls` option's). */
export const API_SETTINGS = {
  port: setting({ env: 'PORT', flag: 'port', parser: int({ min: 0, max: 65_535 }), default: 8000, doc: 'Port of `taskline-producer serve`.' }),
  host: setting({
    env: 'PRODUCER_API_HOST',
    flag: 'host',
    parser: text(),
    default: '127.0.0.1',
    doc: 'Address the API binds: loopback only by default. Set `0.0.0.0` where other hosts or containers must reach it (a container whose port is published, as in compose).',
  }),
  token: setting({
    env: 'PRODUCER_API_TOKEN',
    fileEnv: 'PRODUCER_API_TOKEN_FILE',
    readFile: readTokenFile,
    secret: true,
    parser: apiToken,
    doc: 'Bearer token for the HTTP API (jobs, `/api/v1/health`, `/metrics`), or the file holding it (Docker secrets; set one of the two, not both): at least 32 visible ASCII characters, at least 10 different ones (`openssl rand -hex 32`); weaker ones are refused at start (`CONFIG_API_TOKEN_WEAK`). Required in production; without it (outside production) the API is open and says so in a warning at start.',
  }),
  allowHttp: setting({
    env: 'PRODUCER_API_ALLOW_HTTP',
    parser: bool(),
    default: false,
    doc: 'Allows plain HTTP in production, for a TLS-terminating proxy in front of the API; warned at every start.',
  }),
  allowedQueues: setting({
    env: 'TASKLINE_QUEUES',
    parser: list(),
    defaultDoc: 'the default queue and the routed queues',
    doc: 'Queues HTTP API callers may name in `options.queue`, besides the default queue and the queues the routes name. Anything else is a 400 `QUEUE_NOT_ALLOWED`, so clients cannot make the producer create queues or metric series without bound. The library and the CLI are not limited.',
  }),
  maxBodyBytes: setting({
    env: 'PRODUCER_MAX_BODY_BYTES',
    parser: int({ min: 1024, max: 1024 * 1024 * 1024 }),
    defaultDoc: '2 × `TASKLINE_MAX_PAYLOAD_BYTES`',
    doc: 'Largest request body; larger ones get 413 without being buffered.',
  }),
  shutdownGraceMs: setting({ parser: int({ min: 0, max: 600_000 }), default: 10_000, doc: 'How long the API waits for in-flight requests at stop.' }),
} satisfies Table;

/** The HTTP API's own certificate: read from the environment when the `tls` option is not given. */
export const API_TLS_SETTINGS = {
  certFile: setting({
    env: 'PRODUCER_API_TLS_CERT',
    parser: text(),
    doc: 'PEM certificate (chain): the API serves HTTPS (TLS 1.2–1.3, the cipher list above), with the key. Re-read when it changes on disk (new connections get the new certificate, no restart). Required in production unless `PRODUCER_API_ALLOW_HTTP=true`.',
  }),
  keyFile: setting({ env: 'PRODUCER_API_TLS_KEY', parser: text(), doc: 'The PEM key of that certificate; both or neither.' }),
  caFile: setting({
    env: 'PRODUCER_API_TLS_CA',
    parser: text(),
    doc: 'PEM CA: every client must also present a certificate issued by it (mutual TLS), besides the token — probes of `/healthz` included. Needs the two above.',
  }),
} satisfies Table;
