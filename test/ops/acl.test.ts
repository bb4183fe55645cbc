import { createHash } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { createProducer, type Producer } from '@taskline/producer';
import { createScheduler } from '@taskline/scheduler';
import { ResultTimeoutError, createConnections, type TasklineConnections } from '@taskline/shared';
import { RESULT_BACKEND_SCRIPTS } from '@taskline/shared/job';
import { toConnectionError } from '@taskline/shared/connection';
import { createWorker, defineTasks, type TasklineWorker } from '@taskline/worker';
import { runningRedisCount } from '../harness/index.js';
import { AclServers, APP_USERS, type AclUser } from './acl-fixture.js';
import { readSecret, runScript } from './ops-helpers.js';

// The least-privilege users of ops/acl/generate-acl.sh (issue 11, findings 2, 3 and 13), on real
// TLS Redis servers: every taskline process works under its own user with the scripts preloaded
// by the loader user (no EVAL), and each thing a role may not do is refused with NOPERM.

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));
const BUSY_LOOP = "local t = tonumber(redis.call('TIME')[1]) + 2 while tonumber(redis.call('TIME')[1]) < t do end return 'ran'";
const script = (name: string) => {
  const found = RESULT_BACKEND_SCRIPTS.find(s => s.name === name);
  if (!found) throw new Error(`no result-backend script "${name}"`);
  return found;
};

/** What no user but admin may do, on either server. */
const EVERYONE_FORBIDDEN: Array<{ label: string; args: string[] }> = [
  { label: 'FLUSHALL', args: ['FLUSHALL'] },
  { label: 'FLUSHDB', args: ['FLUSHDB'] },
  { label: 'CONFIG GET', args: ['CONFIG', 'GET', 'requirepass'] },
  { label: 'KEYS', args: ['KEYS', '*'] },
  { label: 'SCAN', args: ['SCAN', '0'] },
  { label: 'CLIENT LIST', args: ['CLIENT', 'LIST'] },
  { label: 'ACL SETUSER', args: ['ACL', 'SETUSER', 'intruder', 'on', '>pw', '+@all'] },
  { label: 'SHUTDOWN', args: ['SHUTDOWN', 'NOSAVE'] },
  { label: 'a key outside the prefix', args: ['SET', 'someone-else:key', '1'] },
  // Finding 3: free-form Lua. The loop would hold Redis for 2 s (BUSY for everyone) if it ran.
  { label: 'EVAL of a busy loop', args: ['EVAL', BUSY_LOOP, '0'] },
  { label: 'EVAL_RO', args: ['EVAL_RO', BUSY_LOOP, '0'] },
  { label: 'SCRIPT FLUSH', args: ['SCRIPT', 'FLUSH'] },
  { label: 'SCRIPT KILL', args: ['SCRIPT', 'KILL'] },
  { label: 'FUNCTION LOAD', args: ['FUNCTION', 'LOAD', `#!lua name=evil\nredis.register_function('spin', function() ${BUSY_LOOP} end)`] },
  { label: 'FCALL', args: ['FCALL', 'spin', '0'] },
];

