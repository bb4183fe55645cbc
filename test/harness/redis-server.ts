import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, fstatSync, openSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeCertBundle, type CertBundle } from './certs.js';
import { getFreePort } from './free-port.js';
import {
  aclFileContent,
  buildRedisArgs,
  redisEnv,
  resolveRedisServerOptions,
  type RedisServerOptions,
  type ResolvedRedisServerOptions,
  type RunningRedis,
} from './redis-config.js';

const HOST = '127.0.0.1';
const STOP_GRACE_MS = 5_000;
const CLI_TIMEOUT_MS = 10_000;
const PORT_ATTEMPTS = 3;

interface Tracked {
  stop(): Promise<void>;
  /** Synchronous last resort at process exit (`docker rm -f` for a container). */
  killSync: (() => void) | undefined;
}

const running = new Set<Tracked>();
let exitHooksInstalled = false;

function killAllSync(): void {
  for (const server of running) server.killSync?.();
}

// Installed on first start, never at import. 'exit' covers normal ends and uncaught errors;
// SIGINT/SIGTERM/SIGHUP would skip 'exit', so they get a handler too, but only when nobody else
// handles them: the handler re-raises the signal so the default behaviour (terminate) still happens.
function installExitHooks(): void {
  if (exitHooksInstalled) return;
  exitHooksInstalled = true;
  process.on('exit', killAllSync);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    if (process.listenerCount(signal) > 0) continue;
    process.once(signal, () => {
      killAllSync();
      process.kill(process.pid, signal);
    });
  }
}

/** How many servers started by this process have not been stopped (assert 0 in afterEach). */
export function runningRedisCount(): number {
  return running.size;
}

/** Stops every server this process started and has not stopped yet. */
export async function stopAllRedis(): Promise<void> {
  await Promise.allSettled([...running].map((server) => server.stop()));
}

/**
 * Starts a throwaway Redis: a local redis-server (binary from REDIS_SERVER_BIN or PATH) on a free
 * 127.0.0.1 port with its own temp dir, or a container (TASKLINE_TEST_REDIS_IMAGE, default redis:7)
 * when TASKLINE_TEST_REDIS=container.
 * Resolves once the server answers PING.
 */
export async function startRedis(opts: RedisServerOptions = {}): Promise<RunningRedis> {
  const resolved = resolveRedisServerOptions(opts);
  installExitHooks();
  if (process.env['TASKLINE_TEST_REDIS'] === 'container') {
    const { startRedisContainer } = await import('./redis-container.js');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'taskline-redis-'));
    const certs = resolved.tls ? (resolved.certs ?? (await makeCertBundle({ dir: path.join(dir, 'tls') }))) : undefined;
    // Added to `running` only once started, so these never run before `started` is set.
    const tracked: Tracked = {
      stop: () => started.server.stop(),
      killSync: () => started.removeSync(),
    };
    const started = await startRedisContainer(resolved, certs, dir, () => running.delete(tracked));
    running.add(tracked);
    return started.server;
  }
  const server = await LocalRedis.start(resolved);
  running.add(server.tracked);
  return server;
}

class LocalRedis implements RunningRedis {
  readonly host = HOST;
  readonly tracked: Tracked;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private stopping: Promise<void> | undefined;

  private constructor(
    private readonly options: ResolvedRedisServerOptions,
    readonly dir: string,
    readonly certs: CertBundle | undefined,
    private readonly args: (port: number) => string[],
    private readonly probeTlsFiles: tls.ConnectionOptions | undefined,
    private readonly currentPort: number,
  ) {
    this.tracked = { stop: () => this.stop(), killSync: () => this.killSync() };
  }

