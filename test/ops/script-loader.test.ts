import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { createProducer, type Producer } from '@taskline/producer';
import { resolveConnectionOptions } from '@taskline/shared';
import { createWorker, defineTasks, type TasklineWorker } from '@taskline/worker';
import { runningRedisCount } from '../harness/index.js';
import { AclServers, type LoaderProcess } from './acl-fixture.js';
import { readSecret } from './ops-helpers.js';

// REDIS_SCRIPTS=preloaded: app users run Lua only by EVALSHA, the loader user loads the scripts
// (`taskline-<bin> scripts load [--watch]`). Scripts live in Redis' memory only, so this is about
// what happens when they are gone: a restart (AOF on), a SCRIPT FLUSH, a loader that never ran.

const sleep = (ms: number): Promise<void> => new Promise(r => setTimeout(r, ms));

describe('ops: preloaded scripts and the loader', function () {
  this.timeout(120_000);
  let acl: AclServers;
  let worker: TasklineWorker | null = null;
  const producers: Producer[] = [];
  const tasks = defineTasks({ add: { run: (data: { a: number; b: number }) => data.a + data.b } });

  const producerAs = (extra: Parameters<AclServers['connectionAs']>[1] = {}): Producer => {
    const producer = createProducer({ prefix: acl.prefix, connection: acl.connectionAs('producer', extra), env: {} });
    producers.push(producer);
    return producer;
  };
  const flushScripts = async (): Promise<void> => {
    for (const server of [acl.broker, acl.backend]) expect(await acl.admin(server, 'SCRIPT', 'FLUSH')).to.equal('OK');
  };

  before(async () => {
    acl = await AclServers.start({ appendonly: true });
  });

  afterEach(async () => {
    for (const p of producers.splice(0)) await p.close();
    await worker?.close();
    worker = null;
  });

  after(async () => {
    await acl?.stop();
    expect(runningRedisCount()).to.equal(0);
  });

  it('scripts check exits 1 naming what is missing, load fills it in, check then exits 0; other users cannot load', async () => {
    await flushScripts();
    const before = await acl.runBin('producer', ['scripts', 'check'], 'loader');
    expect(before.code).to.equal(1);
    expect(before.stdout).to.match(/^MISSING broker 127\.0\.0\.1:\d+: (\d+) of \1 scripts not loaded \(bullmq:\w+, .*\); run `scripts load` as the loader user$/m);
    expect(before.stdout).to.match(/^MISSING result backend 127\.0\.0\.1:\d+: 2 of 2 scripts not loaded \(transition, revoke\)/m);

    const denied = await acl.runBin('scheduler', ['scripts', 'load'], 'producer');
    expect(denied.code).to.equal(1);
    expect(denied.stdout).to.match(/^FAIL Cannot use the broker at 127\.0\.0\.1:\d+: the Redis ACL user lacks a permission taskline needs/m);
    const password = await readSecret(acl.secretsDir, 'redis_producer_password');
    expect(denied.stdout + denied.stderr).to.not.include(password);

    const load = await acl.runBin('scheduler', ['scripts', 'load'], 'loader');
    expect(load.code, load.stdout + load.stderr).to.equal(0);
    const again = await acl.runBin('worker', ['scripts', 'load'], 'loader');
    expect(again.stdout, 'a second load finds everything in place').to.match(/^ok {3}broker 127\.0\.0\.1:\d+: \d+ scripts in place, 0 loaded now$/m);
    const after = await acl.runBin('worker', ['scripts', 'check'], 'loader');
    expect(after.code, after.stdout).to.equal(0);
    expect(after.stdout).to.match(/^ok {3}broker 127\.0\.0\.1:\d+: all \d+ scripts loaded$/m);
    expect(after.stdout).to.match(/^ok {3}result backend 127\.0\.0\.1:\d+: all 2 scripts loaded$/m);
  });

  it("every bin's catalog holds the beat's lease scripts, which @taskline/scheduler contributes", async () => {
    for (const bin of ['worker', 'producer', 'scheduler'] as const) {
      const list = await acl.runBin(bin, ['scripts', 'list'], 'loader');
      expect(list.code, list.stderr).to.equal(0);
      for (const name of ['beat:acquire', 'beat:renew', 'beat:check', 'beat:release', 'beat:fencedHashWrite']) {
        expect(list.stdout, `${bin} lists ${name}`).to.match(new RegExp(`^broker [0-9a-f]{40} ${name}$`, 'm'));
      }
      expect(list.stdout).to.match(/^backend [0-9a-f]{40} transition$/m);
    }
  });

  it('a process whose scripts are missing waits for the loader, then carries on; past REDIS_SCRIPTS_WAIT_MS it fails naming the fix', async () => {
    await flushScripts();
    const impatient = producerAs({ scriptWaitMs: 300 });
    const error = await impatient.enqueue('add', { a: 1, b: 1 }).then(() => null, (err: unknown) => err as Error & { code?: string });
    expect(error?.code).to.equal('SCRIPTS_NOT_LOADED');
    expect(error?.message).to.match(/^Cannot use the broker at 127\.0\.0\.1:\d+: Redis has not loaded "\w+:\d+\.\d+\.\d+" \(sha [0-9a-f]{12}\) within 300 ms \(it restarted, or the script loader has not run\); run `taskline-worker scripts load --watch` as the loader user/);

    // A worker and a producer that start while the scripts are missing recover once they are back.
    worker = createWorker({ tasks, prefix: acl.prefix, connection: acl.connectionAs('worker', { scriptWaitMs: 20_000 }), env: {} });
    await worker.start();
    const patient = producerAs({ scriptWaitMs: 20_000 });
    const enqueued = patient.enqueue('add', { a: 2, b: 2 });
    await sleep(1000);
    const load = await acl.runBin('worker', ['scripts', 'load'], 'loader');
    expect(load.code, load.stdout).to.equal(0);
    const { id } = await enqueued;
    const record = await patient.waitForResult(id, { timeoutMs: 20_000 });
    expect(record.state).to.equal('SUCCESS');
    expect(record.result).to.equal(4);
  });

  it('with REDIS_SCRIPTS=eval under users without EVAL, a missing script fails with the sentence that names REDIS_SCRIPTS=preloaded', async () => {
    await flushScripts();
    const producer = producerAs({ scriptLoading: 'eval' });
    const error = await producer.enqueue('add', { a: 1, b: 1 }).then(() => null, (err: unknown) => err as Error & { code?: string });
    expect(error?.code).to.equal('AUTH_NO_PERMISSION');
    expect(error?.message).to.match(/its Redis user may not run EVAL, so taskline cannot load the script "\w+:\d+\.\d+\.\d+" itself; set REDIS_SCRIPTS=preloaded and load the scripts with `taskline-worker scripts load --watch` as the loader user/);
    const load = await acl.runBin('worker', ['scripts', 'load'], 'loader');
    expect(load.code).to.equal(0);
    // Loaded, even eval mode never needs EVAL: every script goes out as EVALSHA first.
    await acl.resetAclLogs();
    expect((await producer.enqueue('add', { a: 1, b: 1 }, { delay: 60_000 })).id).to.be.a('string');
    expect(await acl.aclLogs()).to.equal('');
  });

  it('refuses an unknown REDIS_SCRIPTS with one sentence naming the choices', () => {
    expect(() => resolveConnectionOptions({}, { REDIS_SCRIPTS: 'sometimes' })).to.throw(
      'REDIS_SCRIPTS must be "eval" (the Redis users may run EVAL) or "preloaded" (scripts loaded by `taskline-<bin> scripts load` as the loader user), got "sometimes"; fix or unset it.',
    );
    expect(resolveConnectionOptions({}, { REDIS_SCRIPTS: 'preloaded', REDIS_SCRIPTS_WAIT_MS: '2500' })).to.deep.include({ scriptLoading: 'preloaded', scriptWaitMs: 2500 });
    expect(resolveConnectionOptions({}, {})).to.deep.include({ scriptLoading: 'eval', scriptWaitMs: 10_000 });
  });

  describe('a Redis restart (AOF on) with `scripts load --watch` beside the deployment', () => {
    let loader: LoaderProcess | null = null;
    afterEach(async () => {
      if (loader) expect(await loader.stop(), 'the watch exits 0 on SIGTERM').to.equal(0);
      loader = null;
    });

    it('waits for a Redis that is not up yet (a sidecar starting first), and gives up at once on a wrong password', async () => {
      await flushScripts();
      acl.broker.kill('SIGKILL');
      const started = Date.now();
      loader = acl.startLoaderWatch(1000, ['--metrics-port', '0']);
      await loader.waitFor(line => line.fields['code'] === 'CONNECTION_REFUSED', started);
      await sleep(1500);
      await acl.broker.restart();
      const listening = await loader.waitFor(line => line.message === 'ops server listening', started, 30_000);
      const readyz = async (): Promise<{ status: number; body: Record<string, { ok: boolean; error: string | null }> }> => {
        const res = await fetch(`http://127.0.0.1:${String(listening.fields['port'])}/readyz`);
        return { status: res.status, body: (await res.json()) as Record<string, { ok: boolean; error: string | null }> };
      };
      await loader.waitFor(line => line.message === 'loaded scripts' && line.fields['service'] === 'broker', started, 30_000);
      await loader.waitFor(line => line.message === 'loaded scripts' && line.fields['service'] === 'backend', started);
      expect((await readyz()).status, '/readyz once every script is in place').to.equal(200);
      // The broker gone again: the sidecar turns unready (its next round fails), and ready once it is back.
      acl.broker.kill('SIGKILL');
      const down = Date.now();
      let seen = await readyz();
      while (seen.status === 200 && Date.now() - down < 10_000) {
        await sleep(100);
        seen = await readyz();
      }
      expect(seen.status, '/readyz while the broker is down').to.equal(503);
      expect(seen.body['broker']?.ok).to.equal(false);
      await acl.broker.restart();
      await loader.waitFor(line => line.message === 'loaded scripts' && line.fields['service'] === 'broker', down, 30_000);
      expect((await readyz()).status).to.equal(200);

      const wrong = path.join(acl.secretsDir, 'wrong_password');
      await writeFile(wrong, 'not-the-password\n', { mode: 0o600 });
      const refused = await acl.runBin('worker', ['scripts', 'load', '--watch'], 'loader', { REDIS_PASSWORD_FILE: wrong, LOG_LEVEL: 'info' });
      expect(refused.code).to.equal(1);
      expect(refused.stdout + refused.stderr).to.match(/Redis rejected the user name or password; check REDIS_USERNAME and REDIS_PASSWORD/);
      expect(refused.stdout + refused.stderr).to.not.include('not-the-password');
    });

    it('reloads every script after the restart, and jobs enqueued afterwards complete under the restricted users', async () => {
      await flushScripts();
      const loaded = (service: string) => (line: { message: string; fields: Record<string, unknown> }) => line.message === 'loaded scripts' && line.fields['service'] === service;
      const started = Date.now();
      loader = acl.startLoaderWatch(1000);
      await loader.waitFor(loaded('broker'), started);
      await loader.waitFor(loaded('backend'), started);

      worker = createWorker({ tasks, prefix: acl.prefix, connection: acl.connectionAs('worker'), env: {} });
      await worker.start();
      const producer = producerAs();
      const first = await producer.enqueue('add', { a: 1, b: 2 });
      expect((await producer.waitForResult(first.id, { timeoutMs: 15_000 })).result).to.equal(3);
      // A job waiting across the restart: AOF keeps it, and it runs once the scripts are back.
      const across = await producer.enqueue('add', { a: 10, b: 10 }, { delay: 1500 });
      await acl.resetAclLogs();

      // Timed from the moment each restart begins (SIGTERM, AOF flushed, process started again).
      const began = Date.now();
      const up = { broker: 0, backend: 0 };
      await Promise.all((['broker', 'backend'] as const).map(service => acl[service].restart().then(() => (up[service] = Date.now() - began))));
      // Nobody waits for the loader: the producer retries (it fails fast while its connection is
      // down, by design) and the worker recovers on its own once the scripts are back.
      const flowing = (async () => {
        for (;;) {
          const id = await producer.enqueue('add', { a: 20, b: 22 }).then(r => r.id, () => null);
          if (id !== null) return { record: await producer.waitForResult(id, { timeoutMs: 30_000 }), at: Date.now() };
          if (Date.now() - began > 30_000) throw new Error('no enqueue was accepted within 30 s of the restart');
          await sleep(100);
        }
      })();
      const [brokerBack, backendBack, after] = await Promise.all([loader.waitFor(loaded('broker'), began), loader.waitFor(loaded('backend'), began), flowing]);
      expect(after.record.state).to.equal('SUCCESS');
      expect(after.record.result).to.equal(42);
      // What AOF kept: Redis 7 logs a script's writes as MULTI/EXEC, which it replays as the default
      // user — the ACL must let that user replay them, or a restart silently drops them.
      expect((await producer.getResult(first.id))?.result, 'a record written before the restart (result backend AOF)').to.equal(3);
      expect((await producer.waitForResult(across.id, { timeoutMs: 30_000 })).result, 'a job waiting across the restart (broker AOF)').to.equal(20);
      const check = await acl.runBin('worker', ['scripts', 'check'], 'loader');
      expect(check.code, check.stdout).to.equal(0);
      expect(await acl.aclLogs(), 'nothing was refused, not even while the scripts were missing').to.equal('');
      console.log(
        `      from restart: accepting connections broker ${up.broker} ms, result backend ${up.backend} ms; scripts reloaded broker ` +
          `${brokerBack.at - began} ms, result backend ${backendBack.at - began} ms; first job enqueued after it done ${after.at - began} ms`,
      );
    });
  });
});
