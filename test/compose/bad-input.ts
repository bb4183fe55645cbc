// Bad input for a taskline container: a worker like the compose ones, with one thing wrong. It
// must fail its health check with the cause in its log, and become healthy once the cause is
// fixed on the host, with no operator action on the container. What can heal by waiting (a file
// not mounted yet, Redis down) is waited for in the process (TASKLINE_START_TIMEOUT_MS, then an
// exit); what cannot (a CA that does not verify the server) exits non-zero within seconds, and the
// engine's restart policy (unless-stopped) runs it again until the fix is in place.
import { chmodSync, chownSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { docker, inspect, logsOf, sleep, waitFor, type Stack } from './docker.js';

interface Check {
  name: string;
  needsStack?: boolean;
  run: () => Promise<string | void>;
}

interface RawContainer {
  Config: { Env: string[]; Cmd: string[]; User: string; Image: string };
  HostConfig: { GroupAdd: string[] | null; Binds: string[] | null; ReadonlyRootfs: boolean };
  Mounts: Array<{ Type: string; Source: string; Destination: string }>;
  NetworkSettings: { Networks: Record<string, unknown> };
}

const FILES_GID = Number(process.env['TASKLINE_FILES_GID'] ?? 10001);

/**
 * Starts a copy of a running compose worker (same image, command, user, groups, env, network,
 * restart policy) with `env` and `mounts` overriding the originals; a 2 s health check on /readyz.
 */
async function cloneWorker(stack: Stack, name: string, env: Record<string, string>, mounts: Record<string, string>): Promise<string> {
  const [worker] = await stack.containers('worker');
  if (!worker) throw new Error('no worker to copy');
  const [raw] = JSON.parse(await docker(['inspect', worker.id])) as RawContainer[];
  if (!raw) throw new Error('cannot inspect a worker');
  const envs = new Map(raw.Config.Env.map(e => [e.slice(0, e.indexOf('=')), e.slice(e.indexOf('=') + 1)]));
  for (const [k, v] of Object.entries(env)) envs.set(k, v);
  const binds = new Map(raw.Mounts.filter(m => m.Type === 'bind').map(m => [m.Destination, m.Source]));
  for (const [target, source] of Object.entries(mounts)) binds.set(target, source);
  const network = Object.keys(raw.NetworkSettings.Networks)[0] ?? '';
  const args = [
    'run', '-d', '--name', name, '--label', `taskline.test-compose=${stack.project}`,
    '--network', network, '--user', raw.Config.User, '--read-only', '--tmpfs', '/tmp', '--restart', 'unless-stopped',
    ...(raw.HostConfig.GroupAdd ?? []).flatMap(g => ['--group-add', g]),
    ...[...envs].flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    ...[...binds].flatMap(([target, source]) => ['-v', `${source}:${target}:ro`]),
    '--health-cmd', "node -e \"fetch('http://127.0.0.1:9100/readyz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))\"",
    '--health-interval', '2s', '--health-timeout', '2s', '--health-retries', '2',
    raw.Config.Image, ...raw.Config.Cmd,
  ];
  return (await docker(args)).trim();
}

/** Watches a broken container for `ms`: it must never be healthy. */
async function staysUnhealthy(id: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const [c] = await inspect([id]);
    expect(c?.health, 'health while broken').not.to.equal('healthy');
    await sleep(1000);
  }
}

async function becomesHealthy(id: string, timeoutMs: number): Promise<{ restarts: number; ms: number }> {
  const started = Date.now();
  const c = await waitFor('the fixed container healthy', timeoutMs, async () => {
    const [x] = await inspect([id]);
    return x?.health === 'healthy' ? x : undefined;
  });
  return { restarts: c.restartCount, ms: Date.now() - started };
}

