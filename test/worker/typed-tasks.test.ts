// Typed tasks at run time (issue 18, item 2): Standard Schema validation at enqueue, in the
// worker and over HTTP; a producer told its tasks refuses unknown ones; a tasks module that lives
// outside any install tree still imports @taskline/worker. Real TLS Redis; zod as the schema library.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { z } from 'zod';
import { createProducer, startApiServer, ValidationError, type ApiServer } from '@taskline/producer';
import { createSilentLogger } from '@taskline/shared';
import { defineTasks, loadTaskModule } from '@taskline/worker';
import { runningRedisCount } from '../harness/index.js';
import { failure } from '../shared/helpers.js';
import { client, closeAll, startPair, startWorker, uniquePrefix, type RedisPair } from './helpers.js';

const runs: unknown[] = [];
const tasks = defineTasks({
  // The schema coerces: the handler gets its output (a number), the caller may send a string.
  resize: {
    schema: z.object({ url: z.string().url(), width: z.coerce.number().int().positive() }),
    run: (data: { url: string; width: number }) => {
      runs.push(data);
      return { width: data.width * 2 };
    },
    attempts: 3,
  },
  plain: { run: (data: { n: number }) => data.n + 1 },
});

describe('typed tasks: schemas at enqueue, in the worker and over HTTP; unknown tasks refused', function () {
  this.timeout(60_000);
  let redis: RedisPair;
  let prefix: string;
  let server: ApiServer | null = null;

  before(async () => {
    redis = await startPair();
  });
  after(async () => {
    await redis.broker.stop();
    await redis.backend.stop();
    expect(runningRedisCount()).to.equal(0);
  });
  beforeEach(() => {
    prefix = uniquePrefix();
    runs.length = 0;
  });
  afterEach(async () => {
    await server?.stop();
    server = null;
    expect(await closeAll(), 'Redis connections left open').to.equal(0);
  });

  const typedProducer = (options: { routes?: Record<string, string>; env?: Record<string, string> } = {}) =>
    createProducer({ tasks, prefix, env: { ...redis.env, REDIS_HEALTH_CHECK_INTERVAL: '0', ...options.env }, ...(options.routes ? { routes: options.routes } : {}) });

  it('the worker fails data that breaks the schema at once (INVALID_DATA naming the field, no retry) and hands the schema output to the handler', async () => {
    await startWorker({ tasks, env: redis.env, prefix });
    // An untyped producer knows no schemas: only the worker can catch this.
    const caller = client(redis.env, prefix);
    const bad = await caller.enqueue('resize', { url: 'https://example.com/a.png', width: 'wide' });
    const failed = await caller.waitFor(bad);
    expect(failed.state).to.equal('FAILURE');
    expect(failed.attempt, 'attempts: 3, yet no retry').to.equal(1);
    expect(failed.error?.type).to.equal('InvalidJobDataError');
    expect(failed.error?.message).to.match(/^Task "resize": data\.width: .*expected number/i);
    const good = await caller.enqueue('resize', { url: 'https://example.com/a.png', width: '40' });
    const done = await caller.waitFor(good);
    expect(done.state).to.equal('SUCCESS');
    expect(done.result).to.deep.equal({ width: 80 });
    expect(runs).to.deep.equal([{ url: 'https://example.com/a.png', width: 40 }]);
  });

  it('a producer given the tasks validates data at enqueue, refuses unknown tasks unless a route names them, and types the result', async () => {
    const producer = typedProducer({ routes: { 'reports.*': 'reports' } });
    try {
      const { error } = await failure(() => producer.enqueue('resize', { url: 'not a url', width: 3 }));
      expect(error).to.be.instanceOf(ValidationError);
      expect(error).to.include({ code: 'INVALID_DATA', field: 'data.url' });
      const bulk = await failure(() => producer.enqueueBulk([{ task: 'plain', data: { n: 1 } }, { task: 'resize', data: { url: 'https://example.com/', width: -1 } }]));
      expect(bulk.error).to.include({ code: 'INVALID_DATA', field: 'jobs[1].data.width' });
      // @ts-expect-error the name is not one of the tasks: refused at run time too
      const unknown = await failure(() => producer.enqueue('resise', { url: 'https://example.com/', width: 1 }));
      expect(unknown.error).to.include({ code: 'UNKNOWN_TASK', field: 'task' });
      expect(unknown.error.message).to.include('resize, plain').and.include('TASKLINE_TASKS');
      expect((await producer.inspect.counts(['default']))['default']).to.include({ waiting: 0 });
      // A task a route sends elsewhere is another deployment's: the producer lets it through.
      const untypedView = producer as unknown as { enqueue(task: string, data: unknown): Promise<{ id: string }> };
      expect((await untypedView.enqueue('reports.daily', {})).id).to.be.a('string');
      await startWorker({ tasks, env: redis.env, prefix });
      const job = await producer.enqueue('plain', { n: 41 });
      const record = await producer.waitForResult(job.id, { timeoutMs: 15_000 });
      const answer: number | undefined = record.result;
      expect(answer).to.equal(42);
    } finally {
      await producer.close();
    }
  });

  it('TASKLINE_TASKS (names) makes the producer refuse other tasks; a bad name in it is a clear error', async () => {
    const producer = createProducer({ prefix, env: { ...redis.env, REDIS_HEALTH_CHECK_INTERVAL: '0', TASKLINE_TASKS: 'plain, resize' } });
    try {
      expect(producer.options.knownTasks && [...producer.options.knownTasks.keys()]).to.deep.equal(['plain', 'resize']);
      const { error } = await failure(() => producer.enqueue('other', {}));
      expect(error).to.include({ code: 'UNKNOWN_TASK' });
    } finally {
      await producer.close();
    }
    const bad = await failure(async () => createProducer({ env: { TASKLINE_TASKS: 'ok,not ok' } }));
    expect(bad.error).to.include({ code: 'INVALID_OPTION', field: 'TASKLINE_TASKS' });
  });

  it('over HTTP: 400 INVALID_DATA naming the field, 400 UNKNOWN_TASK naming the fix, 202 for good data', async () => {
    const producer = typedProducer();
    server = await startApiServer({ producer, port: 0, host: '127.0.0.1', token: null, logger: createSilentLogger(), env: {} });
    const post = async (body: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
      const res = await fetch(`http://127.0.0.1:${server?.port}/api/v1/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };
    try {
      const invalid = await post({ task: 'resize', data: { url: 'https://example.com/', width: 'x' } });
      expect(invalid.status).to.equal(400);
      expect(invalid.body).to.include({ code: 'INVALID_DATA', field: 'data.width' });
      expect(invalid.body['error']).to.match(/^Task "resize": data\.width: /);
      const unknown = await post({ task: 'send-emial', data: {} });
      expect(unknown.status).to.equal(400);
      expect(unknown.body).to.include({ code: 'UNKNOWN_TASK' });
      expect(unknown.body['error']).to.include('send-emial').and.include("the producer's tasks");
      const good = await post({ task: 'resize', data: { url: 'https://example.com/', width: 5 } });
      expect(good.status).to.equal(202);
    } finally {
      await server.stop();
      server = null;
      await producer.close();
    }
  });

  it('a tasks module outside any install tree imports @taskline/worker from the running worker (ESM, and .ts in a CommonJS package)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'taskline-outside-'));
    try {
      writeFileSync(path.join(dir, 'tasks.mjs'), "import { defineTasks } from '@taskline/worker';\nexport default defineTasks({ outside: { run: d => d.n * 3 } });\n");
      mkdirp(path.join(dir, 'cjs'), '{"type": "commonjs"}');
      writeFileSync(path.join(dir, 'cjs', 'tasks.ts'), "import { defineTasks } from '@taskline/worker';\nexport const tasks = defineTasks({ 'outside-ts': { run: (d: { n: number }) => d.n * 4 } });\n");
      const esm = await loadTaskModule(path.join(dir, 'tasks.mjs'));
      const ts = await loadTaskModule(path.join(dir, 'cjs', 'tasks.ts'));
      expect([...esm.byName.keys(), ...ts.byName.keys()]).to.deep.equal(['outside', 'outside-ts']);
      await startWorker({ tasks: esm, env: redis.env, prefix });
      const caller = client(redis.env, prefix);
      const record = await caller.waitFor(await caller.enqueue('outside', { n: 5 }));
      expect(record).to.include({ state: 'SUCCESS', result: 15 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

function mkdirp(dir: string, packageJson: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'package.json'), packageJson);
}
