import { expect } from 'chai';
import { request } from 'node:http';
import { ConfigError, Secret } from '@taskline/shared';
import { startApiServer, type ApiServer } from '@taskline/producer';
import { startRedis } from '../harness/index.js';
import { captureLogs, failure } from '../shared/helpers.js';
import { keysOf, useProducerFixture, type ProducerFixture } from './fixtures.js';

const TOKEN = 'tok-7c1f0d2e9a8b4c6d5e3f-4b2a9c8d7e6f5a1b';

interface Reply {
  status: number;
  body: Record<string, unknown>;
  text: string;
}

function call(port: number, method: string, path: string, options: { body?: string | Buffer; token?: string | null; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...(options.headers ?? {}) };
    const token = options.token === undefined ? TOKEN : options.token;
    if (token !== null) headers['authorization'] = `Bearer ${token}`;
    if (options.body !== undefined) headers['content-type'] = 'application/json';
    const req = request({ host: '127.0.0.1', port, method, path, headers, agent: false }, res => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // /metrics is text
        }
        resolve({ status: res.statusCode ?? 0, body, text });
      });
    });
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

describe('producer HTTP API', function () {
  let fx: ProducerFixture;
  let server: ApiServer | null = null;
  let logs: ReturnType<typeof captureLogs>;

  useProducerFixture(fixture => (fx = fixture));
  beforeEach(() => {
    logs = captureLogs('producer-api');
  });
  afterEach(async () => {
    await server?.stop();
    server = null;
    await fx.closeProducers();
    // The token never appears in any log line.
    for (const line of logs.lines) expect(line).to.not.include(TOKEN);
  });

  async function serve(options: { maxPayloadBytes?: number; token?: Secret | null } = {}): Promise<ApiServer> {
    const producer = fx.producer({ logger: logs.logger, ...(options.maxPayloadBytes ? { maxPayloadBytes: options.maxPayloadBytes } : {}) });
    server = await startApiServer({
      producer,
      port: 0,
      host: '127.0.0.1',
      token: options.token === undefined ? new Secret(TOKEN) : options.token,
      logger: logs.logger,
      env: {},
    });
    return server;
  }

  it('202 enqueues, GET reads the record, DELETE revokes, unknown id is 404', async () => {
    const { port } = await serve();
    const created = await call(port, 'POST', '/api/v1/jobs', { body: JSON.stringify({ task: 'add', data: { a: 1, b: 2 }, options: { delay: 60_000 } }) });
    expect(created.status).to.equal(202);
    expect(created.body['deduplicated']).to.equal(false);
    const id = created.body['id'] as string;
    const read = await call(port, 'GET', `/api/v1/jobs/${id}`);
    expect(read.status).to.equal(200);
    expect(read.body).to.include({ id, state: 'PENDING', task: 'add' });
    const revoked = await call(port, 'DELETE', `/api/v1/jobs/${id}`);
    expect(revoked.status).to.equal(200);
    expect(revoked.body).to.include({ id, state: 'REVOKED' });
    const missing = await call(port, 'GET', '/api/v1/jobs/does-not-exist');
    expect(missing.status).to.equal(404);
    expect(missing.body['code']).to.equal('JOB_NOT_FOUND');
    const bulk = await call(port, 'POST', '/api/v1/jobs/bulk', { body: JSON.stringify({ jobs: [{ task: 'echo', data: 1 }, { task: 'echo', data: 2, options: { idempotencyKey: 'k1' } }, { task: 'echo', data: 3, options: { idempotencyKey: 'k1' } }] }) });
    expect(bulk.status).to.equal(202);
    expect((bulk.body['jobs'] as Array<{ deduplicated: boolean }>).map(j => j.deduplicated)).to.deep.equal([false, false, true]);
    for (const reply of [created, read, revoked, missing, bulk]) expect(reply.text).to.not.include(TOKEN);
  });

  it('rejects bad requests (401, 400, 413, 404) with JSON errors and writes nothing to Redis', async () => {
    const { port } = await serve({ maxPayloadBytes: 2048 });
    const good = JSON.stringify({ task: 'add', data: {} });
    const cases: Array<[Promise<Reply>, number, string]> = [
      [call(port, 'POST', '/api/v1/jobs', { body: good, token: null }), 401, 'UNAUTHORIZED'],
      [call(port, 'POST', '/api/v1/jobs', { body: good, token: 'wrong-token-wrong-token' }), 401, 'UNAUTHORIZED'],
      [call(port, 'GET', '/api/v1/jobs/abc', { token: null }), 401, 'UNAUTHORIZED'],
      [call(port, 'POST', '/api/v1/jobs', { body: '{"task": "add", ' }), 400, 'MALFORMED_JSON'],
      [call(port, 'POST', '/api/v1/jobs', { body: JSON.stringify({ data: {} }) }), 400, 'INVALID_TASK'],
      [call(port, 'POST', '/api/v1/jobs', { body: JSON.stringify({ task: 'no spaces!' }) }), 400, 'INVALID_TASK'],
      [call(port, 'POST', '/api/v1/jobs', { body: JSON.stringify({ task: 'add', options: { delay: 'soon' } }) }), 400, 'INVALID_OPTION'],
      [call(port, 'POST', '/api/v1/jobs', { body: JSON.stringify({ task: 'add', options: { colour: 'red' } }) }), 400, 'INVALID_OPTION'],
      [call(port, 'POST', '/api/v1/jobs', { body: JSON.stringify({ task: 'add', data: 'x'.repeat(3000) }) }), 413, 'PAYLOAD_TOO_LARGE'],
      [call(port, 'POST', '/api/v1/jobs', { body: Buffer.alloc(64 * 1024, 'a') }), 413, 'BODY_TOO_LARGE'],
      [call(port, 'GET', '/api/v2/nothing'), 404, 'NOT_FOUND'],
      [call(port, 'PUT', '/api/v1/jobs'), 405, 'METHOD_NOT_ALLOWED'],
    ];
    for (const [reply, status, code] of cases) {
      const r = await reply;
      expect([r.status, r.body['code']], JSON.stringify(r.body)).to.deep.equal([status, code]);
      expect(r.body['error']).to.be.a('string').and.not.include(TOKEN);
    }
    expect(await keysOf(fx.broker, fx.prefix)).to.deep.equal([]);
    expect(await keysOf(fx.backend, fx.prefix)).to.deep.equal([]);
    const metrics = await call(port, 'GET', '/metrics');
    expect(metrics.status).to.equal(200);
    expect(metrics.text).to.match(/taskline_http_requests_total\{route="jobs",status="401"\} 2/);
    expect(metrics.text).to.match(/taskline_http_request_duration_seconds_bucket\{le="[0-9.]+",route="jobs"\}/);
  });

  it('a chunked body over the limit gets 413 without being buffered', async () => {
    const { port } = await serve({ maxPayloadBytes: 1024 });
    const reply = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method: 'POST', path: '/api/v1/jobs', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, agent: false }, res => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', err => ((err as NodeJS.ErrnoException).code === 'EPIPE' || (err as NodeJS.ErrnoException).code === 'ECONNRESET' ? undefined : reject(err)));
      const chunk = Buffer.alloc(16 * 1024, 'a');
      let sent = 0;
      const pump = (): void => {
        while (sent < 200 && !req.destroyed) {
          sent += 1;
          if (!req.write(chunk)) return void req.once('drain', pump);
        }
        req.end();
      };
      pump();
    });
    expect(reply).to.equal(413);
    expect(await keysOf(fx.backend, fx.prefix)).to.deep.equal([]);
  });

  it('health is 200 with both servers up and 503 naming the result backend when it is down', async () => {
    const backend = await startRedis({ tls: true });
    try {
      const producer = fx.producer({ logger: logs.logger, env: { ...fx.env, ...backend.env('RESULT_REDIS_'), REDIS_CONNECT_TIMEOUT_MS: '1000' } });
      server = await startApiServer({ producer, port: 0, host: '127.0.0.1', token: new Secret(TOKEN), logger: logs.logger, env: {} });
      const up = await call(server.port, 'GET', '/api/v1/health');
      expect(up.status).to.equal(200);
      expect(up.body['ok']).to.equal(true);
      await backend.stop();
      const down = await call(server.port, 'GET', '/api/v1/health');
      expect(down.status).to.equal(503);
      const failing = down.body['failing'] as Array<{ service: string; error: string }>;
      expect(failing).to.have.length(1);
      expect(failing[0]?.service).to.equal('backend');
      expect(failing[0]?.error).to.match(/result backend/);
      expect((down.body['backend'] as { ok: boolean }).ok).to.equal(false);
      expect((down.body['broker'] as { ok: boolean }).ok).to.equal(true);
    } finally {
      await backend.stop();
    }
  });

  it('refuses to start in production without a token; outside production it warns loudly and stays open', async () => {
    const producer = fx.producer({ logger: logs.logger });
    const { error } = await failure(() => startApiServer({ producer, port: 0, host: '127.0.0.1', logger: logs.logger, env: { TASKLINE_ENV: 'production' } }));
    expect(error).to.be.instanceOf(ConfigError);
    expect(error.message).to.match(/refuses to start in production without a token; set PRODUCER_API_TOKEN/);
    server = await startApiServer({ producer, port: 0, host: '127.0.0.1', logger: logs.logger, env: {} });
    expect(logs.lines.some(l => l.includes('THE PRODUCER API IS OPEN'))).to.equal(true);
    const open = await call(server.port, 'POST', '/api/v1/jobs', { body: JSON.stringify({ task: 'echo', data: {} }), token: null });
    expect(open.status).to.equal(202);
  });
});