/** The first log line matching `pattern`, waited for; the error shows the log's last lines. */
async function logLine(id: string, pattern: RegExp, timeoutMs = 30_000): Promise<string> {
  let log = '';
  try {
    return await waitFor(`a log line matching ${pattern}`, timeoutMs, async () => {
      log = await logsOf(id);
      return log.split('\n').find(l => pattern.test(l));
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}; last lines:\n${log.trim().split('\n').slice(-4).join('\n')}`);
  }
}

/** A file the container user's group may read, as compose/README.md step 3 makes them. */
function groupReadable(file: string): void {
  chownSync(file, 0, FILES_GID);
  chmodSync(file, 0o640);
}

export function badInputChecks(stack: Stack): Check[] {
  const secretsDir = process.env['TASKLINE_SECRETS_DIR'] ?? '';
  const certsDir = process.env['TASKLINE_CERTS_DIR'] ?? '';
  const wrongCertsDir = process.env['TEST_COMPOSE_WRONG_CERTS_DIR'] ?? '';
  const scratch = (): string => {
    const dir = mkdtempSync(path.join(process.env['TEST_COMPOSE_DIR'] ?? os.tmpdir(), 'bad-input-'));
    chmodSync(dir, 0o755);
    return dir;
  };
  const remove = (id: string): Promise<string> => docker(['rm', '-f', '-v', id]).catch(() => '');

  return [
    {
      name: 'bad input: a worker whose password file is missing fails its health check, says which file, and runs once the file appears',
      needsStack: true,
      run: async () => {
        const dir = scratch();
        const id = await cloneWorker(stack, `${stack.project}-missing-secret`, {
          REDIS_PASSWORD_FILE: '/run/late/redis_worker_password',
          RESULT_REDIS_PASSWORD_FILE: '/run/late/redis_worker_password',
        }, { '/run/late': dir });
        try {
          await staysUnhealthy(id, 10_000);
          // Waited for (a warn line per retry), not a fatal error: the file may be mounted late.
          const cause = await logLine(id, /"level":"warn".*REDIS_PASSWORD_FILE.*\/run\/late\/redis_worker_password.*"retryInMs"|"level":"warn".*"retryInMs".*REDIS_PASSWORD_FILE/);
          copyFileSync(path.join(secretsDir, 'redis_worker_password'), path.join(dir, 'redis_worker_password'));
          groupReadable(path.join(dir, 'redis_worker_password'));
          const { restarts, ms } = await becomesHealthy(id, 120_000);
          return `log: "${cause.slice(0, 160)}"; healthy ${Math.round(ms / 1000)} s after the file appeared (${restarts} restarts by the engine's restart policy)`;
        } finally {
          await remove(id);
          rmSync(dir, { recursive: true, force: true });
        }
      },
    },
    {
      name: 'bad input: a worker given the wrong CA fails its health check, names the certificate problem, and runs once the right CA is in place',
      needsStack: true,
      run: async () => {
        const dir = scratch();
        const ca = path.join(dir, 'ca.crt');
        copyFileSync(path.join(wrongCertsDir, 'ca.crt'), ca);
        chmodSync(ca, 0o644);
        const id = await cloneWorker(stack, `${stack.project}-wrong-ca`, {}, { '/tls/ca.crt': ca });
        try {
          await staysUnhealthy(id, 10_000);
          // Logged at error (not warn), and the process exits instead of retrying: the engine restarts it.
          const cause = await logLine(id, /"level":"error".*(certificate.*REDIS_CA_CERT|REDIS_CA_CERT.*certificate)/i);
          const exited = await waitFor('the worker to exit and be restarted', 30_000, async () => {
            const [c] = await inspect([id]);
            return c && c.restartCount > 0 ? c : undefined;
          });
          // In place (same inode), as a bind-mounted single file only sees content written into it.
          writeFileSync(ca, readFileSync(path.join(certsDir, 'ca.crt')));
          const { restarts, ms } = await becomesHealthy(id, 120_000);
          expect(restarts, 'restarts by the restart policy').to.be.greaterThan(0);
          return `log: "${cause.slice(0, 200)}"; exited (code ${exited.exitCode}) and restarted by the engine; healthy ${Math.round(ms / 1000)} s after the fix (${restarts} restarts)`;
        } finally {
          await remove(id);
          rmSync(dir, { recursive: true, force: true });
        }
      },
    },
    {
      name: 'bad input: a worker started while the result backend is down is unhealthy, says so, and becomes healthy once it is back',
      needsStack: true,
      run: async () => {
        await stack.compose(['stop', 'redis-backend'], 60_000);
        const id = await cloneWorker(stack, `${stack.project}-no-backend`, {}, {});
        try {
          await staysUnhealthy(id, 10_000);
          const cause = await logLine(id, /result backend/i);
          await stack.compose(['start', 'redis-backend'], 60_000);
          const { restarts, ms } = await becomesHealthy(id, 120_000);
          return `log: "${cause.slice(0, 200)}"; healthy ${Math.round(ms / 1000)} s after the backend came back (${restarts} restarts)`;
        } finally {
          await remove(id);
          await stack.compose(['start', 'redis-backend'], 60_000).catch(() => '');
          await stack.healthy(120_000).catch(() => undefined);
        }
      },
    },
  ];
}
