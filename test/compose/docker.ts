// Small wrappers over the docker and compose CLIs for the compose checks (pnpm test:compose).
// Every command has a time limit; none prints a secret (passwords reach redis-cli through
// REDISCLI_AUTH read inside the container, never through an argument).
import { execFile } from 'node:child_process';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

export function sh(cmd: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {}): Promise<Run> {
  return new Promise(resolve => {
    const child = execFile(
      cmd,
      args,
      { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, env: opts.env ?? process.env },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 124) : 0;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs and throws (with the command's stderr) unless it exits 0. */
export async function must(cmd: string, args: string[], opts: Parameters<typeof sh>[2] = {}): Promise<string> {
  const result = await sh(cmd, args, opts);
  if (result.code !== 0) {
    throw new Error(`${cmd} ${args.slice(0, 4).join(' ')}… exited ${result.code}: ${(result.stderr || result.stdout).trim().slice(-800)}`);
  }
  return result.stdout;
}

export const docker = (args: string[], opts: Parameters<typeof sh>[2] = {}): Promise<string> => must('docker', args, opts);

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms));

/** Polls `probe` until it returns a value other than undefined, or throws `what` at the deadline. */
export async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, everyMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}${last instanceof Error ? ` (last error: ${last.message})` : ''}`);
    }
    await sleep(everyMs);
  }
}

export interface Container {
  id: string;
  name: string;
  service: string;
  /** The container's host name: the short id, which workers record as `worker: host:pid`. */
  hostname: string;
  ip: string;
  health: string;
  running: boolean;
  restartCount: number;
  startedAt: string;
  exitCode: number;
  user: string;
  mounts: Array<{ Type: string; Source: string; Destination: string }>;
}

interface Inspect {
  Id: string;
  Name: string;
  RestartCount: number;
  Config: { Hostname: string; User: string; Labels: Record<string, string> };
  State: { Running: boolean; StartedAt: string; ExitCode: number; Health?: { Status: string } };
  NetworkSettings: { Networks: Record<string, { IPAddress: string }> };
  Mounts: Array<{ Type: string; Source: string; Destination: string }>;
}

export async function inspect(ids: string[]): Promise<Container[]> {
  if (ids.length === 0) return [];
  const raw = JSON.parse(await docker(['inspect', ...ids])) as Inspect[];
  return raw.map(c => ({
    id: c.Id,
    name: c.Name.replace(/^\//, ''),
    service: c.Config.Labels['com.docker.compose.service'] ?? '',
    hostname: c.Config.Hostname,
    ip: Object.values(c.NetworkSettings.Networks)[0]?.IPAddress ?? '',
    health: c.State.Health?.Status ?? 'none',
    running: c.State.Running,
    restartCount: c.RestartCount,
    startedAt: c.State.StartedAt,
    exitCode: c.State.ExitCode,
    user: c.Config.User,
    mounts: c.Mounts,
  }));
}

// The admin's password reaches redis-cli through REDISCLI_AUTH, read inside the container.
const ADMIN_CLI =
  'REDISCLI_AUTH="$(cat /run/secrets/redis_admin_password)" exec redis-cli --tls --cacert /tls/ca.crt ' +
  '--cert /tls/server.crt --key /tls/server.key -h localhost -p 6379 --user admin --no-auth-warning "$@"';

/** The compose project: `docker compose` (v2) or `docker-compose` (v1), whichever the script found. */
export class Stack {
  readonly #cmd: string[];

  constructor(
    readonly project: string,
    readonly file: string,
    composeCommand: string,
  ) {
    this.#cmd = composeCommand.split(' ');
  }

  compose(args: string[], timeoutMs = 300_000): Promise<string> {
    const [cmd = 'docker-compose', ...pre] = this.#cmd;
    return must(cmd, [...pre, '-p', this.project, '-f', this.file, ...args], { timeoutMs });
  }

  /** The project's containers (of one service if named), running or not, by name. */
  async containers(service?: string, all = false): Promise<Container[]> {
    const filters = ['--filter', `label=com.docker.compose.project=${this.project}`];
    if (service) filters.push('--filter', `label=com.docker.compose.service=${service}`);
    const ids = (await docker(['ps', ...(all ? ['-a'] : []), '-q', ...filters])).split('\n').filter(Boolean);
    return (await inspect(ids)).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Resolves once `count` containers of `service` (every service if omitted) run and are healthy. */
  async healthy(timeoutMs: number, service?: string, count?: number): Promise<Container[]> {
    return waitFor(`${count ?? 'all'} ${service ?? 'containers'} healthy`, timeoutMs, async () => {
      const list = await this.containers(service);
      const ok = list.length > 0 && list.every(c => c.running && (c.health === 'healthy' || c.health === 'none'));
      return ok && (count === undefined || list.length === count) ? list : undefined;
    });
  }

  /** The one running container of a service (redis-broker, producer...). */
  async one(service: string): Promise<Container> {
    const [container] = await this.containers(service);
    if (!container) throw new Error(`no running ${service} container`);
    return container;
  }

  /** redis-cli as the admin user, inside a Redis container (TLS, the server's own certificate). */
  async redisAdmin(service: 'redis-broker' | 'redis-backend', args: string[]): Promise<string> {
    const redis = await this.one(service);
    return docker(['exec', redis.id, 'sh', '-c', ADMIN_CLI, 'redis-cli', ...args]);
  }

  /** Many commands through one admin redis-cli (one per line on its stdin); its raw replies, line by line. */
  async redisAdminBatch(service: 'redis-broker' | 'redis-backend', commands: string[][]): Promise<string[]> {
    if (commands.length === 0) return [];
    const redis = await this.one(service);
    const input = commands.map(c => c.join(' ')).join('\n') + '\n';
    const out = await docker(['exec', '-i', redis.id, 'sh', '-c', ADMIN_CLI, 'redis-cli'], { input });
    return out.replace(/\n$/, '').split('\n');
  }
}

/** A container's log, stdout and stderr together. */
export async function logsOf(id: string): Promise<string> {
  const result = await sh('docker', ['logs', id]);
  return result.stdout + result.stderr;
}

/** Runs a Node.js script inside a taskline container (on the compose network, as its user). */
export function nodeIn(container: Container, script: string, env: Record<string, string> = {}): Promise<string> {
  const envArgs = Object.keys(env).flatMap(name => ['-e', name]);
  return docker(['exec', ...envArgs, container.id, 'node', '-e', script], { env: { ...process.env, ...env }, timeoutMs: 60_000 });
}
