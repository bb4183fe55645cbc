import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { createProducer } from '@taskline/producer';
import { createScheduler } from '@taskline/scheduler';
import { createConnections, toConnectionError, type TasklineConnections } from '@taskline/shared';
import { createWorker, defineTasks } from '@taskline/worker';
import { runningRedisCount, startRedis, type RunningRedis } from '../harness/index.js';
import { connectionAs, endpointAs, readSecret, redisServerVersion, runScript, tempDir, uniquePrefix } from './ops-helpers.js';

// The least-privilege users of ops/acl/generate-acl.sh, on real TLS Redis servers: each taskline
// process works under its own user, and what a role may not do fails with the clear sentence.

const ROLES = ['producer', 'worker', 'scheduler'] as const;
const FORBIDDEN: Array<{ label: string; args: string[] }> = [
  { label: 'FLUSHALL', args: ['FLUSHALL'] },
  { label: 'FLUSHDB', args: ['FLUSHDB'] },
  { label: 'CONFIG GET', args: ['CONFIG', 'GET', 'requirepass'] },
  { label: 'KEYS', args: ['KEYS', '*'] },
  { label: 'CLIENT LIST', args: ['CLIENT', 'LIST'] },
  { label: 'ACL SETUSER', args: ['ACL', 'SETUSER', 'intruder', 'on', '>pw', '+@all'] },
  { label: 'SHUTDOWN', args: ['SHUTDOWN', 'NOSAVE'] },
  { label: 'a key outside the prefix', args: ['SET', 'someone-else:key', '1'] },
];

