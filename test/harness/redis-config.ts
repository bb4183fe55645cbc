import type { CertBundle } from './certs.js';

/** An ACL user written to the server's aclfile. */
export interface AclUser {
  name: string;
  /** No whitespace (the aclfile format splits on it). */
  password: string;
  /** ACL rules, e.g. `'~* &* +@all'`. */
  rules: string;
}

export interface RedisServerOptions {
  /** TLS-only server (plain port disabled). @defaultValue true */
  tls?: boolean;
  /** `tls-auth-clients yes`: clients must present a certificate signed by the CA. @defaultValue false */
  requireClientCert?: boolean;
  /** `tls-protocols`. @defaultValue 'TLSv1.2 TLSv1.3' */
  tlsProtocols?: string;
  /** CA, server and client files. @defaultValue a fresh makeCertBundle() inside the server's dir */
  certs?: CertBundle;
  /** Serve this certificate instead of `certs.serverCertFile` (expired / self-signed / wrong SAN). */
  serverCertFile?: string;
  /** Key for `serverCertFile`. */
  serverKeyFile?: string;
  /** `requirepass` (the default user's password). */
  password?: string;
  /** Extra ACL users, written to an aclfile in the server's dir. */
  aclUsers?: AclUser[];
  /** AOF with `appendfsync always`, so restart() keeps every acknowledged write. @defaultValue false */
  appendonly?: boolean;
  /** Port to listen on. @defaultValue a free port on 127.0.0.1 */
  port?: number;
  /** Appended to the redis-server command line. */
  extraArgs?: string[];
  /** How long to wait for the server to accept connections. @defaultValue 10000 */
  startTimeoutMs?: number;
}

export interface ResolvedRedisServerOptions {
  tls: boolean;
  requireClientCert: boolean;
  tlsProtocols: string;
  certs: CertBundle | undefined;
  serverCertFile: string | undefined;
  serverKeyFile: string | undefined;
  password: string | undefined;
  aclUsers: AclUser[];
  appendonly: boolean;
  port: number | undefined;
  extraArgs: string[];
  startTimeoutMs: number;
}

export interface RunningRedis {
  /** 127.0.0.1 for a local redis-server; the Docker host for a container. */
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  readonly certs: CertBundle | undefined;
  readonly password: string | undefined;
  /** Current process id (changes on restart); -1 for a container. */
  readonly pid: number;
  /** The server's own temp dir (data, AOF, log, aclfile, generated certs). */
  readonly dir: string;
  /** `rediss://host:port` or `redis://host:port`, without credentials. */
  readonly url: string;
  /**
   * Connection settings as environment variables: HOST, PORT, SSL ('true'/'false'), CA_CERT,
   * CLIENT_CERT and CLIENT_KEY (only when requireClientCert), PASSWORD (when set).
   * @param prefix @defaultValue 'REDIS_' (use 'RESULT_REDIS_' for the result backend)
   */
  env(prefix?: string): Record<string, string>;
  /** Runs redis-cli with the right TLS and auth flags; resolves to trimmed stdout. */
  cli(...args: string[]): Promise<string>;
  /** SIGTERM, SIGKILL after 5 s, then removes the dir. Safe to call twice. */
  stop(): Promise<void>;
  /** Sends a signal (default SIGKILL) without cleaning up; call stop() afterwards. */
  kill(signal?: NodeJS.Signals): void;
  /** SIGSTOP: the server stops answering but keeps its sockets open. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  /** Stops the process (keeping the dir, so AOF survives) and starts it again on the same port. */
  restart(): Promise<void>;
}

