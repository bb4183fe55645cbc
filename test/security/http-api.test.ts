// Issue 11, findings 4–7 and 11: the producer's HTTP API as a client meets it — over real HTTPS,
// against real TLS Redis servers. What each test shows is in its name.
import { randomBytes } from 'node:crypto';
import { copyFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect } from 'chai';
import { ConfigError, Secret } from '@taskline/shared';
import { BASE_FIELDS } from '@taskline/shared/job';
import { startApiServer, type ApiServer, type ApiServerOptions } from '@taskline/producer';
import { resolveApiServerOptions } from '@taskline/producer/internal';
import { createWorker, defineTasks, type TasklineWorker } from '@taskline/worker';
import { makeCertBundle, type CertBundle } from '../harness/index.js';
import { keysOf, useProducerFixture, type ProducerFixture } from '../producer/fixtures.js';
import { captureLogs, failure } from '../shared/helpers.js';
import { call, series, type CallOptions } from './https.js';

const TOKEN = randomBytes(32).toString('hex');

describe('security: the producer HTTP API over HTTPS (issue 11)', function () {
  this.timeout(60_000);
  let fx: ProducerFixture;
  let apiCerts: CertBundle;
  let otherCa: CertBundle;
  let server: ApiServer | null = null;
  let worker: TasklineWorker | null = null;
  let logs: ReturnType<typeof captureLogs>;

  useProducerFixture(fixture => (fx = fixture));
  before(async () => {
    [apiCerts, otherCa] = await Promise.all([makeCertBundle(), makeCertBundle()]);
  });
  beforeEach(() => {
    logs = captureLogs('producer-api');
  });
  afterEach(async () => {
    await server?.stop();
    await worker?.close({ force: true });
    server = null;
    worker = null;
    await fx.closeProducers();
    for (const line of logs.lines) expect(line, 'a log line').to.not.include(TOKEN);
  });

  const tls = (certs: CertBundle = apiCerts): ApiServerOptions['tls'] => ({ certFile: certs.serverCertFile, keyFile: certs.serverKeyFile });

  /** Starts the API (HTTPS with the test certificate, the token) on a producer of the fixture. */
  async function serve(options: Partial<ApiServerOptions> = {}, env: Record<string, string> = {}, producerEnv: Record<string, string> = {}): Promise<ApiServer> {
    const producer = fx.producer({ logger: logs.logger, env: { ...fx.env, ...producerEnv } });
    server = await startApiServer({ producer, port: 0, token: new Secret(TOKEN), tls: tls(), logger: logs.logger, env, ...options });
    return server;
  }

  const api = (method: string, path: string, options: CallOptions = {}) => call(apiCerts, server?.port ?? 0, method, path, { token: TOKEN, ...options });

  describe('finding 4: HTTPS, bound to loopback, and HTTP refused in production', () => {
    it('serves verified HTTPS (TLS 1.3) and never plain HTTP on the same port; clients offering only non-forward-secret ciphers are refused', async () => {
      await serve();
      expect(server?.protocol).to.equal('https');
      const created = await api('POST', '/api/v1/jobs', { body: JSON.stringify({ task: 'add', data: { a: 1, b: 2 } }) });
      expect([created.status, created.protocol]).to.deep.equal([202, 'TLSv1.3']);
      const plain = await call(null, server!.port, 'GET', '/healthz', { plain: true }).then(r => `HTTP ${r.status}`, (err: NodeJS.ErrnoException) => err.code);
      expect(plain, 'a plain-HTTP request to the HTTPS port').to.be.oneOf(['ECONNRESET', 'EPIPE']);
      const untrusted = await call(otherCa, server!.port, 'GET', '/healthz').then(r => r.status, (err: NodeJS.ErrnoException) => err.code);
      expect(untrusted, 'a client trusting another CA').to.be.oneOf(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN']);
      const weak = await api('GET', '/healthz', { tls: { maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256:AES256-SHA' } }).then(r => r.status, (err: Error) => err.message);
      expect(String(weak), 'RSA key exchange offered alone').to.match(/handshake failure|no shared cipher|alert/i);
      const tls12 = await api('GET', '/healthz', { tls: { maxVersion: 'TLSv1.2' } });
      expect([tls12.status, tls12.protocol]).to.deep.equal([200, 'TLSv1.2']);
    });

    it('binds 127.0.0.1 by default; PRODUCER_API_HOST (or --host, or the host option) opens it wider', () => {
      const producer = fx.producer({ logger: logs.logger });
      expect(resolveApiServerOptions({ producer, logger: logs.logger, env: {} }).host).to.equal('127.0.0.1');
      expect(resolveApiServerOptions({ producer, logger: logs.logger, env: { PRODUCER_API_HOST: '0.0.0.0' } }).host).to.equal('0.0.0.0');
      expect(resolveApiServerOptions({ producer, logger: logs.logger, host: '::1', env: { PRODUCER_API_HOST: '0.0.0.0' } }).host).to.equal('::1');
    });

    it('in production refuses plain HTTP, unless PRODUCER_API_ALLOW_HTTP=true (behind a TLS proxy), which it warns about at start', async () => {
      const producer = fx.producer({ logger: logs.logger });
      const base = { producer, port: 0, token: new Secret(TOKEN), logger: logs.logger };
      const { error } = await failure(() => startApiServer({ ...base, env: { TASKLINE_ENV: 'production' } }));
      expect(error).to.be.instanceOf(ConfigError);
      expect(error).to.include({ code: 'CONFIG_API_PLAINTEXT_IN_PRODUCTION', variable: 'PRODUCER_API_TLS_CERT' });
      expect(error.message).to.match(/refuses plain HTTP in production.*set PRODUCER_API_TLS_CERT and PRODUCER_API_TLS_KEY, or, only behind a TLS-terminating proxy, PRODUCER_API_ALLOW_HTTP=true/);
      const halfConfigured = await failure(() => startApiServer({ ...base, env: { TASKLINE_ENV: 'production', PRODUCER_API_TLS_CERT: apiCerts.serverCertFile } }));
      expect(halfConfigured.error.message).to.match(/needs both PRODUCER_API_TLS_CERT and PRODUCER_API_TLS_KEY; set PRODUCER_API_TLS_KEY too/);
      server = await startApiServer({ ...base, env: { TASKLINE_ENV: 'production', PRODUCER_API_ALLOW_HTTP: 'true' } });
      expect(server.protocol).to.equal('http');
      expect(logs.lines.some(l => l.includes('plain HTTP because PRODUCER_API_ALLOW_HTTP=true') && l.includes('TLS-terminating proxy'))).to.equal(true);
      expect((await call(null, server.port, 'GET', '/healthz', { plain: true })).status).to.equal(200);
      await server.stop();
      server = await startApiServer({ ...base, env: { TASKLINE_ENV: 'production', PRODUCER_API_TLS_CERT: apiCerts.serverCertFile, PRODUCER_API_TLS_KEY: apiCerts.serverKeyFile } });
      expect(server.protocol).to.equal('https');
    });

    it('with PRODUCER_API_TLS_CA, only clients holding a certificate from that CA get in, and they still need the token', async () => {
      await serve({ tls: undefined }, { PRODUCER_API_TLS_CERT: apiCerts.serverCertFile, PRODUCER_API_TLS_KEY: apiCerts.serverKeyFile, PRODUCER_API_TLS_CA: apiCerts.caFile });
      const body = JSON.stringify({ task: 'echo', data: 1 });
      const refused = (err: NodeJS.ErrnoException): string => err.code ?? err.message;
      const noCert = await api('POST', '/api/v1/jobs', { body }).then(r => `HTTP ${r.status}`, refused);
      expect(noCert, 'no client certificate').to.not.match(/^HTTP/);
      const foreign = await api('POST', '/api/v1/jobs', { body, client: { certFile: otherCa.clientCertFile, keyFile: otherCa.clientKeyFile } }).then(r => `HTTP ${r.status}`, refused);
      expect(foreign, 'a certificate from another CA').to.not.match(/^HTTP/);
      const client = { certFile: apiCerts.clientCertFile, keyFile: apiCerts.clientKeyFile };
      expect((await api('POST', '/api/v1/jobs', { body, client, token: null })).status, 'certificate without token').to.equal(401);
      expect((await api('POST', '/api/v1/jobs', { body, client })).status).to.equal(202);
      expect((await keysOf(fx.broker, fx.prefix)).filter(k => /:default:[0-9a-f-]{36}$/.test(k)), 'the one job enqueued').to.have.length(1);
    });

    it('serves a replaced certificate to new connections without a restart', async () => {
      const live = await makeCertBundle({ ca: { certFile: apiCerts.caFile, keyFile: apiCerts.caKeyFile } });
      await serve({ tls: tls(live) });
      const before = await api('GET', '/healthz');
      const next = await makeCertBundle({ ca: { certFile: apiCerts.caFile, keyFile: apiCerts.caKeyFile }, days: 400 });
      await copyFile(next.serverKeyFile, live.serverKeyFile);
      await copyFile(next.serverCertFile, live.serverCertFile);
      await sleep(1100); // the files are looked at no more than once a second
      await api('GET', '/healthz'); // this connection triggers the reload
      const after = await api('GET', '/healthz');
      expect(after.status).to.equal(200);
      expect(after.serial).to.be.a('string').and.not.equal(before.serial);
      expect(logs.lines.some(l => l.includes('Producer API TLS files reloaded'))).to.equal(true);
    });
  });

  describe('finding 5: bounded by construction', () => {
    it('lets callers name only the configured queues (TASKLINE_QUEUES and the default queue); others are 400 and write nothing', async () => {
      await serve({}, { TASKLINE_QUEUES: 'email, reports' });
      const post = (queue: unknown) => api('POST', '/api/v1/jobs', { body: JSON.stringify({ task: 'echo', data: {}, options: { queue } }) });
      for (const queue of ['default', 'email', 'reports']) expect((await post(queue)).status, queue).to.equal(202);
      const keysBefore = await keysOf(fx.broker, fx.prefix);
      const refused = await post('q-0001');
      expect([refused.status, refused.body['code']]).to.deep.equal([400, 'QUEUE_NOT_ALLOWED']);
      expect(refused.body['error']).to.match(/"q-0001" is not a queue this API accepts \(default, email, reports\); use one of them, or ask the operator to add it to TASKLINE_QUEUES/);
      const bulk = await api('POST', '/api/v1/jobs/bulk', { body: JSON.stringify({ jobs: [{ task: 'echo', data: 1 }, { task: 'echo', data: 2, options: { queue: 'elsewhere' } }] }) });
      expect([bulk.status, bulk.body['code']]).to.deep.equal([400, 'QUEUE_NOT_ALLOWED']);
      expect(bulk.body['error']).to.match(/^jobs\[1\]\.options\.queue "elsewhere"/);
      expect(await keysOf(fx.broker, fx.prefix), 'broker keys after refused queues').to.deep.equal(keysBefore);
      expect(() => resolveApiServerOptions({ producer: fx.producer(), logger: logs.logger, env: { TASKLINE_QUEUES: 'ok,not ok' } })).to.throw(ConfigError, /TASKLINE_QUEUES: Queue name "not ok" is invalid/);
    });

    it('caps the task and queue label values of taskline_jobs_enqueued_total: past the cap, new names count as "other"', async () => {
      await serve();
      const jobs = Array.from({ length: 260 }, (_, i) => ({ task: `task-${i}`, data: i }));
      expect((await api('POST', '/api/v1/jobs/bulk', { body: JSON.stringify({ jobs }) })).status).to.equal(202);
      const metrics = await api('GET', '/metrics');
      const enqueued = series(metrics.text, 'taskline_jobs_enqueued_total');
      expect(enqueued).to.have.length(201);
      expect(enqueued.find(line => line.includes('task="other"'))).to.match(/ 60$/);
    });

    it('puts /metrics and the detailed health behind the token; /healthz answers { ok } alone, no hosts, ports, certificates or names', async () => {
      await serve();
      for (const path of ['/metrics', '/api/v1/health']) {
        const anonymous = await api('GET', path, { token: null });
        expect([path, anonymous.status]).to.deep.equal([path, 401]);
        expect(anonymous.text).to.not.match(/127\.0\.0\.1|taskline_|TLSv/);
      }
      expect((await api('GET', '/metrics')).text).to.include('taskline_redis_up');
      expect((await api('GET', '/api/v1/health')).body).to.have.nested.property('broker.tls.protocol', 'TLSv1.3');
      const healthz = await api('GET', '/healthz', { token: null });
      expect(healthz.status).to.equal(200);
      expect(healthz.body).to.deep.equal({ ok: true });
      // 40 anonymous scrapes cost nothing: they are refused before any work.
      const scrapes = await Promise.all(Array.from({ length: 40 }, () => api('GET', '/metrics', { token: null })));
      expect(new Set(scrapes.map(r => r.status))).to.deep.equal(new Set([401]));
    });

    it('/readyz says { ok: false } with 503 when Redis is unreachable, and still nothing else; /healthz (alive) stays 200 without asking Redis', async () => {
      await serve({}, {}, { REDIS_PORT: '1', REDIS_RETRIES: '0', REDIS_CONNECT_TIMEOUT_MS: '1000' });
      const readyz = await api('GET', '/readyz', { token: null });
      expect([readyz.status, readyz.body]).to.deep.equal([503, { ok: false }]);
      const healthz = await api('GET', '/healthz', { token: null });
      expect([healthz.status, healthz.body]).to.deep.equal([200, { ok: true }]);
    });
  });

  describe('finding 6: no internals to clients', () => {
    it('serves records without stack or worker host:pid; a thrown non-Error is summarised (key names, never values) in the record, the broker and the logs; an unknown task does not list the others', async () => {
      const tasks = defineTasks({
        'throws-object': { run: () => Promise.reject({ password: 'hunter2-object', user: 'bob' }), attempts: 1 },
        'throws-string': { run: () => Promise.reject('hunter2-string'), attempts: 1 },
        'throws-error': { run: () => Promise.reject(new TypeError('bad input')), attempts: 1 },
      });
      worker = createWorker({ tasks, env: fx.env, prefix: fx.prefix, logger: logs.logger, connection: { healthCheckIntervalMs: 0 } });
      await worker.start();
      await serve();
      const ids: Record<string, string> = {};
      for (const task of ['throws-object', 'throws-string', 'throws-error', 'no-such-task']) {
        const created = await api('POST', '/api/v1/jobs', { body: JSON.stringify({ task, data: {} }) });
        ids[task] = created.body['id'] as string;
      }
      const records: Record<string, Record<string, unknown>> = {};
      for (const [task, id] of Object.entries(ids)) {
        for (let i = 0; i < 200; i++) {
          const reply = await api('GET', `/api/v1/jobs/${id}`);
          if (reply.body['state'] === 'FAILURE') {
            records[task] = reply.body;
            break;
          }
          await sleep(50);
        }
        expect(records[task], `${task} ended FAILURE`).to.be.an('object');
        const record = records[task] ?? {};
        expect(record, task).to.not.have.property('worker');
        expect(Object.keys(record['error'] as object).sort(), `${task} error fields`).to.deep.equal(['message', 'type']);
        // The stack and the worker are kept for operators in the result backend itself.
        // The stored base is a compact array whose positions BASE_FIELDS gives.
        const stored = JSON.parse(await fx.backend.cli('HGET', `${fx.prefix}:result:{${id}}`, 'base')) as unknown[];
        expect(stored[BASE_FIELDS.indexOf('worker')], 'host:pid stays in the stored record').to.match(/:\d+$/);
      }
      expect(records['throws-object']?.['error']).to.deep.equal({ type: 'NonError', message: 'A non-Error value was thrown: an object with keys password, user; throw an Error so its message is kept.' });
      expect(records['throws-string']?.['error']).to.deep.equal({ type: 'NonError', message: 'A non-Error value was thrown: a string of 14 characters; throw an Error so its message is kept.' });
      expect(records['throws-error']?.['error']).to.deep.equal({ type: 'TypeError', message: 'bad input' });
      expect((records['no-such-task']?.['error'] as { message: string }).message).to.match(/No task named "no-such-task"/).and.not.match(/throws-/);
      // Nowhere: not in the result backend, not in BullMQ's failed reason, not in a log line.
      const everywhere = [
        await fx.backend.cli('HGETALL', `${fx.prefix}:result:{${ids['throws-object']}}`),
        await fx.backend.cli('HGETALL', `${fx.prefix}:result:{${ids['throws-string']}}`),
        await fx.broker.cli('HGET', `${fx.prefix}:default:${ids['throws-object']}`, 'failedReason'),
        await fx.broker.cli('HGET', `${fx.prefix}:default:${ids['throws-string']}`, 'failedReason'),
        ...logs.lines,
      ].join('\n');
      expect(everywhere).to.include('an object with keys password, user').and.not.include('hunter2');
    });

    it('answers 5xx with a code and a sentence: no host, port or stack', async () => {
      await serve({}, {}, { REDIS_PORT: '1', REDIS_RETRIES: '0', REDIS_CONNECT_TIMEOUT_MS: '1000' });
      const reply = await api('POST', '/api/v1/jobs', { body: JSON.stringify({ task: 'echo', data: {} }) });
      expect(reply.status).to.equal(503);
      expect(Object.keys(reply.body).sort()).to.deep.equal(['code', 'error']);
      expect(reply.body['error']).to.equal("The broker is unavailable; retry later (the producer's log has the cause).");
      expect(reply.text).to.not.match(/127\.0\.0\.1|:1\b|at .*\.js/);
      expect(logs.lines.some(l => l.includes('API request failed') && l.includes('127.0.0.1:1'))).to.equal(true);
    });
  });

  describe('finding 7: one production switch, strong tokens, JSON only', () => {
    it('NODE_ENV=production alone is production: no token, no start', async () => {
      const producer = fx.producer({ logger: logs.logger });
      const { error } = await failure(() => startApiServer({ producer, port: 0, logger: logs.logger, tls: tls(), env: { NODE_ENV: 'production' } }));
      expect(error).to.include({ code: 'CONFIG_API_TOKEN_MISSING' });
      const typo = await failure(() => startApiServer({ producer, port: 0, logger: logs.logger, env: { TASKLINE_ENV: 'prod' } }));
      expect(typo.error).to.include({ code: 'CONFIG_UNKNOWN_ENVIRONMENT', variable: 'TASKLINE_ENV' });
      expect(typo.error.message).to.match(/TASKLINE_ENV must be production, development or test, got "prod"/);
    });

    it('refuses weak tokens with the rule and the fix, never repeating the token', async () => {
      const producer = fx.producer({ logger: logs.logger });
      const weak: Array<[string, RegExp]> = [
        ['a'.repeat(16), /is 16 characters long/],
        ['a'.repeat(48), /uses only 1 different character/],
        ['ab12'.repeat(10), /uses only 4 different characters/],
        [`${TOKEN.slice(0, 20)} ${TOKEN.slice(20)}`, /spaces, control or non-ASCII characters/],
      ];
      for (const [token, reason] of weak) {
        for (const attempt of [
          () => startApiServer({ producer, port: 0, logger: logs.logger, env: { PRODUCER_API_TOKEN: token } }),
          () => startApiServer({ producer, port: 0, logger: logs.logger, token: new Secret(token), env: {} }),
        ]) {
          const { error } = await failure(attempt);
          expect(error).to.include({ code: 'CONFIG_API_TOKEN_WEAK' });
          expect(error.message).to.match(reason).and.match(/at least 32 visible ASCII characters with at least 10 different ones, e\.g\. the output of `openssl rand -hex 32`/);
          expect(error.message).to.not.include(token);
        }
      }
    });

    it('takes bodies only as Content-Type: application/json (415 otherwise): a cross-site text/plain or form POST is refused even by an open API', async () => {
      await serve({ token: null });
      const body = JSON.stringify({ task: 'echo', data: {} });
      for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', null]) {
        const reply = await api('POST', '/api/v1/jobs', { body, token: null, contentType, headers: { origin: 'https://evil.example' } });
        expect([contentType, reply.status, reply.body['code']]).to.deep.equal([contentType, 415, 'UNSUPPORTED_MEDIA_TYPE']);
      }
      expect(await keysOf(fx.backend, fx.prefix)).to.deep.equal([]);
      const ok = await api('POST', '/api/v1/jobs', { body, token: null, contentType: 'application/json; charset=utf-8' });
      expect(ok.status).to.equal(202);
    });
  });

  describe('finding 11: input handling', () => {
    it('refuses JSON nested deeper than 64 levels with 400 (not a 500); 60 levels of data are fine', async () => {
      await serve();
      const nest = (depth: number): string => '['.repeat(depth) + ']'.repeat(depth);
      const deep = await api('POST', '/api/v1/jobs', { body: `{"task":"echo","data":${nest(2000)}}` });
      expect([deep.status, deep.body['code']]).to.deep.equal([400, 'JSON_TOO_DEEP']);
      expect(deep.body['error']).to.match(/more than 64 levels deep; flatten the payload/);
      const deepInString = await api('POST', '/api/v1/jobs', { body: JSON.stringify({ task: 'echo', data: nest(2000) }) });
      expect(deepInString.status, 'brackets inside a string do not count').to.equal(202);
      expect((await api('POST', '/api/v1/jobs', { body: `{"task":"echo","data":${nest(60)}}` })).status).to.equal(202);
    });

    it('answers 404 for ids that are not job ids (events, repeat, id, meta, <id>:logs...) and never touches those keys', async () => {
      await serve();
      const created = await api('POST', '/api/v1/jobs', { body: JSON.stringify({ task: 'echo', data: {}, options: { delay: 60_000 } }) });
      const id = created.body['id'] as string;
      const keysBefore = await keysOf(fx.broker, fx.prefix);
      expect(keysBefore, 'the queue has its own keys').to.include.members([`${fx.prefix}:default:events`, `${fx.prefix}:default:meta`, `${fx.prefix}:default:id`]);
      for (const bad of ['events', 'repeat', 'id', 'meta', 'delayed', 'marker', `${id}:logs`, `${id}:lock`, 'repeat:beat:x', '..', '%2e%2e', 'x'.repeat(200)]) {
        for (const method of ['GET', 'DELETE']) {
          const reply = await api(method, `/api/v1/jobs/${bad}`);
          expect([method, bad, reply.status, reply.body['code']]).to.deep.equal([method, bad, 404, 'JOB_NOT_FOUND']);
        }
      }
      expect(await keysOf(fx.broker, fx.prefix)).to.deep.equal(keysBefore);
      expect((await api('GET', `/api/v1/jobs/${id}`)).body).to.include({ id, state: 'PENDING' });
      expect((await api('DELETE', `/api/v1/jobs/${id}`)).body).to.include({ id, state: 'REVOKED' });
      expect((await api('GET', '/api/v1/jobs/00000000-0000-4000-8000-000000000000')).body['code']).to.equal('JOB_NOT_FOUND');
    });

    it('refuses a body that is not valid UTF-8 with 400 instead of storing U+FFFD', async () => {
      await serve();
      const body = Buffer.concat([Buffer.from('{"task":"echo","data":"caf'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}')]);
      const reply = await api('POST', '/api/v1/jobs', { body });
      expect([reply.status, reply.body['code']]).to.deep.equal([400, 'INVALID_UTF8']);
      expect(await keysOf(fx.backend, fx.prefix)).to.deep.equal([]);
      const good = await api('POST', '/api/v1/jobs', { body: Buffer.from(JSON.stringify({ task: 'echo', data: 'café ☕' }), 'utf8') });
      expect(good.status).to.equal(202);
    });
  });
});