describe('ops: least-privilege Redis ACL users', function () {
  this.timeout(60_000);
  let secrets: { dir: string; remove: () => Promise<void> };
  let prefix: string;
  let broker: RunningRedis;
  let backend: RunningRedis;
  const open: TasklineConnections[] = [];

  before(async () => {
    secrets = await tempDir('acl');
    prefix = uniquePrefix('acl');
    const made = await runScript('ops/make-secrets.sh', ['--prefix', prefix, '--redis-version', await redisServerVersion(), secrets.dir]);
    expect(made.code, made.stderr).to.equal(0);
    broker = await startRedis({ extraArgs: ['--aclfile', path.join(secrets.dir, 'redis_broker.acl')] });
    backend = await startRedis({ extraArgs: ['--aclfile', path.join(secrets.dir, 'redis_backend.acl')] });
  });

  afterEach(async () => {
    for (const c of open.splice(0)) await c.close();
  });

  after(async () => {
    await broker?.stop();
    await backend?.stop();
    await secrets?.remove();
    expect(runningRedisCount()).to.equal(0);
  });

  it('runs a job end to end with the producer, worker and scheduler each under its own user over TLS', async () => {
    const tasks = defineTasks({ add: { run: (data: { a: number; b: number }) => data.a + data.b } });
    const worker = createWorker({ tasks, prefix, connection: connectionAs(broker, backend, 'worker', secrets.dir), env: {} });
    const producer = createProducer({ prefix, connection: connectionAs(broker, backend, 'producer', secrets.dir), env: {} });
    const schedulePath = path.join(secrets.dir, 'schedule.json');
    await writeFile(schedulePath, JSON.stringify({ schedules: [{ id: 'acl-beat', task: 'add', every: '1s', data: { a: 20, b: 22 } }] }));
    const scheduler = createScheduler({ schedulePath, prefix, connection: connectionAs(broker, backend, 'scheduler', secrets.dir), env: {} });
    const admin = ['--user', 'admin', '--pass', await readSecret(secrets.dir, 'redis_admin_password')];
    for (const server of [broker, backend]) await server.cli(...admin, 'ACL', 'LOG', 'RESET');
    try {
      await worker.start();
      const { id } = await producer.enqueue('add', { a: 2, b: 3 });
      const record = await producer.waitForResult(id, { timeoutMs: 15_000 });
      expect(record.state).to.equal('SUCCESS');
      expect(record.result).to.equal(5);

      // The beat, as `scheduler`, reconciles its schedule and its ticks run on the worker.
      await scheduler.start();
      const deadline = Date.now() + 15_000;
      let beatResult: unknown;
      while (beatResult === undefined && Date.now() < deadline) {
        const keys = await backend.cli(...admin, '--scan', '--pattern', `${prefix}:result:*`);
        for (const key of keys.split('\n').filter(Boolean)) {
          const raw = await backend.cli(...admin, 'HGET', key, 'out');
          if (raw.includes('"result":42')) beatResult = JSON.parse(raw);
        }
        if (beatResult === undefined) await new Promise(r => setTimeout(r, 250));
      }
      expect(beatResult, 'a scheduled tick ran under the scheduler user').to.not.equal(undefined);
      // Nothing the three processes sent was refused, not even a command whose error is ignored.
      for (const server of [broker, backend]) expect(await server.cli(...admin, 'ACL', 'LOG')).to.equal('');
    } finally {
      await scheduler.close();
      await producer.close();
      await worker.close();
    }
  });

  for (const user of [...ROLES, 'metrics'] as const) {
    it(`refuses FLUSHALL, CONFIG, KEYS, CLIENT LIST, ACL, SHUTDOWN and foreign keys to "${user}" with AUTH_NO_PERMISSION`, async () => {
      for (const service of ['broker', 'backend'] as const) {
        const connections = createConnections({ options: connectionAs(broker, backend, user, secrets.dir), role: 'cli' });
        open.push(connections);
        await connections.connect();
        const client = connections[service].client();
        for (const { label, args } of FORBIDDEN) {
          const error = await client.call(args[0] as string, ...args.slice(1)).then(
            () => null,
            (err: unknown) => err,
          );
          expect(error, `${user} on the ${service}: ${label} must be refused`).to.be.instanceOf(Error);
          expect((error as Error).message, `${user} ${service} ${label}`).to.match(/^NOPERM/);
          const mapped = toConnectionError(error, connections[service].target);
          expect(mapped.code).to.equal('AUTH_NO_PERMISSION');
          expect(mapped.kind).to.equal('auth');
          expect(mapped.message).to.match(/lacks a permission taskline needs/).and.match(/docs\/OPERATIONS\.md/);
        }
        expect(await client.ping()).to.equal('PONG');
      }
    });
  }

  it('lets "metrics" count queue entries but not read job data or results', async () => {
    const connections = createConnections({ options: connectionAs(broker, backend, 'metrics', secrets.dir), role: 'cli' });
    open.push(connections);
    await connections.connect();
    expect(await connections.broker.client().llen(`${prefix}:default:wait`)).to.be.a('number');
    expect(await connections.broker.client().info('server')).to.match(/redis_version/);
    const read = await connections.backend.client().get(`${prefix}:result:any`).then(() => null, (err: unknown) => err as Error);
    expect(read?.message).to.match(/^NOPERM/);
    const write = await connections.broker.client().set(`${prefix}:x`, '1').then(() => null, (err: unknown) => err as Error);
    expect(write?.message).to.match(/^NOPERM/);
  });

  it('turns the default user off: a client without a user name cannot connect', async () => {
    const connections = createConnections({
      options: { broker: endpointAs(broker, undefined, secrets.dir), backend: endpointAs(backend, undefined, secrets.dir), retries: 0, healthCheckIntervalMs: 0 },
      role: 'cli',
    });
    open.push(connections);
    const error = await connections.connect().then(() => null, (err: unknown) => err as Error & { code?: string });
    expect(error?.code).to.be.oneOf(['AUTH_REQUIRED', 'AUTH_FAILED']);
  });

  it('writes passwords only as SHA-256 hashes and never prints them', async () => {
    const out = await runScript('ops/acl/generate-acl.sh', ['--service', 'broker', '--prefix', prefix, '--redis-version', '7.0', '--secrets-dir', secrets.dir]);
    expect(out.code, out.stderr).to.equal(0);
    for (const user of [...ROLES, 'metrics', 'admin']) {
      const password = await readSecret(secrets.dir, `redis_${user}_password`);
      expect(out.stdout.includes(password) || out.stderr.includes(password), `${user}'s password printed`).to.equal(false);
      const line = out.stdout.split('\n').find(l => l.startsWith(`user ${user} `)) ?? '';
      expect(line).to.include(`#${createHash('sha256').update(password).digest('hex')}`);
    }
    expect(out.stdout).to.match(/^user default off /m);
  });

  it('explains a missing password file and a wrong service clearly', async () => {
    const missing = await runScript('ops/acl/generate-acl.sh', ['--service', 'broker', '--secrets-dir', path.join(secrets.dir, 'nope')]);
    expect(missing.code).to.not.equal(0);
    expect(missing.stderr).to.match(/cannot read .*redis_producer_password; create it \(or pass --init-secrets\)/);
    const wrong = await runScript('ops/acl/generate-acl.sh', ['--service', 'cache', '--secrets-dir', secrets.dir]);
    expect(wrong.stderr).to.match(/--service must be broker or backend, got 'cache'/);
  });
});