describe('ops: least-privilege Redis ACL users', function () {
  this.timeout(90_000);
  let acl: AclServers;
  const open: TasklineConnections[] = [];

  /** A raw client for one user on one server (scripts preloaded, as the processes run). */
  async function clientAs(user: AclUser, service: 'broker' | 'backend') {
    const connections = createConnections({ options: acl.connectionAs(user), role: 'cli' });
    open.push(connections);
    await connections.connect();
    return { client: connections[service].client(), target: connections[service].target };
  }

  /** Sends a command as `user`; asserts Redis refused it for lack of permission, with the clear sentence. */
  async function expectRefused(user: AclUser, service: 'broker' | 'backend', label: string, args: Array<string | number>): Promise<void> {
    const { client, target } = await clientAs(user, service);
    const started = Date.now();
    const error = await client.call(String(args[0]), ...args.slice(1)).then(
      reply => new Error(`it was allowed and answered ${JSON.stringify(reply)}`),
      (err: unknown) => err as Error,
    );
    const what = `${user} on the ${service}: ${label}`;
    expect(error.message, what).to.match(/^NOPERM|^ERR The user executing the script can't/);
    const mapped = toConnectionError(error, target);
    expect(mapped.code, what).to.equal('AUTH_NO_PERMISSION');
    expect(mapped.message, what).to.match(/lacks a permission taskline needs/).and.match(/docs\/OPERATIONS\.md/);
    expect(Date.now() - started, `${what} answered at once (nothing ran)`).to.be.below(1500);
  }

  before(async () => {
    acl = await AclServers.start();
    // The deploy step: every script taskline and BullMQ run, loaded by the loader user.
    const loaded = await acl.runBin('worker', ['scripts', 'load'], 'loader');
    expect(loaded.code, loaded.stdout + loaded.stderr).to.equal(0);
    expect(loaded.stdout).to.match(/^ok {3}broker 127\.0\.0\.1:\d+: \d+ scripts in place, \d+ loaded now$/m);
    expect(loaded.stdout).to.match(/^ok {3}result backend 127\.0\.0\.1:\d+: 2 scripts in place, 2 loaded now$/m);
  });

  afterEach(async () => {
    for (const c of open.splice(0)) await c.close();
  });

  after(async () => {
    await acl?.stop();
    expect(runningRedisCount()).to.equal(0);
  });

  describe('each process under its own user, scripts preloaded', () => {
    let worker: TasklineWorker;
    let producer: Producer;

    before(async () => {
      const tasks = defineTasks({
        add: { run: (data: { a: number; b: number }) => data.a + data.b },
        limited: { run: () => 'ok', rateLimit: { max: 100, durationMs: 1000 } },
        boom: {
          run: () => {
            throw new Error('boom');
          },
        },
        slow: {
          run: (_data: unknown, ctx) =>
            new Promise((_resolve, reject) => {
              const timer = setTimeout(() => reject(new Error('never revoked')), 20_000);
              ctx.signal.addEventListener('abort', () => {
                clearTimeout(timer);
                reject(ctx.signal.reason);
              });
            }),
        },
      });
      worker = createWorker({ tasks, prefix: acl.prefix, connection: acl.connectionAs('worker'), env: {} });
      producer = createProducer({ prefix: acl.prefix, connection: acl.connectionAs('producer'), env: {} });
      await acl.resetAclLogs();
      await worker.start();
    });

    after(async () => {
      await producer?.close();
      await worker?.close();
    });

    it('runs a job, a rate-limited job, a beat tick and two revokes with nothing refused (ACL LOG empty)', async () => {
      const { id } = await producer.enqueue('add', { a: 2, b: 3 });
      const record = await producer.waitForResult(id, { timeoutMs: 15_000 });
      expect(record.state).to.equal('SUCCESS');
      expect(record.result).to.equal(5);

      // The rate limiter's counter (P::ratelimit:…) is the worker's.
      const limited = await producer.enqueue('limited', {});
      expect((await producer.waitForResult(limited.id, { timeoutMs: 15_000 })).state).to.equal('SUCCESS');

      // Revoke of a delayed job: the producer's revoke script writes the marker and publishes.
      const delayed = await producer.enqueue('add', { a: 1, b: 1 }, { delay: 60_000 });
      expect((await producer.revoke(delayed.id, 'acl test')).state).to.equal('REVOKED');

      // Revoke of a running job: the worker hears it on the revoke channel and aborts it.
      const slow = await producer.enqueue('slow', {});
      const deadline = Date.now() + 15_000;
      while ((await producer.getResult(slow.id))?.state !== 'STARTED') {
        if (Date.now() > deadline) throw new Error('the slow job never started');
        await sleep(50);
      }
      await producer.revoke(slow.id, 'stop it');
      expect((await producer.waitForResult(slow.id, { timeoutMs: 15_000 })).state).to.equal('REVOKED');

      // The beat, as `scheduler`, reconciles its schedule and its ticks run on the worker.
      const schedulePath = path.join(acl.secretsDir, 'schedule.json');
      await writeFile(schedulePath, JSON.stringify({ schedules: [{ id: 'acl-beat', task: 'add', every: '1s', data: { a: 20, b: 22 } }] }));
      const scheduler = createScheduler({ schedulePath, prefix: acl.prefix, connection: acl.connectionAs('scheduler'), env: {} });
      try {
        await scheduler.start();
        const tickDeadline = Date.now() + 15_000;
        let beatResult: unknown;
        while (beatResult === undefined && Date.now() < tickDeadline) {
          const keys = await acl.admin(acl.backend, '--scan', '--pattern', `${acl.prefix}:result:*`);
          for (const key of keys.split('\n').filter(Boolean)) {
            const raw = await acl.admin(acl.backend, 'HGET', key, 'out');
            if (raw.includes('"result":42')) beatResult = JSON.parse(raw);
          }
          if (beatResult === undefined) await sleep(250);
        }
        expect(beatResult, 'a scheduled tick ran under the scheduler user').to.not.equal(undefined);
        // The beat's keys are the double-colon ones only the scheduler may touch.
        expect(await acl.admin(acl.broker, 'EXISTS', `${acl.prefix}::beat:lease`, `${acl.prefix}::beat:fence`, `${acl.prefix}::beat:schedules`)).to.equal('3');
        expect(await acl.admin(acl.broker, 'EXISTS', `${acl.prefix}:beat:lease`, `${acl.prefix}:beat:fence`)).to.equal('0');
      } finally {
        await scheduler.close();
      }
      // Nothing any of them sent was refused, not even a command whose error is ignored.
      expect(await acl.aclLogs()).to.equal('');
    });

    it('refuses a forged result from the producer, and serves none: the record keeps the worker\'s outcome', async () => {
      const { id } = await producer.enqueue('add', { a: 2, b: 3 });
      expect((await producer.waitForResult(id, { timeoutMs: 15_000 })).result).to.equal(5);
      const record = `${acl.prefix}:result:{${id}}`;
      const forged = JSON.stringify({ result: 'FORGED' });
      await expectRefused('producer', 'backend', 'HSET on a record', ['HSET', record, 'state', 'SUCCESS', 'out', forged]);
      await expectRefused('producer', 'backend', 'SET over a record', ['SET', record, forged]);
      await expectRefused('producer', 'backend', 'DEL of a record', ['DEL', record]);
      // The transition script (loaded, so EVALSHA reaches it) runs as the producer: its HSET is refused.
      const base = JSON.stringify({ task: 'add', queue: 'default', attempt: 1, attempts: 1, enqueuedAt: null, startedAt: null, finishedAt: null, updatedAt: new Date().toISOString() });
      await expectRefused('producer', 'backend', 'the transition script', [
        'EVALSHA', script('transition').sha, 2, record, `${acl.prefix}:revoke:{${id}}`, 86400, `${acl.prefix}:job:`, 'settle', 99, 'SUCCESS', base, forged, '', id,
      ]);
      const after = await producer.getResult(id);
      expect(after?.state).to.equal('SUCCESS');
      expect(after?.result).to.equal(5);
    });

    it('a producer\'s fake wake-up on a job channel (allowed: the revoke script publishes there) ends no wait', async () => {
      const { id } = await producer.enqueue('add', { a: 1, b: 2 }, { delay: 60_000 });
      const other = createProducer({ prefix: acl.prefix, connection: acl.connectionAs('producer'), env: {} });
      try {
        const waiting = other.waitForResult(id, { timeoutMs: 2000 }).then(() => null, (err: unknown) => err);
        await sleep(500);
        const { client } = await clientAs('producer', 'backend');
        expect(await client.publish(`${acl.prefix}:job:${id}`, '{"s":"SUCCESS"}')).to.equal(1);
        expect(await waiting, 'the waiter re-read the record and kept waiting').to.be.instanceOf(ResultTimeoutError);
      } finally {
        await other.close();
        await producer.revoke(id);
      }
    });

    it('taskline-producer inspect (queues, counts, failed, retry, remove, pause, resume), result and revoke work as the producer user', async () => {
      await acl.resetAclLogs();
      const failing = await producer.enqueue('boom', {}, { attempts: 1 });
      expect((await producer.waitForResult(failing.id, { timeoutMs: 15_000 })).state).to.equal('FAILURE');
      const parked = await producer.enqueue('add', { a: 1, b: 1 }, { queue: 'acl-other', delay: 60_000 });
      const run = async (...args: string[]): Promise<string> => {
        const out = await acl.runBin('producer', args, 'producer');
        expect(out.code, `${args.join(' ')}: ${out.stdout}${out.stderr}`).to.equal(0);
        expect(out.stderr, args.join(' ')).to.not.match(/NOPERM|permission/i);
        return out.stdout;
      };
      // Finding 13: no SCAN — the queues come from the registry (P::queues).
      expect((await run('inspect', 'queues')).trim().split('\n')).to.include.members(['default', 'acl-other']);
      const counts = JSON.parse(await run('inspect', 'counts')) as Record<string, Record<string, number>>;
      expect(counts['acl-other']?.['delayed']).to.equal(1);
      expect(counts['default']?.['failed']).to.be.at.least(1);
      expect(await run('inspect', 'failed', 'default')).to.include(failing.id);
      await run('inspect', 'pause', 'acl-other');
      await run('inspect', 'resume', 'acl-other');
      expect(await run('inspect', 'retry', 'default', failing.id)).to.include(failing.id);
      await run('inspect', 'remove', 'default', 'all');
      const { id } = await producer.enqueue('add', { a: 4, b: 4 });
      await producer.waitForResult(id, { timeoutMs: 15_000 });
      expect(await run('result', id)).to.match(/SUCCESS/);
      expect(await run('revoke', parked.id)).to.match(/REVOKED/);
      expect(await acl.aclLogs(), 'nothing the producer CLI sent was refused').to.equal('');
    });
  });

  describe('what each role may not do', () => {
    for (const user of [...APP_USERS, 'metrics', 'loader'] as const) {
      it(`refuses FLUSHALL, CONFIG, KEYS, SCAN, CLIENT LIST, ACL, SHUTDOWN, foreign keys, EVAL, SCRIPT and FUNCTION to "${user}"`, async () => {
        for (const service of ['broker', 'backend'] as const) {
          for (const { label, args } of EVERYONE_FORBIDDEN) await expectRefused(user, service, label, args);
          if (user !== 'loader') await expectRefused(user, service, 'SCRIPT LOAD', ['SCRIPT', 'LOAD', BUSY_LOOP]);
          const { client } = await clientAs(user, service);
          expect(await client.ping()).to.equal('PONG');
        }
      });
    }

    it('keeps the beat\'s lease and fence to the scheduler, the rate-limit counters to workers, the registry to SADD/SMEMBERS', async () => {
      const p = acl.prefix;
      for (const user of ['producer', 'worker', 'metrics', 'loader'] as const) {
        await expectRefused(user, 'broker', 'DEL of the beat fence', ['DEL', `${p}::beat:fence`]);
        await expectRefused(user, 'broker', 'DEL of the beat lease', ['DEL', `${p}::beat:lease`]);
        await expectRefused(user, 'broker', 'SET of the beat lease', ['SET', `${p}::beat:lease`, 'mine']);
        await expectRefused(user, 'broker', 'HSET of the owned schedules', ['HSET', `${p}::beat:schedules`, 'q/beat:x', '{}']);
      }
      for (const user of ['producer', 'scheduler'] as const) {
        await expectRefused(user, 'broker', 'INCR of a rate-limit counter', ['INCR', `${p}::ratelimit:add:1`]);
      }
      for (const user of APP_USERS) await expectRefused(user, 'broker', 'DEL of the queue registry', ['DEL', `${p}::queues`]);
    });

    it('lets only workers write records and only producers write revoke markers; the scheduler has no result-backend keys', async () => {
      const p = acl.prefix;
      const id = '00000000-0000-4000-8000-000000000000';
      const record = `${p}:result:{${id}}`;
      const marker = `${p}:revoke:{${id}}`;
      await expectRefused('worker', 'backend', 'SET of a revoke marker', ['SET', marker, '{}']);
      await expectRefused('worker', 'backend', 'ZADD to the revoked index', ['ZADD', `${p}:revoked`, '1', id]);
      await expectRefused('worker', 'backend', 'PUBLISH of a revoke', ['PUBLISH', `${p}:revoke`, id]);
      await expectRefused('worker', 'backend', 'the revoke script', ['EVALSHA', script('revoke').sha, 2, record, marker, '{}', 60, `${p}:revoke`, `${p}:job:${id}`, id]);
      for (const [label, args] of [
        ['HSET of a record', ['HSET', record, 'state', 'SUCCESS']],
        ['HGETALL of a record', ['HGETALL', record]],
        ['SET of a revoke marker', ['SET', marker, '{}']],
        ['PUBLISH on a job channel', ['PUBLISH', `${p}:job:${id}`, '{"s":"SUCCESS"}']],
        ['the transition script', ['EVALSHA', script('transition').sha, 2, record, marker, 60, `${p}:job:`, 'settle', 1, 'SUCCESS', '{}', '{}', '', id]],
      ] as const) {
        await expectRefused('scheduler', 'backend', label, [...args]);
      }
    });

    it('lets "metrics" count queue entries but never read a job payload or a result', async () => {
      const p = acl.prefix;
      const producer = createProducer({ prefix: p, connection: acl.connectionAs('producer'), env: {} });
      try {
        const { id } = await producer.enqueue('add', { secret: 'payload' }, { delay: 60_000, queue: 'metrics-q' });
        const { client } = await clientAs('metrics', 'broker');
        expect(await client.zcard(`${p}:metrics-q:delayed`)).to.equal(1);
        expect(await client.smembers(`${p}::queues`)).to.include('metrics-q');
        expect(await client.info('server')).to.match(/redis_version/);
        await expectRefused('metrics', 'broker', 'HGETALL of a job (its payload)', ['HGETALL', `${p}:metrics-q:${id}`]);
        await expectRefused('metrics', 'broker', 'HGET of a job\'s data', ['HGET', `${p}:metrics-q:${id}`, 'data']);
        await expectRefused('metrics', 'broker', 'a write', ['SET', `${p}:metrics-q:x`, '1']);
        await expectRefused('metrics', 'backend', 'HGETALL of a record', ['HGETALL', `${p}:result:{${id}}`]);
        await expectRefused('metrics', 'backend', 'GET of a revoke marker', ['GET', `${p}:revoke:{${id}}`]);
        await producer.revoke(id);
      } finally {
        await producer.close();
      }
    });

    it('lets the loader load and check scripts but not run them or touch keys', async () => {
      const p = acl.prefix;
      await expectRefused('loader', 'backend', 'EVALSHA of a loaded script', ['EVALSHA', script('revoke').sha, 2, `${p}:result:{x}`, `${p}:revoke:{x}`, '{}', 60, `${p}:revoke`, `${p}:job:x`, 'x']);
      await expectRefused('loader', 'broker', 'GET of a queue key', ['GET', `${p}:default:id`]);
      const { client } = await clientAs('loader', 'backend');
      expect(await client.call('SCRIPT', 'EXISTS', script('revoke').sha)).to.deep.equal([1]);
    });

    it('turns the default user off with no password: nobody can connect or log in as it', async () => {
      const options = acl.connectionAs('producer');
      const connections = createConnections({
        options: { ...options, broker: { ...options.broker, username: undefined, passwordFile: undefined }, backend: { ...options.backend, username: undefined, passwordFile: undefined }, retries: 0 },
        role: 'cli',
      });
      open.push(connections);
      const error = await connections.connect().then(() => null, (err: unknown) => err as Error & { code?: string });
      expect(error?.code).to.be.oneOf(['AUTH_REQUIRED', 'AUTH_FAILED']);
      // It holds every right (AOF replay runs as it), so logging in as it must be impossible: no
      // password at all, and no nopass.
      for (const server of [acl.broker, acl.backend]) {
        for (const login of [[], ['--user', 'default', '--pass', ''], ['--user', 'default', '--pass', 'guess']]) {
          const reply = await server.cli(...login, 'GET', 'x').catch((err: unknown) => (err as Error).message);
          expect(reply, `login ${JSON.stringify(login)}`).to.match(/NOAUTH|WRONGPASS|invalid username-password/);
        }
      }
      expect(await acl.admin(acl.broker, 'ACL', 'GETUSER', 'default')).to.match(/^flags\noff\n/).and.not.match(/nopass/);
    });
  });

  describe('ops/acl/generate-acl.sh', () => {
    it('writes passwords only as SHA-256 hashes, never prints them, and gives app users EVALSHA without EVAL or SCRIPT', async () => {
      for (const service of ['broker', 'backend']) {
        const out = await runScript('ops/acl/generate-acl.sh', ['--service', service, '--prefix', acl.prefix, '--redis-version', '7.0', '--secrets-dir', acl.secretsDir]);
        expect(out.code, out.stderr).to.equal(0);
        for (const user of [...APP_USERS, 'metrics', 'loader', 'admin']) {
          const password = await readSecret(acl.secretsDir, `redis_${user}_password`);
          expect(out.stdout.includes(password) || out.stderr.includes(password), `${user}'s password printed`).to.equal(false);
          const line = out.stdout.split('\n').find(l => l.startsWith(`user ${user} `)) ?? '';
          expect(line, `${service} ${user}`).to.include(`#${createHash('sha256').update(password).digest('hex')}`);
          if (user !== 'admin') expect(line, `${service} ${user}`).to.not.match(/[+](eval|eval_ro|function|fcall|@scripting|@all)\b/);
        }
        expect(out.stdout).to.match(/^user default off /m);
      }
    });

    it('explains a missing password file and a wrong service clearly', async () => {
      const missing = await runScript('ops/acl/generate-acl.sh', ['--service', 'broker', '--secrets-dir', path.join(acl.secretsDir, 'nope')]);
      expect(missing.code).to.not.equal(0);
      expect(missing.stderr).to.match(/cannot read .*redis_producer_password; create it \(or pass --init-secrets\)/);
      const wrong = await runScript('ops/acl/generate-acl.sh', ['--service', 'cache', '--secrets-dir', acl.secretsDir]);
      expect(wrong.stderr).to.match(/--service must be broker or backend, got 'cache'/);
    });
  });
});
