import {
  AuthError,
  ConnectionError,
  SERVICE_LABEL,
  TlsError,
  type ErrorKind,
  type ServiceName,
} from '../errors.js';
import { scrubSecrets } from '../process/index.js';

/** Where a failed connection was going; used to word the error. */
export interface ConnectionTarget {
  service: ServiceName;
  host: string;
  port: number;
  tls: boolean;
  /** The name the certificate is checked against. */
  servername?: string | undefined;
}

interface Rule {
  code: string;
  kind: ErrorKind;
  retryable: boolean;
  /** `prefix` is "<service> <host>:<port>:"; `env` is the variable prefix of that service. */
  sentence: (prefix: string, env: string, target: ConnectionTarget) => string;
}

const UNTRUSTED: Rule = {
  code: 'TLS_UNTRUSTED_CERT',
  kind: 'tls',
  retryable: false,
  sentence: (p, env) =>
    `${p} the server's certificate is not signed by the CA in ${env}CA_CERT; point ${env}CA_CERT at the CA that issued the server certificate.`,
};

/** Node / OpenSSL / Redis codes → one sentence naming the cause and the fix. */
/** OpenSSL says either when a TLS client meets a plaintext port. */
const TLS_TO_PLAINTEXT: Rule = {
  code: 'TLS_TO_PLAINTEXT_SERVER',
  kind: 'tls',
  retryable: false,
  sentence: (p, env) =>
    `${p} the server answered the TLS handshake in plaintext, so it is not a TLS port; enable TLS on Redis (tls-port) or use the TLS port — set ${env}SSL=false only outside production.`,
};

