import { writeFileSync, mkdtempSync, copyFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'chai';
import { AuthError, ConfigError, TlsError, ConnectionError, resolveConnectionOptions } from '@taskline/shared';
import {
  makeCertBundle,
  makeSelfSignedServerCert,
  makeWrongHostCertBundle,
  runningRedisCount,
  startRedis,
  type CertBundle,
  type RunningRedis,
} from '../harness/index.js';
import { captureLogs, closeTracked, envFor, failure, track } from './helpers.js';

const FAST_MS = 5000;

describe('connections over real TLS', function () {
  let certs: CertBundle;
  const servers: RunningRedis[] = [];
  const start = async (...args: Parameters<typeof startRedis>): Promise<RunningRedis> => {
    const server = await startRedis(...args);
    servers.push(server);
    return server;
  };

  before(async function () {
    certs = await makeCertBundle();
  });

  afterEach(async function () {
    await closeTracked();
    for (const s of servers.splice(0)) await s.stop();
    expect(runningRedisCount()).to.equal(0);
  });

  const connect = (env: Record<string, string>, extra: Parameters<typeof resolveConnectionOptions>[0] = {}) =>
    track({ options: resolveConnectionOptions({ healthCheckIntervalMs: 0, ...extra }, env), role: 'cli' });

  it('negotiates TLS 1.3 with a verified server certificate and reports it', async function () {
    const broker = await start({ certs, password: 'pw-broker-1' });
    const backend = await start({ certs, password: 'pw-backend-1' });
    const connections = connect(envFor(broker, backend));
    await connections.connect();
    const report = await connections.checkHealth();
    expect(report.ok).to.equal(true);
    for (const h of [report.broker, report.backend]) {
      expect(h.tls?.protocol).to.equal('TLSv1.3');
      expect(h.tls?.cipher).to.match(/^TLS_(AES|CHACHA20)/);
      expect(h.tls?.peerCertificateDaysLeft).to.be.within(360, 366);
      expect(h.latencyMs).to.be.a('number');
    }
    expect(report.broker.port).to.equal(broker.port);
    expect(report.backend.port).to.equal(backend.port);
  });

  it('negotiates TLS 1.2 with a cipher from the default list when the server stops at 1.2', async function () {
    const server = await start({ certs, tlsProtocols: 'TLSv1.2' });
    const connections = connect(envFor(server));
    const report = await connections.checkHealth();
    expect(report.broker.tls?.protocol).to.equal('TLSv1.2');
    expect(report.broker.tls?.cipher).to.match(/ECDHE-(RSA|ECDSA)-(AES\d+-GCM|CHACHA20)/);
  });

  it('connects with a client certificate when the server requires mutual TLS', async function () {
    const server = await start({ certs, requireClientCert: true });
    const connections = connect(envFor(server));
    await connections.connect();
    expect((await connections.checkHealth()).ok).to.equal(true);
  });

  it('names the missing client certificate when the server requires one', async function () {
    const server = await start({ certs, requireClientCert: true });
    const env = envFor(server);
    for (const k of Object.keys(env)) if (/CLIENT_(CERT|KEY)$/.test(k)) delete env[k];
    const { error, ms } = await failure(() => connect(env).connect());
    expect(error).to.be.instanceOf(TlsError);
    expect(error.code).to.be.oneOf(['TLS_CLIENT_CERT_REQUIRED', 'TLS_HANDSHAKE_FAILURE']);
    expect(error.message).to.include('CLIENT_CERT');
    expect(ms).to.be.below(FAST_MS);
  });

  describe('each misconfiguration fails fast with its own error', function () {
    it('wrong CA', async function () {
      const server = await start({ certs });
      const other = await makeCertBundle();
      const { error, ms } = await failure(() => connect({ ...envFor(server), REDIS_CA_CERT: other.caFile, RESULT_REDIS_CA_CERT: other.caFile }).connect());
      expect(error).to.be.instanceOf(TlsError);
      expect(error.code).to.equal('TLS_UNTRUSTED_CERT');
      expect(error.message).to.match(/not signed by the CA in (RESULT_)?REDIS_CA_CERT/);
      expect(ms).to.be.below(FAST_MS);
    });

    it('host-name mismatch', async function () {
      const wrong = await makeWrongHostCertBundle();
      const server = await start({ certs: wrong });
      const { error, ms } = await failure(() => connect(envFor(server)).connect());
      expect(error.code).to.equal('TLS_HOSTNAME_MISMATCH');
      expect(error.message).to.include('TLS_SERVERNAME');
      expect(ms).to.be.below(FAST_MS);
    });

    it('a server name from REDIS_TLS_SERVERNAME is checked instead of the IP', async function () {
      const server = await start({ certs });
      const env = { ...envFor(server), REDIS_TLS_SERVERNAME: 'localhost' };
      await connect(env).connect();
      const bad = { ...envFor(server), REDIS_TLS_SERVERNAME: 'evil.example' };
      const { error } = await failure(() => connect(bad).connect());
      expect(error.code).to.equal('TLS_HOSTNAME_MISMATCH');
      expect(error.message).to.include('evil.example');
    });

    it('expired server certificate', async function () {
      const expired = await makeCertBundle({ expired: true });
      const server = await start({ certs: expired });
      const { error, ms } = await failure(() => connect(envFor(server)).connect());
      expect(error.code).to.equal('TLS_CERT_EXPIRED');
      expect(error.message).to.include('expired');
      expect(ms).to.be.below(FAST_MS);
    });

    it('self-signed server certificate', async function () {
      const self = await makeSelfSignedServerCert();
      const server = await start({ certs, serverCertFile: self.certFile, serverKeyFile: self.keyFile });
      const { error, ms } = await failure(() => connect({ ...envFor(server), REDIS_CA_CERT: certs.caFile }).connect());
      expect(error).to.be.instanceOf(TlsError);
      expect(error.code).to.be.oneOf(['TLS_SELF_SIGNED_CERT', 'TLS_UNTRUSTED_CERT']);
      expect(ms).to.be.below(FAST_MS);
    });

    it('client limited to a TLS version the server refuses', async function () {
      const server = await start({ certs, tlsProtocols: 'TLSv1.2' });
      const { error, ms } = await failure(() => connect({ ...envFor(server), REDIS_TLS_MIN_VERSION: 'TLSv1.3' }).connect());
      expect(error.code).to.equal('TLS_PROTOCOL_MISMATCH');
      expect(error.message).to.include('TLS_MIN_VERSION');
      expect(ms).to.be.below(FAST_MS);
    });

    it('plaintext server when TLS is expected', async function () {
      const server = await start({ tls: false });
      const env = { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(server.port), REDIS_CA_CERT: certs.caFile };
      const { error, ms } = await failure(() => connect(env).connect());
      expect(error.code).to.equal('TLS_TO_PLAINTEXT_SERVER');
      expect(error.message).to.include('not a TLS port');
      expect(ms).to.be.below(FAST_MS);
    });

    it('TLS server when plaintext is expected', async function () {
      const server = await start({ certs });
      const env = { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(server.port), REDIS_SSL: 'false' };
      const { error, ms } = await failure(() => connect(env).connect());
      expect(error.code).to.equal('PLAINTEXT_TO_TLS_SERVER');
      expect(error.message).to.include('REDIS_SSL=true');
      expect(ms).to.be.below(FAST_MS);
    });

    it('wrong password', async function () {
      const server = await start({ certs, password: 'right-password-42' });
      const { lines, logger } = captureLogs();
      const env = { ...envFor(server), REDIS_PASSWORD: 'wrong-password-42', RESULT_REDIS_PASSWORD: 'wrong-password-42' };
      const connections = track({ options: resolveConnectionOptions({ healthCheckIntervalMs: 0 }, env), role: 'worker', logger });
      const { error, ms } = await failure(() => connections.connect());
      expect(error).to.be.instanceOf(AuthError);
      expect(error.code).to.equal('AUTH_FAILED');
      expect(error.message).to.include('REDIS_PASSWORD');
      expect(ms).to.be.below(FAST_MS);
      const all = lines.join('\n') + error.message + JSON.stringify(error);
      expect(all).not.to.include('wrong-password-42');
      expect(all).not.to.include('right-password-42');
    });

    it('missing CA file', function () {
      expect(() => resolveConnectionOptions({}, { REDIS_CA_CERT: '/nonexistent/ca.crt' }))
        .to.throw(ConfigError, /REDIS_CA_CERT names a CA file "\/nonexistent\/ca.crt" that does not exist/);
    });

    it('unreadable or unusable client key file', function () {
      const dir = mkdtempSync(join(tmpdir(), 'taskline-key-'));
      const garbage = join(dir, 'client.key');
      writeFileSync(garbage, 'not a key');
      const env = { REDIS_CA_CERT: certs.caFile, REDIS_CLIENT_CERT: certs.clientCertFile, REDIS_CLIENT_KEY: garbage };
      expect(() => track({ options: resolveConnectionOptions({}, env) })).to.throw(ConfigError, /REDIS_CLIENT_KEY/);
      const directory = join(dir, 'a-directory.key');
      mkdirSync(directory);
      expect(() => track({ options: resolveConnectionOptions({}, { ...env, REDIS_CLIENT_KEY: directory }) }))
        .to.throw(ConfigError, /REDIS_CLIENT_KEY names .* cannot be read/);
    });

    it('ssl_cert_reqs=none is refused (in production and everywhere else)', function () {
      for (const url of ['rediss://h:6380/0?ssl_cert_reqs=none', 'rediss://h:6380/0?ssl_cert_reqs=CERT_NONE']) {
        expect(() => resolveConnectionOptions({}, { TASKLINE_ENV: 'production', REDIS_URL: url }))
          .to.throw(ConfigError, /turns off certificate verification/);
      }
      expect(() => resolveConnectionOptions({ broker: { rejectUnauthorized: false } as never }, { TASKLINE_ENV: 'production' }))
        .to.throw(ConfigError, /rejectUnauthorized=false/);
      expect(() => resolveConnectionOptions({}, { REDIS_TLS_REJECT_UNAUTHORIZED: 'false' })).to.throw(ConfigError);
    });

    it('plaintext in production is refused unless the rollback switch is set', function () {
      expect(() => resolveConnectionOptions({}, { TASKLINE_ENV: 'production', REDIS_SSL: 'false' }))
        .to.throw(ConfigError, /production refuses/);
      const allowed = resolveConnectionOptions({}, { TASKLINE_ENV: 'production', REDIS_SSL: 'false', REDIS_ALLOW_PLAINTEXT: 'true' });
      expect(allowed.broker.tls).to.equal(null);
      expect(allowed.warnings.join(' ')).to.include('PLAINTEXT');
      const dev = resolveConnectionOptions({}, { REDIS_URL: 'redis://127.0.0.1:6390' });
      expect(dev.warnings.join(' ')).to.include('plaintext');
    });
  });

  it('keeps connections within the bound under many concurrent blocking acquirers', async function () {
    const server = await start({ certs });
    const connections = connect(envFor(server), { maxConnections: 4, acquireTimeoutMs: 3000 });
    await connections.connect(); // 1 multiplexed connection per service
    let peak = 0;
    const sampler = setInterval(() => {
      server.cli('CLIENT', 'LIST').then(list => {
        const ours = list.split('\n').filter(l => l.includes('taskline:cli:broker')).length;
        peak = Math.max(peak, ours);
      }, () => undefined);
    }, 20);
    // 3 dedicated + 1 multiplexed = the bound of 4; 12 callers each block 150 ms.
    await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const lease = await connections.broker.lease();
        try {
          await lease.client.blpop(`taskline-test:nothing:${i}`, 0.15);
        } finally {
          lease.release();
        }
      }),
    );
    clearInterval(sampler);
    expect(peak).to.be.within(2, 4);
    expect(connections.broker.openConnections).to.be.at.most(4);
  });

  it('fails a waiting acquirer with a clear pool-exhausted error and counts it', async function () {
    const server = await start({ certs });
    const connections = connect(envFor(server), { maxConnections: 2, acquireTimeoutMs: 300 });
    await connections.connect();
    const held = await connections.broker.lease();
    const { error, ms } = await failure(() => connections.broker.lease());
    held.release();
    expect(error.name).to.equal('PoolExhaustedError');
    expect(error.message).to.include('REDIS_MAX_CONNECTIONS');
    expect(ms).to.be.within(250, 2000);
    const metrics = await connections.registry.metrics();
    expect(metrics).to.match(/taskline_redis_pool_exhausted_total\{service="broker"\} 1/);
    expect(metrics).to.match(/taskline_redis_pool_max\{service="broker"\} 2/);
  });

  it('close() releases callers waiting for a connection (ClosedError) and quits every connection at once, within one grace', async function () {
    const server = await start({ certs });
    const connections = connect(envFor(server), { maxConnections: 4, acquireTimeoutMs: 30_000 });
    await connections.connect();
    const held = await Promise.all([connections.broker.lease(), connections.broker.lease(), connections.broker.lease()]);
    expect(connections.broker.openConnections).to.equal(4);
    const waiting = connections.broker.lease().then(
      () => null,
      (err: unknown) => err,
    );
    // A frozen server never answers QUIT: a sequential close would take one grace per connection.
    server.pause();
    const started = performance.now();
    try {
      await connections.close();
    } finally {
      server.resume();
    }
    const took = performance.now() - started;
    const error = (await waiting) as Error & { code?: string };
    expect(error?.name, String(error)).to.equal('ClosedError');
    expect(error.code).to.equal('CLOSED');
    expect(took, 'one grace (2 s) for every connection of both services, not one per connection').to.be.within(1900, 3500);
    expect(connections.broker.openConnections).to.equal(0);
    for (const lease of held) lease.release();
  });

  it('survives a Redis restart, reconnecting under backoff', async function () {
    const server = await start({ certs, appendonly: true });
    const { lines, logger } = captureLogs();
    const connections = track({
      options: resolveConnectionOptions({ healthCheckIntervalMs: 0, retryBaseMs: 50, retryCapMs: 400 }, envFor(server)),
      role: 'worker',
      logger,
    });
    await connections.connect();
    const client = connections.broker.client();
    await client.set('taskline-test:restart', 'kept');
    await server.restart();
    // The worker role waits through the outage: this command is sent once the server is back.
    expect(await client.get('taskline-test:restart')).to.equal('kept');
    expect(lines.some(l => l.includes('Reconnected to the broker'))).to.equal(true);
    const metrics = await connections.registry.metrics();
    expect(metrics).to.match(/taskline_redis_connection_errors_total\{service="broker",kind="network"\} [1-9]/);
  });

  it('picks up rotated CA and client files for new connections without a restart', async function () {
    const oldCerts = await makeCertBundle();
    const dir = mkdtempSync(join(tmpdir(), 'taskline-rotate-'));
    const caPath = join(dir, 'ca.crt');
    copyFileSync(oldCerts.caFile, caPath);
    const server = await start({ certs: oldCerts });
    const connections = connect({ REDIS_HOST: '127.0.0.1', REDIS_PORT: String(server.port), REDIS_CA_CERT: caPath });
    await connections.connect();
    const before = await connections.broker.lease(); // held, so the next lease opens a new connection

    // New CA and server certificate; the server switches at runtime, the client's CA file is replaced.
    const newCerts = await makeCertBundle();
    await server.cli('CONFIG', 'SET', 'tls-cert-file', newCerts.serverCertFile, 'tls-key-file', newCerts.serverKeyFile, 'tls-ca-cert-file', newCerts.caFile);
    copyFileSync(newCerts.caFile, caPath);

    // The established connections keep their sessions...
    expect(await connections.broker.client().ping()).to.equal('PONG');
    expect(await before.client.ping()).to.equal('PONG');
    // ...and a new connection verifies the new server certificate against the new CA.
    const after = await connections.broker.lease();
    expect(await after.client.ping()).to.equal('PONG');
    after.release();
    before.release();
  });

  it('never writes a password into a log line or error', async function () {
    const secret = 'sup3r-s3cret-value';
    const server = await start({ certs, password: secret });
    const { lines, logger } = captureLogs();
    const env = { ...envFor(server), REDIS_URL: `rediss://:${secret}@127.0.0.1:${server.port}/0` };
    const options = resolveConnectionOptions({ healthCheckIntervalMs: 0, connectTimeoutMs: 1000 }, env);
    const connections = track({ options, role: 'cli', logger });
    await connections.connect();
    logger.info('config', { options: connections.options, url: env.REDIS_URL, password: secret });
    await server.stop();
    await connections.checkHealth();
    const text = lines.join('\n');
    expect(lines.length).to.be.greaterThan(1);
    expect(text).not.to.include(secret);
    expect(String(new ConnectionError('x', { code: 'X', kind: 'network', retryable: true, service: 'broker', host: 'h', port: 1 }))).not.to.include(secret);
  });
});