  static async start(o: ResolvedRedisServerOptions): Promise<LocalRedis> {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'taskline-redis-'));
    try {
      const certs = o.tls ? (o.certs ?? (await makeCertBundle({ dir: path.join(dir, 'tls') }))) : undefined;
      const acl = aclFileContent(o);
      const aclFile = acl === undefined ? undefined : path.join(dir, 'users.acl');
      if (aclFile !== undefined && acl !== undefined) await writeFile(aclFile, acl, { mode: 0o600 });
      const files = {
        dir,
        certFile: o.serverCertFile ?? certs?.serverCertFile ?? '',
        keyFile: o.serverKeyFile ?? certs?.serverKeyFile ?? '',
        caFile: certs?.caFile ?? '',
        aclFile,
      };
      const args = (port: number): string[] => buildRedisArgs(o, port, HOST, files);
      const probeTlsFiles =
        certs === undefined
          ? undefined
          : {
              ca: await readFile(certs.caFile, 'utf8'),
              cert: await readFile(certs.clientCertFile, 'utf8'),
              key: await readFile(certs.clientKeyFile, 'utf8'),
            };

      for (let attempt = 1; ; attempt++) {
        const port = o.port ?? (await getFreePort());
        const server = new LocalRedis(o, dir, certs, args, probeTlsFiles, port);
        try {
          await server.launch();
          return server;
        } catch (error) {
          // Another process may have taken the free port between probe and bind: try another.
          const portTaken = error instanceof Error && /Address already in use/i.test(error.message);
          if (!portTaken || o.port !== undefined || attempt >= PORT_ATTEMPTS) throw error;
        }
      }
    } catch (error) {
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
  }

  get port(): number {
    return this.currentPort;
  }

  get tls(): boolean {
    return this.options.tls;
  }

  get password(): string | undefined {
    return this.options.password;
  }

  get pid(): number {
    return this.child?.pid ?? -1;
  }

  get url(): string {
    return `${this.tls ? 'rediss' : 'redis'}://${HOST}:${this.port}`;
  }

  env(prefix = 'REDIS_'): Record<string, string> {
    return redisEnv(this, this.options.requireClientCert, prefix);
  }

  async cli(...args: string[]): Promise<string> {
    const flags = ['-h', HOST, '-p', String(this.port), '--no-auth-warning'];
    if (this.tls && this.certs !== undefined) {
      flags.push('--tls', '--sni', 'localhost', '--cacert', this.certs.caFile);
      flags.push('--cert', this.certs.clientCertFile, '--key', this.certs.clientKeyFile);
      // An overridden server certificate (expired, self-signed...) would fail verification;
      // cli() is the harness's admin channel, not the code under test.
      if (this.options.serverCertFile !== undefined) flags.push('--insecure');
    }
    const env = { ...process.env };
    if (this.password !== undefined) env['REDISCLI_AUTH'] = this.password;
    else delete env['REDISCLI_AUTH'];
    return new Promise<string>((resolve, reject) => {
      execFile(
        'redis-cli',
        [...flags, ...args],
        { env, timeout: CLI_TIMEOUT_MS, encoding: 'utf8' },
        (error, stdout, stderr) => {
          if (error) reject(new Error(`redis-cli ${args.join(' ')} failed: ${stderr.trim() || error.message}`));
          else resolve(stdout.trim());
        },
      );
    });
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      try {
        await this.terminate();
      } finally {
        await rm(this.dir, { recursive: true, force: true });
        running.delete(this.tracked);
      }
    })();
    return this.stopping;
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    this.child?.kill(signal);
  }

  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  async restart(): Promise<void> {
    if (this.stopping !== undefined) throw new Error('restart(): the server was stopped');
    await this.terminate();
    await this.launch();
  }

  private killSync(): void {
    const pid = this.child?.pid;
    if (pid !== undefined && this.child?.exitCode === null && this.child.signalCode === null) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private isAlive(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM (and SIGCONT, in case it is paused), SIGKILL after the grace period; keeps the dir. */
  private async terminate(): Promise<void> {
    const child = this.child;
    if (child === undefined || !this.isAlive()) return;
    child.kill('SIGTERM');
    child.kill('SIGCONT');
    const grace = new AbortController();
    const graceful = await Promise.race([
      this.exited.then(() => true),
      sleep(STOP_GRACE_MS, false, { signal: grace.signal }).catch(() => false),
    ]);
    grace.abort(); // do not keep the event loop alive for the rest of the grace period
    if (!graceful) {
      child.kill('SIGKILL');
      await this.exited;
    }
  }

  private async launch(): Promise<void> {
    const bin = process.env['REDIS_SERVER_BIN'] ?? 'redis-server';
    const logFile = path.join(this.dir, 'redis.log');
    // The child writes straight to a file: no pipes to drain, and start-up errors land there too.
    const logFd = openSync(logFile, 'a');
    const logStart = fstatSync(logFd).size; // the log is shared across restarts
    let child: ChildProcess;
    try {
      child = spawn(bin, this.args(this.currentPort), { cwd: this.dir, stdio: ['ignore', logFd, logFd] });
    } finally {
      closeSync(logFd);
    }
    // A forgotten server must not keep the test process alive; the exit hook kills it.
    child.unref();
    this.child = child;
    let spawnError: Error | undefined;
    this.exited = new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', (error) => {
        spawnError = error;
        resolve();
      });
    });

    const readLog = async (): Promise<string> =>
      (await readFile(logFile).catch(() => Buffer.alloc(0))).subarray(logStart).toString('utf8');
    const deadline = Date.now() + this.options.startTimeoutMs;
    for (;;) {
      if (!this.isAlive() || spawnError !== undefined) {
        await this.exited;
        const reason = spawnError?.message ?? `exited with ${child.exitCode ?? child.signalCode}`;
        throw new Error(`redis-server (${bin}) failed to start: ${reason}\n${(await readLog()).slice(-2000)}`);
      }
      // Both: the log line proves it is our server (not another one already on a reused port),
      // the probe proves the listener answers.
      if ((await readLog()).includes('Ready to accept connections') && (await this.probe())) return;
      if (Date.now() > deadline) {
        await this.terminate();
        throw new Error(
          `redis-server did not accept connections on ${HOST}:${this.currentPort} within ` +
            `${this.options.startTimeoutMs} ms\n${(await readLog()).slice(-2000)}`,
        );
      }
      await sleep(25);
    }
  }

  /** True once the server answers PING with any RESP reply (+PONG, or -NOAUTH with a password). */
  private async probe(): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      let socket: net.Socket;
      const onReady = (): void => {
        socket.write('PING\r\n');
      };
      if (this.probeTlsFiles !== undefined) {
        // Readiness only: the served certificate may be deliberately invalid (expired, wrong SAN).
        socket = tls.connect({
          host: HOST,
          port: this.currentPort,
          servername: 'localhost',
          rejectUnauthorized: false,
          ...this.probeTlsFiles,
        });
        socket.once('secureConnect', onReady);
      } else {
        socket = net.connect({ host: HOST, port: this.currentPort });
        socket.once('connect', onReady);
      }
      let done = false;
      const finish = (ok: boolean): void => {
        if (done) return;
        done = true;
        socket.destroy();
        resolve(ok);
      };
      socket.setTimeout(1_000, () => finish(false));
      socket.on('error', () => finish(false));
      socket.once('data', (data: Buffer) => {
        const first = data.toString('latin1', 0, 1);
        finish(first === '+' || first === '-');
      });
    });
  }
}

