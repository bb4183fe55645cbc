// redis:7 through testcontainers, used when TASKLINE_TEST_REDIS=container.
// UNTESTED HERE: the machine this was written on has no Docker engine. Loaded only through a
// dynamic import from startRedis(), so machines without Docker never load testcontainers.
import { rm } from 'node:fs/promises';
import type { CertBundle } from './certs.js';
import {
  aclFileContent,
  buildRedisArgs,
  redisEnv,
  type ResolvedRedisServerOptions,
  type RunningRedis,
} from './redis-config.js';

const IMAGE = 'redis:7';
const CONTAINER_PORT = 6379;
const TLS_DIR = '/tls';

export async function startRedisContainer(
  o: ResolvedRedisServerOptions,
  certs: CertBundle | undefined,
  hostDir: string,
): Promise<RunningRedis> {
  const { GenericContainer, Wait } = await import('testcontainers');
  const acl = aclFileContent(o);
  const files = {
    dir: '/data',
    certFile: `${TLS_DIR}/server.crt`,
    keyFile: `${TLS_DIR}/server.key`,
    caFile: `${TLS_DIR}/ca.crt`,
    aclFile: acl === undefined ? undefined : '/data/users.acl',
  };
  // The image runs redis as user "redis": copied files must be readable by it.
  const copies = [];
  if (certs !== undefined) {
    copies.push(
      { source: o.serverCertFile ?? certs.serverCertFile, target: files.certFile, mode: 0o644 },
      { source: o.serverKeyFile ?? certs.serverKeyFile, target: files.keyFile, mode: 0o644 },
      { source: certs.caFile, target: files.caFile, mode: 0o644 },
      // For cli() inside the container when requireClientCert is on.
      { source: certs.clientCertFile, target: `${TLS_DIR}/client.crt`, mode: 0o644 },
      { source: certs.clientKeyFile, target: `${TLS_DIR}/client.key`, mode: 0o644 },
    );
  }
  let builder = new GenericContainer(IMAGE)
    .withCommand(['redis-server', ...buildRedisArgs(o, CONTAINER_PORT, '0.0.0.0', files)])
    .withExposedPorts(o.port === undefined ? CONTAINER_PORT : { container: CONTAINER_PORT, host: o.port })
    .withWaitStrategy(Wait.forLogMessage(/Ready to accept connections/));
  if (copies.length > 0) builder = builder.withCopyFilesToContainer(copies);
  if (acl !== undefined && files.aclFile !== undefined) {
    builder = builder.withCopyContentToContainer([{ content: acl, target: files.aclFile, mode: 0o644 }]);
  }
  const container = await builder.start();

  const cliFlags = ['-p', String(CONTAINER_PORT), '--no-auth-warning'];
  if (o.tls) {
    cliFlags.push('--tls', '--insecure', '--cacert', files.caFile);
    if (certs !== undefined) cliFlags.push('--cert', `${TLS_DIR}/client.crt`, '--key', `${TLS_DIR}/client.key`);
  }
  let port = container.getMappedPort(CONTAINER_PORT);
  let stopping: Promise<void> | undefined;
  const unsupported = (what: string): never => {
    throw new Error(`${what}() is not supported for TASKLINE_TEST_REDIS=container`);
  };

  const server: RunningRedis = {
    host: container.getHost(),
    get port() {
      return port;
    },
    tls: o.tls,
    certs,
    password: o.password,
    pid: -1,
    dir: hostDir,
    get url() {
      return `${o.tls ? 'rediss' : 'redis'}://${server.host}:${port}`;
    },
    env: (prefix?: string) => redisEnv(server, o.requireClientCert, prefix),
    cli: async (...args: string[]) => {
      const result = await container.exec(['redis-cli', ...cliFlags, ...args], {
        env: o.password === undefined ? {} : { REDISCLI_AUTH: o.password },
      });
      if (result.exitCode !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${result.stderr.trim()}`);
      return result.stdout.trim();
    },
    stop: () => {
      stopping ??= (async () => {
        try {
          await container.stop();
        } finally {
          await rm(hostDir, { recursive: true, force: true });
        }
      })();
      return stopping;
    },
    kill: () => unsupported('kill'),
    pause: () => unsupported('pause'),
    resume: () => unsupported('resume'),
    restart: async () => {
      await container.restart();
      // Docker may map a different host port after a restart.
      port = container.getMappedPort(CONTAINER_PORT);
    },
  };
  return server;
}
