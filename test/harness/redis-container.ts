// A Redis container through testcontainers, used when TASKLINE_TEST_REDIS=container (pnpm
// test:compose runs the connection suite this way). Loaded only through a dynamic import from
// startRedis(), so machines without Docker never load testcontainers.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { CertBundle } from './certs.js';
import { getFreePort } from './free-port.js';
import {
  aclFileContent,
  buildRedisArgs,
  redisEnv,
  type ResolvedRedisServerOptions,
  type RunningRedis,
} from './redis-config.js';

/**
 * The image: any with redis-server and redis-cli built with TLS, running as a user that can read
 * files copied in with mode 644 (redis:7 does; so does the Debian-made image of pnpm test:compose).
 * @defaultValue `redis:7` (env `TASKLINE_TEST_REDIS_IMAGE`)
 */
const image = (): string => process.env['TASKLINE_TEST_REDIS_IMAGE'] || 'redis:7';
const CONTAINER_PORT = 6379;
const TLS_DIR = '/tls';

/** A started container, and a synchronous `docker rm -f` for the harness' exit hook. */
export interface StartedRedisContainer {
  server: RunningRedis;
  removeSync: () => void;
}

/** @param onStopped called once the server was stopped, however stop() was reached. */
export async function startRedisContainer(
  o: ResolvedRedisServerOptions,
  certs: CertBundle | undefined,
  hostDir: string,
  onStopped: () => void,
): Promise<StartedRedisContainer> {
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
  // Clients come through the Docker port mapping, not loopback: without a password for the
  // default user, protected mode would refuse them (redis:7's entrypoint turns it off the same way).
  let builder = new GenericContainer(image())
    .withCommand(['redis-server', ...buildRedisArgs(o, CONTAINER_PORT, '0.0.0.0', files), '--protected-mode', 'no'])
    // A fixed host port, so restart() keeps the address clients reconnect to.
    .withExposedPorts({ container: CONTAINER_PORT, host: o.port ?? (await getFreePort()) })
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
  let paused = false;
  const unsupported = (what: string): never => {
    throw new Error(`${what}() is not supported for TASKLINE_TEST_REDIS=container`);
  };
  // `docker pause` freezes every process of the container (the cgroup freezer), as SIGSTOP freezes
  // the local harness' redis-server: connections stay open, and nothing is answered until resume.
  // Synchronous, like the local harness' pause(), so the freeze is in place when it returns.
  const dockerSync = (...args: string[]): void => {
    const result = spawnSync('docker', [...args, container.getId()], { encoding: 'utf8', timeout: 30_000 });
    if (result.status !== 0) throw new Error(`docker ${args.join(' ')} failed: ${(result.stderr || String(result.error)).trim()}`);
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
      // An argument naming a host file (CONFIG SET tls-cert-file <path>) names the same path
      // inside: copy it in first, readable by the server's user, as at start.
      const hostFiles = args.filter(arg => path.isAbsolute(arg) && existsSync(arg) && statSync(arg).isFile());
      if (hostFiles.length > 0) await container.copyFilesToContainer(hostFiles.map(source => ({ source, target: source, mode: 0o644 })));
      const result = await container.exec(['redis-cli', ...cliFlags, ...args], {
        env: o.password === undefined ? {} : { REDISCLI_AUTH: o.password },
      });
      if (result.exitCode !== 0) throw new Error(`redis-cli ${args.join(' ')} failed: ${result.stderr.trim()}`);
      return result.stdout.trim();
    },
    stop: () => {
      stopping ??= (async () => {
        try {
          if (paused) server.resume();
          await container.stop();
        } finally {
          onStopped();
          await rm(hostDir, { recursive: true, force: true });
        }
      })();
      return stopping;
    },
    kill: () => unsupported('kill'),
    pause: () => {
      if (paused) return;
      dockerSync('pause');
      paused = true;
    },
    resume: () => {
      if (!paused) return;
      dockerSync('unpause');
      paused = false;
    },
    restart: async () => {
      // SIGTERM first (testcontainers' default is an immediate SIGKILL), as the local harness stops
      // its server: Redis closes its clients, so no connection is left half-open behind Docker's proxy.
      await container.restart({ timeout: 10_000 });
      // Docker may map a different host port after a restart.
      port = container.getMappedPort(CONTAINER_PORT);
    },
  };
  // Without the reaper (TESTCONTAINERS_RYUK_DISABLED, where its image cannot be pulled) nothing
  // else would remove a container left by a test process that ends abruptly.
  const removeSync = (): void => {
    spawnSync('docker', ['rm', '-f', '-v', container.getId()], { stdio: 'ignore', timeout: 10_000 });
  };
  return { server, removeSync };
}
