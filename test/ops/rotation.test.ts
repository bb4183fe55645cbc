import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { chmod, copyFile, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { createConnections, resolveConnectionOptions, type TasklineConnections } from '@taskline/shared';
import { createProducer, type Producer } from '@taskline/producer';
import { createWorker, type TasklineWorker } from '@taskline/worker';
import exampleTasks from '../../worker/examples/tasks.js';
import { makeCertBundle, runningRedisCount, startRedis, type RunningRedis } from '../harness/index.js';
import { runScript, tempDir, uniquePrefix } from './ops-helpers.js';

// ops/rotate-certs.sh against two running mutual-TLS Redis servers (broker and result backend),
// a worker and a producer, while jobs flow: every step is followed by a forced reconnect of
// every client, so new connections must succeed with the files as they are after that step.

const SCRIPT = 'ops/rotate-certs.sh';

const execFileAsync = promisify(execFile);

/** Every *.key file under `dir`, as paths relative to it. */
async function keyFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true });
  return entries.filter(name => name.endsWith('.key')).sort();
}
const FLOWS = 4;

interface Flow {
  succeeded: number;
  problems: string[];
  stop: () => Promise<void>;
}

/** FLOWS loops of enqueue → waitForResult until stopped; counts successes, keeps every other outcome. */
function startJobFlow(producer: Producer): Flow {
  let running = true;
  const flow: Flow = { succeeded: 0, problems: [], stop: async () => undefined };
  const loop = async (n: number): Promise<void> => {
    for (let i = 0; running; i++) {
      try {
        const { id } = await producer.enqueue('add', { a: n, b: i });
        const record = await producer.waitForResult(id, { timeoutMs: 20_000 });
        if (record.state === 'SUCCESS' && record.result === n + i) flow.succeeded++;
        else flow.problems.push(`job ${id}: ${record.state} ${JSON.stringify(record.error ?? record.result)}`);
      } catch (err) {
        flow.problems.push(`flow ${n}: ${(err as Error).message}`);
        await sleep(100);
      }
    }
  };
  const loops = Array.from({ length: FLOWS }, (_, n) => loop(n));
  flow.stop = async () => {
    running = false;
    await Promise.all(loops);
  };
  return flow;
}

