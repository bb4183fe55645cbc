import { expect } from 'chai';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SpanKind, SpanStatusCode, context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { startApiServer, type ApiServer } from '@taskline/producer';
import { createScheduler } from '@taskline/scheduler';
import { resolveConnectionOptions } from '@taskline/shared';
import { defineTasks, type TaskSet } from '@taskline/worker';
import { runningRedisCount } from '../harness/index.js';
import { captureLogs } from '../shared/helpers.js';
import { client, closeAll, startPair, startWorker, uniquePrefix, until, type RedisPair } from './helpers.js';

/** What a user's SDK setup does (e.g. @opentelemetry/sdk-node): a provider, a context manager, W3C propagation. */
function registerSdk(exporter: InMemorySpanExporter): () => void {
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const contextManager = new AsyncLocalStorageContextManager().enable();
  expect(trace.setGlobalTracerProvider(provider)).to.equal(true);
  context.setGlobalContextManager(contextManager);
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  return () => {
    trace.disable();
    context.disable();
    propagation.disable();
  };
}

function post(port: number, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: 'POST', path, headers: { 'content-type': 'application/json', ...headers }, agent: false }, res => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> }));
    });
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';

describe('traces: one trace from enqueue to the handler (OpenTelemetry, in-memory exporter)', function () {
  this.timeout(30_000);
  let redis: RedisPair;
  let prefix: string;
  let exporter: InMemorySpanExporter;
  let unregister: () => void;
  let api: ApiServer | null = null;
  const workerLogs = captureLogs('worker');

  const tasks: TaskSet = defineTasks({
    add: {
      run: (data: { a: number; b: number }, ctx) => {
        ctx.logger.info('adding', { a: data.a });
        return data.a + data.b;
      },
    },
    boom: { run: () => Promise.reject(new Error('boom: the handler failed')), attempts: 2, backoff: { type: 'fixed', delayMs: 10 } },
  });

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
    exporter = new InMemorySpanExporter();
    unregister = registerSdk(exporter);
  });
  afterEach(async () => {
    await api?.stop();
    api = null;
    expect(await closeAll(), 'Redis connections left open').to.equal(0);
    unregister();
  });

  const spans = (name: string): ReadableSpan[] => exporter.getFinishedSpans().filter(s => s.name === name);
  const one = (name: string): ReadableSpan => {
    const found = spans(name);
    expect(found, `spans named "${name}"`).to.have.length(1);
    return found[0]!;
  };

  it('POST /api/v1/jobs → enqueue → handler: one trace, each span the child of the one before, the handler\'s log line carrying its ids', async () => {
    await startWorker({ tasks, env: redis.env, prefix, logger: workerLogs.logger });
    const producer = client(redis.env, prefix);
    api = await startApiServer({ producer: producer.producer, port: 0, host: '127.0.0.1', token: null, logger: captureLogs('api').logger, env: {} });
    const created = await post(api.port, '/api/v1/jobs', { task: 'add', data: { a: 2, b: 3 } }, { traceparent: `00-${TRACE_ID}-${CALLER_SPAN}-01` });
    expect(created.status).to.equal(202);
    const id = created.body['id'] as string;
    expect((await producer.waitFor(id)).result).to.equal(5);
    await until(() => spans('taskline.process add').length === 1, 5000, 'the worker span');

    const server = one('POST /api/v1/jobs');
    const enqueue = one('taskline.enqueue add');
    const process = one('taskline.process add');
    for (const span of [server, enqueue, process]) expect(span.spanContext().traceId, span.name).to.equal(TRACE_ID);
    expect(server.kind).to.equal(SpanKind.SERVER);
    expect(server.parentSpanContext?.spanId, 'the caller\'s traceparent is the server span\'s parent').to.equal(CALLER_SPAN);
    expect(server.attributes['http.response.status_code']).to.equal(202);
    expect(enqueue.kind).to.equal(SpanKind.PRODUCER);
    expect(enqueue.parentSpanContext?.spanId).to.equal(server.spanContext().spanId);
    expect(enqueue.attributes).to.include({ 'messaging.system': 'taskline', 'messaging.destination.name': 'default', 'messaging.message.id': id, 'taskline.task': 'add' });
    expect(process.kind).to.equal(SpanKind.CONSUMER);
    expect(process.parentSpanContext?.spanId, 'the worker span is the child of the enqueue span carried in the job').to.equal(enqueue.spanContext().spanId);
    expect(process.attributes).to.include({ 'messaging.message.id': id, 'taskline.task': 'add', 'taskline.attempt': 1 });
    expect(process.status.code).to.equal(SpanStatusCode.UNSET);

    const line = workerLogs.lines.map(l => JSON.parse(l) as Record<string, unknown>).find(l => l['message'] === 'adding' && l['jobId'] === id);
    expect(line, 'the handler\'s log line').to.include({ trace_id: TRACE_ID, span_id: process.spanContext().spanId });
  });

  it('POST /api/v1/jobs/bulk without a traceparent: the request span is a root, each job its own enqueue and worker span under it', async () => {
    await startWorker({ tasks, env: redis.env, prefix, logger: workerLogs.logger });
    const producer = client(redis.env, prefix);
    api = await startApiServer({ producer: producer.producer, port: 0, host: '127.0.0.1', token: null, logger: captureLogs('api').logger, env: {} });
    const created = await post(api.port, '/api/v1/jobs/bulk', { jobs: [{ task: 'add', data: { a: 1, b: 2 } }, { task: 'add', data: { a: 3, b: 4 } }] });
    expect(created.status).to.equal(202);
    const ids = (created.body['jobs'] as Array<{ id: string }>).map(j => j.id);
    for (const id of ids) await producer.waitFor(id);
    await until(() => spans('taskline.process add').length === 2, 5000, 'two worker spans');

    const server = one('POST /api/v1/jobs/bulk');
    expect(server.parentSpanContext).to.equal(undefined);
    const enqueues = spans('taskline.enqueue add');
    expect(enqueues.map(s => s.attributes['messaging.message.id']).sort()).to.deep.equal([...ids].sort());
    for (const enqueue of enqueues) {
      expect(enqueue.parentSpanContext?.spanId).to.equal(server.spanContext().spanId);
      const processed = spans('taskline.process add').filter(p => p.attributes['messaging.message.id'] === enqueue.attributes['messaging.message.id']);
      expect(processed.map(p => p.parentSpanContext?.spanId)).to.deep.equal([enqueue.spanContext().spanId]);
      expect(processed[0]?.spanContext().traceId).to.equal(server.spanContext().traceId);
    }
  });

  it('a failing handler\'s spans are ERROR with its exception, one per attempt, under the same enqueue span', async () => {
    await startWorker({ tasks, env: redis.env, prefix, logger: workerLogs.logger });
    const producer = client(redis.env, prefix);
    const appSpan = trace.getTracer('app').startSpan('app request');
    const id = await context.with(trace.setSpan(context.active(), appSpan), () => producer.enqueue('boom', {}));
    appSpan.end();
    expect((await producer.waitFor(id)).state).to.equal('FAILURE');
    await until(() => spans('taskline.process boom').length === 2, 5000, 'two worker spans');

    const enqueue = one('taskline.enqueue boom');
    expect(enqueue.parentSpanContext?.spanId, 'the library enqueue is a child of the caller\'s active span').to.equal(appSpan.spanContext().spanId);
    const attempts = spans('taskline.process boom').sort((a, b) => Number(a.attributes['taskline.attempt']) - Number(b.attributes['taskline.attempt']));
    expect(attempts.map(s => s.attributes['taskline.attempt'])).to.deep.equal([1, 2]);
    for (const span of attempts) {
      expect(span.spanContext().traceId).to.equal(appSpan.spanContext().traceId);
      expect(span.parentSpanContext?.spanId).to.equal(enqueue.spanContext().spanId);
      expect(span.status).to.deep.include({ code: SpanStatusCode.ERROR, message: 'boom: the handler failed' });
      const exception = span.events.find(e => e.name === 'exception');
      // The final attempt reaches BullMQ as an UnrecoverableError: the span still records the handler's Error.
      expect(exception?.attributes).to.include({ 'exception.type': 'Error', 'exception.message': 'boom: the handler failed' });
    }
  });

  it('the beat declares a schedule in a span; each tick is its own trace, linked to that span', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'taskline-traces-'));
    const scheduler = createScheduler({
      logger: captureLogs('scheduler').logger,
      schedulePath: join(dir, 'schedule.json'),
      connection: resolveConnectionOptions({}, redis.env),
      prefix,
      watchIntervalMs: 200,
    });
    try {
      await writeFile(join(dir, 'schedule.json'), JSON.stringify({ schedules: [{ id: 'sum', task: 'add', every: '1s', data: { a: 1, b: 1 } }] }));
      await startWorker({ tasks, env: redis.env, prefix, logger: workerLogs.logger });
      await scheduler.start();
      await until(() => spans('taskline.process add').length >= 2, 10_000, 'two ticks run');
    } finally {
      await scheduler.close();
      await rm(dir, { recursive: true, force: true });
    }
    const declared = one('taskline.schedule sum');
    expect(declared.kind).to.equal(SpanKind.PRODUCER);
    expect(declared.attributes).to.include({ 'taskline.task': 'add', 'taskline.schedule': 'beat:sum', 'messaging.destination.name': 'default' });
    const ticks = spans('taskline.process add');
    expect(new Set(ticks.map(t => t.spanContext().traceId)).size, 'one trace per tick').to.equal(ticks.length);
    for (const tick of ticks) {
      expect(tick.parentSpanContext, 'a tick starts its own trace').to.equal(undefined);
      expect(tick.links.map(l => l.context.spanId)).to.deep.equal([declared.spanContext().spanId]);
      expect(tick.attributes['taskline.schedule']).to.equal('beat:sum');
    }
  });

  it('with no tracer provider, a job carries no trace and log lines no ids', async () => {
    unregister();
    unregister = () => undefined;
    await startWorker({ tasks, env: redis.env, prefix, logger: workerLogs.logger });
    const producer = client(redis.env, prefix);
    const delayed = await producer.enqueue('add', { a: 1, b: 1 }, { delay: 60_000 });
    const job = await (await producer.queue()).getJob(delayed);
    expect(job?.opts, 'the job as stored on the broker').to.not.have.property('taskline');
    const id = await producer.enqueue('add', { a: 1, b: 2 });
    expect((await producer.waitFor(id)).result).to.equal(3);
    const line = workerLogs.lines.map(l => JSON.parse(l) as Record<string, unknown>).find(l => l['message'] === 'adding' && l['jobId'] === id);
    expect(line).to.not.equal(undefined);
    expect(line).to.not.have.property('trace_id');
    expect(exporter.getFinishedSpans()).to.have.length(0);
  });
});