export function resolveRedisServerOptions(opts: RedisServerOptions): ResolvedRedisServerOptions {
  const tls = opts.tls ?? true;
  const requireClientCert = opts.requireClientCert ?? false;
  if (!tls && (requireClientCert || opts.serverCertFile !== undefined || opts.certs !== undefined)) {
    throw new Error('startRedis: requireClientCert, certs and serverCertFile need tls: true');
  }
  if ((opts.serverCertFile === undefined) !== (opts.serverKeyFile === undefined)) {
    throw new Error('startRedis: give serverCertFile and serverKeyFile together');
  }
  for (const user of opts.aclUsers ?? []) {
    if (!/^[^\s]+$/.test(user.name) || !/^[^\s]+$/.test(user.password)) {
      throw new Error(`startRedis: ACL user "${user.name}" needs a name and password without whitespace`);
    }
  }
  if (opts.password !== undefined && opts.aclUsers !== undefined && /\s/.test(opts.password)) {
    throw new Error('startRedis: with aclUsers the password cannot contain whitespace');
  }
  if (opts.port !== undefined && !(Number.isInteger(opts.port) && opts.port > 0 && opts.port < 65536)) {
    throw new Error(`startRedis: port must be 1-65535, got ${opts.port}`);
  }
  return {
    tls,
    requireClientCert,
    tlsProtocols: opts.tlsProtocols ?? 'TLSv1.2 TLSv1.3',
    certs: opts.certs,
    serverCertFile: opts.serverCertFile,
    serverKeyFile: opts.serverKeyFile,
    password: opts.password,
    aclUsers: opts.aclUsers ?? [],
    appendonly: opts.appendonly ?? false,
    port: opts.port,
    extraArgs: opts.extraArgs ?? [],
    startTimeoutMs: opts.startTimeoutMs ?? 10_000,
  };
}

/** Content of the aclfile, or undefined when no ACL users were asked for. */
export function aclFileContent(o: ResolvedRedisServerOptions): string | undefined {
  if (o.aclUsers.length === 0) return undefined;
  // The default user is written too: loading an aclfile would otherwise drop requirepass.
  const defaultAuth = o.password === undefined ? 'nopass' : `>${o.password}`;
  const lines = [`user default on ${defaultAuth} ~* &* +@all`];
  for (const u of o.aclUsers) lines.push(`user ${u.name} on >${u.password} ${u.rules}`);
  return `${lines.join('\n')}\n`;
}

/** Where the server finds its files (host paths, or paths inside a container). */
export interface RedisFilePaths {
  dir: string;
  certFile: string;
  keyFile: string;
  caFile: string;
  aclFile: string | undefined;
}

/** The redis-server command line (after the binary) for resolved options. */
export function buildRedisArgs(
  o: ResolvedRedisServerOptions,
  port: number,
  bind: string,
  files: RedisFilePaths,
): string[] {
  const args = ['--bind', bind, '--dir', files.dir, '--save', '', '--daemonize', 'no'];
  args.push('--appendonly', o.appendonly ? 'yes' : 'no');
  if (o.appendonly) args.push('--appendfsync', 'always');
  if (o.tls) {
    args.push(
      '--port', '0',
      '--tls-port', String(port),
      '--tls-cert-file', files.certFile,
      '--tls-key-file', files.keyFile,
      '--tls-ca-cert-file', files.caFile,
      '--tls-auth-clients', o.requireClientCert ? 'yes' : 'no',
      '--tls-protocols', o.tlsProtocols,
    );
  } else {
    args.push('--port', String(port));
  }
  if (files.aclFile !== undefined) args.push('--aclfile', files.aclFile);
  else if (o.password !== undefined) args.push('--requirepass', o.password);
  args.push(...o.extraArgs);
  return args;
}

/** RunningRedis.env() for either kind of server. */
export function redisEnv(
  server: Pick<RunningRedis, 'host' | 'port' | 'tls' | 'certs' | 'password'>,
  requireClientCert: boolean,
  prefix = 'REDIS_',
): Record<string, string> {
  const env: Record<string, string> = {
    [`${prefix}HOST`]: server.host,
    [`${prefix}PORT`]: String(server.port),
    [`${prefix}SSL`]: server.tls ? 'true' : 'false',
  };
  if (server.tls && server.certs !== undefined) {
    env[`${prefix}CA_CERT`] = server.certs.caFile;
    if (requireClientCert) {
      env[`${prefix}CLIENT_CERT`] = server.certs.clientCertFile;
      env[`${prefix}CLIENT_KEY`] = server.certs.clientKeyFile;
    }
  }
  if (server.password !== undefined) env[`${prefix}PASSWORD`] = server.password;
  return env;
}