const RULES: Record<string, Rule> = {
  SELF_SIGNED_CERT_IN_CHAIN: UNTRUSTED,
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: UNTRUSTED,
  UNABLE_TO_GET_ISSUER_CERT: UNTRUSTED,
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: UNTRUSTED,
  CERT_SIGNATURE_FAILURE: UNTRUSTED,
  DEPTH_ZERO_SELF_SIGNED_CERT: {
    code: 'TLS_SELF_SIGNED_CERT',
    kind: 'tls',
    retryable: false,
    sentence: (p, env) =>
      `${p} the server presents a self-signed certificate that no CA vouches for; issue the server certificate from a CA (certs/generate-certs.sh) and set ${env}CA_CERT to that CA.`,
  },
  ERR_TLS_CERT_ALTNAME_INVALID: {
    code: 'TLS_HOSTNAME_MISMATCH',
    kind: 'tls',
    retryable: false,
    sentence: (p, env, t) =>
      `${p} the server's certificate is not valid for the name "${t.servername ?? t.host}"; connect by a name listed in the certificate's SANs, set ${env}TLS_SERVERNAME to one, or reissue the certificate with this name.`,
  },
  CERT_HAS_EXPIRED: {
    code: 'TLS_CERT_EXPIRED',
    kind: 'tls',
    retryable: false,
    sentence: p => `${p} the server's certificate has expired; issue a new server certificate (certs/generate-certs.sh) and reload Redis.`,
  },
  CERT_NOT_YET_VALID: {
    code: 'TLS_CERT_NOT_YET_VALID',
    kind: 'tls',
    retryable: false,
    sentence: p => `${p} the server's certificate is not valid yet; check the clocks of this host and the certificate's start date.`,
  },
  ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION: {
    code: 'TLS_PROTOCOL_MISMATCH',
    kind: 'tls',
    retryable: false,
    sentence: p =>
      `${p} client and server share no TLS version; allow TLS 1.2 and 1.3 on the server (tls-protocols) and check REDIS_TLS_MIN_VERSION.`,
  },
  ERR_SSL_UNSUPPORTED_PROTOCOL: {
    code: 'TLS_PROTOCOL_MISMATCH',
    kind: 'tls',
    retryable: false,
    sentence: p =>
      `${p} the server only offers a TLS version this client refuses; enable TLS 1.2 or 1.3 on the server (tls-protocols) and check REDIS_TLS_MIN_VERSION.`,
  },
  ERR_SSL_NO_PROTOCOLS_AVAILABLE: {
    code: 'TLS_PROTOCOL_MISMATCH',
    kind: 'tls',
    retryable: false,
    sentence: p => `${p} no TLS version is allowed by this client's settings; check REDIS_TLS_MIN_VERSION.`,
  },
  ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE: {
    code: 'TLS_HANDSHAKE_FAILURE',
    kind: 'tls',
    retryable: false,
    sentence: (p, env) =>
      `${p} the TLS handshake was refused (no shared cipher or a required client certificate missing); check REDIS_TLS_CIPHERS and ${env}CLIENT_CERT/${env}CLIENT_KEY.`,
  },
  ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED: {
    code: 'TLS_CLIENT_CERT_REQUIRED',
    kind: 'tls',
    retryable: false,
    sentence: (p, env) =>
      `${p} the server requires a client certificate (mutual TLS); set ${env}CLIENT_CERT and ${env}CLIENT_KEY to a certificate issued by the server's CA.`,
  },
  ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE: {
    code: 'TLS_CLIENT_CERT_REJECTED',
    kind: 'tls',
    retryable: false,
    sentence: (p, env) =>
      `${p} the server rejected the client certificate; issue ${env}CLIENT_CERT from the CA the server trusts (tls-ca-cert-file).`,
  },
  ERR_SSL_TLSV1_ALERT_UNKNOWN_CA: {
    code: 'TLS_CLIENT_CERT_REJECTED',
    kind: 'tls',
    retryable: false,
    sentence: (p, env) =>
      `${p} the server does not trust the CA of the client certificate; issue ${env}CLIENT_CERT from the CA the server trusts (tls-ca-cert-file).`,
  },
  ERR_SSL_WRONG_VERSION_NUMBER: TLS_TO_PLAINTEXT,
  ERR_SSL_PACKET_LENGTH_TOO_LONG: TLS_TO_PLAINTEXT,
  PLAINTEXT_TO_TLS_SERVER: {
    code: 'PLAINTEXT_TO_TLS_SERVER',
    kind: 'tls',
    retryable: false,
    sentence: (p, env) => `${p} the server speaks TLS but the client connected in plaintext; set ${env}SSL=true and ${env}CA_CERT.`,
  },
  WRONGPASS: {
    code: 'AUTH_FAILED',
    kind: 'auth',
    retryable: false,
    sentence: (p, env) =>
      `${p} Redis rejected the user name or password; check ${env}USERNAME and ${env}PASSWORD (or ${env}PASSWORD_FILE).`,
  },
  NOAUTH: {
    code: 'AUTH_REQUIRED',
    kind: 'auth',
    retryable: false,
    sentence: (p, env) => `${p} Redis requires a password and none was sent; set ${env}PASSWORD or ${env}PASSWORD_FILE.`,
  },
  NOPERM: {
    code: 'AUTH_NO_PERMISSION',
    kind: 'auth',
    retryable: false,
    sentence: (p, env) =>
      `${p} the Redis ACL user lacks a permission taskline needs; grant it in the ACL (see docs/OPERATIONS.md) or use another ${env}USERNAME.`,
  },
  NOSCRIPT: {
    code: 'SCRIPTS_NOT_LOADED',
    kind: 'protocol',
    retryable: true,
    sentence: (_p, _env, target) => scriptsNotLoadedSentence(target, 'a script it runs'),
  },
  OOM: {
    code: 'REDIS_OOM',
    kind: 'memory',
    retryable: true,
    sentence: p =>
      `${p} Redis is out of memory (used memory is over maxmemory) and refuses writes; raise maxmemory or free memory (drain or trim queues, lower RESULT_EXPIRES), and keep maxmemory-policy noeviction: taskline never lets Redis evict jobs.`,
  },
  ECONNREFUSED: {
    code: 'CONNECTION_REFUSED',
    kind: 'network',
    retryable: true,
    sentence: (p, env) => `${p} nothing is listening there; start Redis or fix ${env}HOST/${env}PORT.`,
  },
  ENOTFOUND: {
    code: 'HOST_NOT_FOUND',
    kind: 'network',
    retryable: true,
    sentence: (p, env) => `${p} the host name does not resolve; fix ${env}HOST or DNS.`,
  },
  EAI_AGAIN: {
    code: 'HOST_NOT_FOUND',
    kind: 'network',
    retryable: true,
    sentence: (p, env) => `${p} the host name could not be resolved right now; check DNS and ${env}HOST.`,
  },
  ETIMEDOUT: {
    code: 'CONNECT_TIMEOUT',
    kind: 'network',
    retryable: true,
    sentence: (p, env) =>
      `${p} the connection timed out; check that Redis is reachable from here, or raise ${env.replace('RESULT_', '')}CONNECT_TIMEOUT_MS.`,
  },
  ECONNRESET: {
    code: 'CONNECTION_RESET',
    kind: 'network',
    retryable: true,
    sentence: p => `${p} the server closed the connection; taskline reconnects with backoff.`,
  },
  EPIPE: {
    code: 'CONNECTION_RESET',
    kind: 'network',
    retryable: true,
    sentence: p => `${p} the server closed the connection; taskline reconnects with backoff.`,
  },
  MAX_RETRIES: {
    code: 'REDIS_UNAVAILABLE',
    kind: 'network',
    retryable: true,
    sentence: p => `${p} Redis is unreachable and the command was not sent after its retries; try again once Redis is back.`,
  },
  CONNECTION_CLOSED: {
    code: 'CONNECTION_CLOSED',
    kind: 'network',
    retryable: true,
    sentence: p => `${p} the connection closed before Redis answered; taskline reconnects with backoff.`,
  },
};