describe('ops: certificate rotation with ops/rotate-certs.sh while jobs flow', function () {
  this.timeout(90_000);

  let live: { dir: string; remove: () => Promise<void> } | undefined;
  let broker: RunningRedis | undefined;
  let backend: RunningRedis | undefined;
  let worker: TasklineWorker | undefined;
  let producer: Producer | undefined;
  let probe: TasklineConnections | undefined;

  afterEach(async function () {
    await producer?.close();
    await worker?.close({ force: true });
    await probe?.close();
    await broker?.stop();
    await backend?.stop();
    await live?.remove();
    [producer, worker, probe, broker, backend, live] = [undefined, undefined, undefined, undefined, undefined, undefined];
    expect(runningRedisCount(), 'Redis servers left running').to.equal(0);
  });

  it('rotates to a new CA in four steps with zero failed jobs; afterwards the old CA is refused both ways', async function () {
    // The "live" directory every process points at, as compose mounts certs/prod at /tls.
    live = await tempDir('rotation');
    const certs = await makeCertBundle({ dir: live.dir });
    const oldCa = path.join(live.dir, 'test-copy-of-old-ca.crt');
    await copyFile(certs.caFile, oldCa);
    broker = await startRedis({ tls: true, requireClientCert: true, certs });
    backend = await startRedis({ tls: true, requireClientCert: true, certs });
    const env = { ...broker.env('REDIS_'), ...backend.env('RESULT_REDIS_') };
    expect(env['REDIS_CLIENT_CERT']).to.equal(path.join(live.dir, 'client.crt'));

    const prefix = uniquePrefix('rotate');
    const connection = { healthCheckIntervalMs: 0 };
    // Killing every connection can cut a job's move to active before its reply arrives: BullMQ
    // then redelivers it once its lock expires (at least once). Short locks keep that within the
    // producer's wait; the defaults (30 s) would only make it slower.
    worker = createWorker({
      tasks: exampleTasks, env, prefix, connection, concurrency: 8, shutdownGraceMs: 5000,
      lockDurationMs: 2000, stalledIntervalMs: 1000,
    });
    await worker.start();
    producer = createProducer({ env, prefix, connection });
    await producer.connect();
    const before = await producer.checkHealth();
    expect(before.ok, JSON.stringify(before)).to.equal(true);

    const servers = ['--redis', `${broker.host}:${broker.port}`, '--redis', `${backend.host}:${backend.port}`];
    const common = ['--dir', live.dir, '--sni', 'localhost', ...servers];
    const step = async (command: string, extra: string[] = []): Promise<string> => {
      const { code, stdout, stderr } = await runScript(SCRIPT, [command, ...common, ...extra]);
      expect(code, `${command}: ${stderr}`).to.equal(0);
      return stdout;
    };
    const flow = startJobFlow(producer);
    /** Kills every client connection on both servers, then waits for `jobs` more successes. */
    const reconnectAndFlow = async (what: string, jobs = 15): Promise<void> => {
      await broker!.cli('CLIENT', 'KILL', 'TYPE', 'normal');
      await backend!.cli('CLIENT', 'KILL', 'TYPE', 'normal');
      const target = flow.succeeded + jobs;
      const deadline = Date.now() + 15_000;
      while (flow.succeeded < target && Date.now() < deadline) await sleep(25);
      expect(flow.succeeded, `jobs after ${what} (problems: ${flow.problems.join('; ')})`).to.be.at.least(target);
    };

    try {
      await reconnectAndFlow('start');
      // A different validity makes the new server certificate recognisable by its expiry.
      await step('issue', ['--days', '400']);
      await reconnectAndFlow('issue');
      const trustBoth = await step('trust-both');
      expect(trustBoth).to.match(/tls-ca-cert-file .* -> OK/);
      expect((await readFile(certs.caFile, 'utf8')).match(/BEGIN CERTIFICATE/g)).to.have.length(2);
      await reconnectAndFlow('trust-both');
      await step('roll-server');
      await reconnectAndFlow('roll-server');
      await step('roll-client');
      await reconnectAndFlow('roll-client');
      // --redis-cli: how operators run redis-cli where the servers are reachable (a container).
      await step('drop-old-ca', ['--redis-cli', 'env LC_ALL=C redis-cli']);
      await reconnectAndFlow('drop-old-ca');
    } finally {
      await flow.stop();
    }
    expect(flow.problems, 'failed jobs or errors').to.deep.equal([]);
    expect(flow.succeeded).to.be.at.least(90);

    // The servers now present the new certificate...
    const after = await producer.checkHealth();
    expect(after.ok, JSON.stringify(after)).to.equal(true);
    for (const service of ['broker', 'backend'] as const) {
      const was = before[service].tls?.peerCertificateExpires;
      const now = after[service].tls?.peerCertificateExpires;
      expect(now, `${service} certificate expiry`).to.be.a('string').and.not.equal(was);
      expect(after[service].tls?.peerCertificateDaysLeft).to.be.at.least(398);
    }
    expect((await readFile(certs.caFile, 'utf8')).match(/BEGIN CERTIFICATE/g)).to.have.length(1);

    // ...and a client that trusts only the old CA is refused, by its own verification.
    probe = createConnections({
      options: resolveConnectionOptions({
        broker: { host: broker.host, port: broker.port, caFile: oldCa, certFile: certs.clientCertFile, keyFile: certs.clientKeyFile },
        retries: 0,
        healthCheckIntervalMs: 0,
      }, {}),
      role: 'cli',
      component: 'old-ca-probe',
    });
    const refused = await probe.broker.connect().then(() => null, (err: unknown) => err as Error & { code?: string });
    expect(refused, 'connecting with the old CA').to.be.an('error');
    expect(refused?.code).to.equal('TLS_UNTRUSTED_CERT');
    await probe.close();

    // ...and the servers refuse the old client certificate (kept by the script in retired-<time>/).
    const retired = (await readdir(live.dir)).find(name => name.startsWith('retired-'));
    expect(retired, 'retired-<time>/ directory').to.be.a('string');
    probe = createConnections({
      options: resolveConnectionOptions({
        broker: {
          host: broker.host, port: broker.port, caFile: certs.caFile,
          certFile: path.join(live.dir, retired ?? '', 'client.crt'), keyFile: path.join(live.dir, retired ?? '', 'client.key'),
        },
        retries: 0,
        healthCheckIntervalMs: 0,
      }, {}),
      role: 'cli',
      component: 'old-client-cert-probe',
    });
    const rejected = await probe.broker.connect().then(() => null, (err: unknown) => err as Error & { code?: string });
    expect(rejected, 'connecting with the old client certificate').to.be.an('error');
    // Under TLS 1.3 the server judges the client certificate after the client finished its side of
    // the handshake; its alert sometimes loses the race with the socket reset.
    expect(rejected?.code).to.be.oneOf(['TLS_CLIENT_CERT_REJECTED', 'CONNECTION_RESET']);
  });

  it('refuses to roll the server certificate before the clients trust its CA', async function () {
    live = await tempDir('rotation-order');
    await makeCertBundle({ dir: live.dir });
    const issued = await runScript(SCRIPT, ['issue', '--dir', live.dir]);
    expect(issued.code, issued.stderr).to.equal(0);
    const early = await runScript(SCRIPT, ['roll-server', '--dir', live.dir]);
    expect(early.code).to.equal(1);
    expect(early.stderr).to.match(/ca\.crt does not trust .*next-server\.crt.*run 'rotate-certs\.sh trust-both' first/);
    const serverCrt = await readFile(path.join(live.dir, 'server.crt'), 'utf8');
    const dropEarly = await runScript(SCRIPT, ['drop-old-ca', '--dir', live.dir]);
    expect(dropEarly.code).to.equal(1);
    expect(dropEarly.stderr).to.match(/server\.crt is not issued by the new CA; run 'rotate-certs\.sh roll-server'/);
    expect(await readFile(path.join(live.dir, 'server.crt'), 'utf8')).to.equal(serverCrt);
  });

  it('writes every key file mode 600 and keeps the CA key out of the mounted directory through a rotation (findings 1 and 9)', async function () {
    live = await tempDir('rotation-modes');
    // Servers only at first (no client certificate yet): roll-client then creates client.key.
    const first = await runScript('certs/generate-certs.sh', ['--out', live.dir, '--server-only', '--key-type', 'ec']);
    expect(first.code, first.stderr).to.equal(0);
    const serverKey = path.join(live.dir, 'server.key');
    await chmod(serverKey, 0o644); // a world-readable key left by hand
    for (const command of ['issue', 'trust-both', 'roll-server', 'roll-client', 'drop-old-ca']) {
      const { code, stderr } = await runScript(SCRIPT, [command, '--dir', live.dir, '--key-type', 'ec']);
      expect(code, `${command}: ${stderr}`).to.equal(0);
      if (command === 'issue') {
        expect((await stat(path.join(live.dir, 'ca-private', 'next-ca.key'))).mode & 0o777, 'new CA key').to.equal(0o600);
        expect((await stat(path.join(live.dir, 'next-client.key'))).mode & 0o777).to.equal(0o600);
      }
    }
    expect((await stat(path.join(live.dir, 'client.key'))).mode & 0o777, 'client.key created by roll-client').to.equal(0o600);
    expect((await stat(serverKey)).mode & 0o007, 'server.key: no access for others').to.equal(0);

    // Every key under the mounted directory, wherever it sits: the CA keys only in ca-private/.
    const keys = await keyFiles(live.dir);
    const outside = keys.filter(f => !f.startsWith('ca-private/'));
    expect(outside.filter(f => /ca\.key$/.test(f)), 'CA keys outside ca-private/').to.deep.equal([]);
    for (const f of keys) expect((await stat(path.join(live.dir, f))).mode & 0o077, `${f} readable by group or others`).to.be.oneOf([0, 0o040]);
    expect(keys).to.include('ca-private/ca.key');
    expect(keys.some(f => /^ca-private\/retired-[^/]+\/ca\.key$/.test(f)), `retired CA key in ca-private/ (${keys.join(', ')})`).to.equal(true);
    // ca-private/ca.key is the key of the CA that is now live.
    const key = await execFileAsync('openssl', ['pkey', '-in', path.join(live.dir, 'ca-private', 'ca.key'), '-pubout']);
    const cert = await execFileAsync('openssl', ['x509', '-in', path.join(live.dir, 'ca.crt'), '-noout', '-pubkey']);
    expect(key.stdout).to.equal(cert.stdout).and.include('PUBLIC KEY');
  });

  it('explains its steps in --help and never prints the password it is given', async function () {
    const help = await runScript(SCRIPT, ['--help']);
    expect(help.code).to.equal(0);
    for (const command of ['issue', 'trust-both', 'roll-server', 'roll-client', 'drop-old-ca']) {
      expect(help.stdout).to.include(`  ${command}`);
    }
    live = await tempDir('rotation-secret');
    await makeCertBundle({ dir: live.dir });
    const secret = 'rotation-secret-do-not-print-4711';
    const passwordFile = path.join(live.dir, 'admin_password');
    await writeFile(passwordFile, `${secret}\n`, { mode: 0o600 });
    await runScript(SCRIPT, ['issue', '--dir', live.dir]);
    // Nothing listens on this port: the reload fails, and its error must not carry the password.
    const result = await runScript(SCRIPT, ['trust-both', '--dir', live.dir, '--redis', '127.0.0.1:1', '--user', 'admin', '--password-file', passwordFile]);
    expect(result.code).to.equal(1);
    expect(result.stderr).to.match(/127\.0\.0\.1:1 refused 'CONFIG SET tls-ca-cert-file/);
    expect(result.stdout + result.stderr).not.to.include(secret);
  });
});
