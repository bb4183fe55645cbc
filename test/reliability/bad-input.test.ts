// Bad input never crashes a process or loses other jobs, and secrets never leak: malformed and
// oversized HTTP requests, non-JSON payloads, unknown tasks, handlers that throw non-Errors or
// never settle, poison jobs, all mixed with ordinary jobs on one worker process.
import { expect } from 'chai';
import { runningRedisCount } from '../harness/index.js';
import {
  account,
  cleanup,
  enqueueWork,
  linesWithSecrets,
  producerFor,
  report,
  spawnApi,
  spawnWorker,
  startCluster,
  API_TOKEN,
  REDIS_PASSWORD,
  type ApiProcess,
  type Cluster,
  type WorkerProcess,
} from './support.js';
import type { Producer } from '@taskline/producer';

describe('reliability under bad input', function () {
  this.timeout(120_000);
  let cluster: Cluster;
  let worker: WorkerProcess;
  let api: ApiProcess;
  let producer: Producer;
  /** Every HTTP response body and error message seen, for the secret scan. */
  const seen: string[] = [];

  before(async function () {
    cluster = await startCluster();
    worker = spawnWorker(cluster, { TASKLINE_CONCURRENCY: '4' });
    [api] = await Promise.all([spawnApi(cluster), worker.ready()]);
    producer = producerFor(cluster);
  });
  after(async function () {
    worker.child.kill('SIGTERM');
    api.child.kill('SIGTERM');
    expect(await worker.exited, 'worker exit code after SIGTERM').to.equal(0);
    await api.exited;
    expect(await cleanup()).to.equal(0);
    expect(runningRedisCount()).to.equal(0);
  });

  async function post(path: string, body: string | Buffer, headers: Record<string, string> = {}): Promise<{ status: number; body: { error?: string; code?: string } & Record<string, unknown> }> {
    const res = await fetch(`${api.url}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json', ...headers },
      body,
    });
    const text = await res.text();
    seen.push(text);
    return { status: res.status, body: JSON.parse(text) as { error?: string; code?: string } };
  }

  it('rejects malformed, non-JSON, incomplete, oversized and unauthorised HTTP requests with a JSON error, writing nothing to Redis', async function () {
    const keysBefore = await cluster.broker.cli('DBSIZE');
    const cases: Array<[string, () => ReturnType<typeof post>, number]> = [
      ['malformed JSON', () => post('/api/v1/jobs', '{"task": "work", "data": '), 400],
      ['not JSON at all', () => post('/api/v1/jobs', 'hello, world'), 400],
      ['not sent as JSON (a cross-site form or text/plain post)', () => post('/api/v1/jobs', 'hello, world', { 'content-type': 'text/plain' }), 415],
      ['a JSON string instead of an object', () => post('/api/v1/jobs', '"work"'), 400],
      ['no task name', () => post('/api/v1/jobs', JSON.stringify({ data: { ms: 1 } })), 400],
      ['a task name that is not a string', () => post('/api/v1/jobs', JSON.stringify({ task: 42 })), 400],
      ['an empty bulk', () => post('/api/v1/jobs/bulk', JSON.stringify({ jobs: [] })), 400],
      ['a 2 MiB body', () => post('/api/v1/jobs', JSON.stringify({ task: 'work', data: { pad: 'x'.repeat(2 * 1024 * 1024) } })), 413],
      ['a wrong token', () => post('/api/v1/jobs', JSON.stringify({ task: 'work' }), { authorization: 'Bearer not-the-token' }), 401],
      ['no token', () => post('/api/v1/jobs', JSON.stringify({ task: 'work' }), { authorization: '' }), 401],
    ];
    for (const [what, send, status] of cases) {
      const res = await send();
      expect(res.status, `${what}: ${JSON.stringify(res.body)}`).to.equal(status);
      expect(res.body.error, `${what}: error message`).to.be.a('string').with.length.above(10);
      expect(res.body.code, `${what}: error code`).to.be.a('string');
    }
    expect(await cluster.broker.cli('DBSIZE'), 'broker keys after bad requests').to.equal(keysBefore);
    expect(api.child.exitCode, 'API process still running').to.equal(null);
    const ok = await post('/api/v1/jobs', JSON.stringify({ task: 'work', data: { ms: 1 } }));
    expect(ok.status).to.equal(202);
    const record = await producer.waitForResult(ok.body['id'] as string, { timeoutMs: 20_000 });
    expect(record.state).to.equal('SUCCESS');
  });

  it('refuses payloads that are not JSON-serialisable or too large, with a clear error', async function () {
    const circular: Record<string, unknown> = {};
    circular['self'] = circular;
    const bad: Array<[string, unknown, string]> = [
      ['a BigInt', { n: 10n }, 'ValidationError'],
      ['a circular object', circular, 'ValidationError'],
      ['a function', { f: () => 1 }, 'ValidationError'],
      ['600 KiB', { pad: 'x'.repeat(600 * 1024) }, 'PayloadTooLargeError'],
    ];
    for (const [what, data, name] of bad) {
      const error = await producer.enqueue('work', data).then(
        () => null,
        (err: unknown) => err as Error,
      );
      expect(error, `${what} was accepted`).to.be.instanceOf(Error);
      seen.push(error?.message ?? '');
      expect(error?.name, `${what}: ${error?.message}`).to.equal(name);
      expect(error?.message, what).to.match(/payload|JSON|serial|bytes|KiB/i);
    }
  });

  it('unknown tasks, non-Error throws, never-settling handlers and poison jobs end FAILURE; ordinary jobs beside them all succeed', async function () {
    const enqueue = async (task: string, data: unknown = {}): Promise<string> => (await producer.enqueue(task, data)).id;
    const started = Date.now();
    const odd = {
      unknown: await enqueue('no-such-task'),
      throwString: await enqueue('throwString'),
      throwObject: await enqueue('throwObject'),
      neverSettles: await enqueue('neverSettles'),
      poison: await enqueue('poison'),
      leakSecret: await enqueue('leakSecret', { secret: REDIS_PASSWORD }),
    };
    const ordinary = await enqueueWork(producer, 40, { ms: 20 });
    const outcomes: Record<string, { state: string; attempt: number; type: string | undefined; message: string | undefined }> = {};
    for (const [name, id] of Object.entries(odd)) {
      const record = await producer.waitForResult(id, { timeoutMs: 30_000 });
      outcomes[name] = { state: record.state, attempt: record.attempt, type: record.error?.type, message: record.error?.message };
      seen.push(JSON.stringify(record));
    }
    const ordinaryResult = await account(cluster, producer, ordinary, 30_000);
    report({ case: 'bad input and poison jobs beside ordinary ones', ...ordinaryResult, oddJobs: outcomes, seconds: (Date.now() - started) / 1000 });
    for (const [name, outcome] of Object.entries(outcomes)) expect(outcome.state, `${name}: ${JSON.stringify(outcome)}`).to.equal('FAILURE');
    expect(outcomes['unknown']?.message).to.match(/no-such-task/);
    expect(outcomes['unknown']?.attempt, 'an unknown task is not retried').to.equal(1);
    // Thrown non-Errors are summarised, never stored with their values.
    expect(outcomes['throwString']?.message).to.include('a string of 28 characters').and.not.include('plain string');
    expect(outcomes['throwObject']?.message).to.include('an object with key reason').and.not.include('not an Error');
    expect(outcomes['neverSettles']?.type).to.equal('TimeLimitError');
    expect(outcomes['poison']?.attempt, 'poison job ran all its attempts').to.equal(3);
    expect(outcomes['leakSecret']?.message).to.not.include(REDIS_PASSWORD);
    expect(ordinaryResult.lost, ordinaryResult.lostSample.join('; ')).to.equal(0);
    expect(worker.child.exitCode, 'worker still running').to.equal(null);
    expect(await worker.readyz()).to.equal(200);
  });

  it('never shows the Redis password or the API token in any log line, error or HTTP response', function () {
    expect(seen.length).to.be.above(10);
    expect(linesWithSecrets([...worker.output, ...api.output]), 'log lines with a secret').to.deep.equal([]);
    expect(linesWithSecrets(seen.map(s => `${s}\n`)), 'responses and errors with a secret').to.deep.equal([]);
  });
});