function lookupKey(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined;
  const code = (err as NodeJS.ErrnoException).code;
  if (code && RULES[code]) return code;
  const message = err.message;
  if (message.startsWith('OOM ') || message.includes('OOM command not allowed')) return 'OOM';
  for (const word of ['WRONGPASS', 'NOAUTH', 'NOPERM']) {
    if (message.startsWith(word) || message.includes(`${word} `)) return word;
  }
  if (message.startsWith('NOSCRIPT')) return 'NOSCRIPT';
  // A command inside a script refused by the ACL (Redis 7 words it as a script error).
  if (/The user executing the script can't (access|run|publish)/.test(message)) return 'NOPERM';
  if (message.includes('invalid username-password') || message.includes('invalid password')) return 'WRONGPASS';
  if (message.includes('wrong version number')) return 'ERR_SSL_WRONG_VERSION_NUMBER';
  if (message.includes('packet length too long')) return 'ERR_SSL_PACKET_LENGTH_TOO_LONG';
  if (message.includes('certificate required')) return 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED';
  if (message.includes('Reached the max retries per request limit')) return 'MAX_RETRIES';
  if (message.includes('Connection is closed')) return 'CONNECTION_CLOSED';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || message.includes("Hostname/IP does not match")) {
    return 'ERR_TLS_CERT_ALTNAME_INVALID';
  }
  return undefined;
}

/**
 * The sentence for a script Redis does not have: scripts live in memory only, so a restarted (or
 * failed-over) Redis has none until the loader runs again.
 */
export function scriptsNotLoadedSentence(target: ConnectionTarget, what: string): string {
  return `Cannot use the ${SERVICE_LABEL[target.service]} at ${target.host}:${target.port}: Redis has not loaded ${what} (it restarted, or the script loader has not run); run \`taskline-worker scripts load --watch\` as the loader user beside the deployment (docs/OPERATIONS.md), or raise REDIS_SCRIPTS_WAIT_MS if it reloads slowly.`;
}

/** The environment-variable prefix of a service, used in fix-it sentences. */
export function envPrefix(service: ServiceName): string {
  return service === 'broker' ? 'REDIS_' : 'RESULT_REDIS_';
}

/**
 * Maps any low-level error (Node socket, OpenSSL, Redis reply) to a ConnectionError whose
 * message is one sentence with the cause and the fix. Already-mapped errors pass through.
 */
export function toConnectionError(err: unknown, target: ConnectionTarget): ConnectionError {
  if (err instanceof ConnectionError) return err;
  const prefix = `Cannot use the ${SERVICE_LABEL[target.service]} at ${target.host}:${target.port}:`;
  const env = envPrefix(target.service);
  const key = lookupKey(err);
  const rule = key ? RULES[key] : undefined;
  if (!rule) {
    const detail = err instanceof Error ? scrubSecrets(err.message) : String(err);
    return new ConnectionError(`${prefix} ${detail}; check that Redis is up and reachable.`, {
      code: 'CONNECTION_FAILED',
      kind: 'network',
      retryable: true,
      service: target.service,
      host: target.host,
      port: target.port,
      cause: err,
    });
  }
  const fields = { ...rule, service: target.service, host: target.host, port: target.port, cause: err };
  const message = rule.sentence(prefix, env, target);
  if (rule.kind === 'tls') return new TlsError(message, fields);
  if (rule.kind === 'auth') return new AuthError(message, fields);
  return new ConnectionError(message, fields);
}

/** True for errors that reconnecting cannot fix. */
export function isFatalConnectionError(err: unknown): boolean {
  const key = lookupKey(err);
  const rule = key ? RULES[key] : undefined;
  return rule !== undefined && !rule.retryable;
}

/** True for a low-level error known to heal by reconnecting (refused, timed out, reset, DNS). */
export function isRetryableConnectionError(err: unknown): boolean {
  const key = lookupKey(err);
  return key !== undefined && RULES[key]?.retryable === true;
}

/** The metric label for an error. */
export function errorKind(err: unknown): ErrorKind {
  if (err instanceof ConnectionError) return err.kind;
  const key = lookupKey(err);
  return (key && RULES[key]?.kind) || 'network';
}
