import { inspect } from 'node:util';
import { expect } from 'chai';
import { ConfigError, DEFAULT_TLS_CIPHERS, resolveConnectionOptions } from '@taskline/shared';
import { backoffDelay } from '@taskline/shared/process';
import { toConnectionError } from '@taskline/shared/connection';
import { getSharedCertBundle, type CertBundle } from '../harness/index.js';

describe('resolveConnectionOptions (pure)', function () {
  let certs: CertBundle;
  before(async function () {
    certs = await getSharedCertBundle();
  });

  it('defaults to verified TLS with the brief\'s ciphers, 1.2–1.3, and the documented tuning', function () {
    const r = resolveConnectionOptions({}, { REDIS_CA_CERT: certs.caFile });
    expect(r.broker.tls).to.deep.include({ minVersion: 'TLSv1.2', maxVersion: 'TLSv1.3', ciphers: DEFAULT_TLS_CIPHERS, caFile: certs.caFile });
    expect(DEFAULT_TLS_CIPHERS).to.equal('ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20');
    expect(r).to.deep.include({
      maxConnections: 50,
      healthCheckIntervalMs: 30_000,
      retryBaseMs: 100,
      retryCapMs: 2000,
      retries: 3,
      production: false,
    });
    expect(r.broker).to.deep.include({ host: '127.0.0.1', port: 6379, db: 0 });
  });

  it('lets each unset RESULT_ variable fall back to the broker\'s value', function () {
    const r = resolveConnectionOptions({}, {
      REDIS_HOST: 'broker.internal',
      REDIS_PORT: '6380',
      REDIS_PASSWORD: 'broker-pw',
      REDIS_CA_CERT: certs.caFile,
      RESULT_REDIS_PORT: '6381',
      RESULT_REDIS_DB: '2',
    });
    expect(r.backend).to.deep.include({ host: 'broker.internal', port: 6381, db: 2 });
    expect(r.backend.password?.reveal()).to.equal('broker-pw');
    expect(r.backend.tls?.caFile).to.equal(certs.caFile);
    expect(r.backend.tls?.servername).to.equal('broker.internal');
  });

  it('reads rediss:// URLs, with fields beside them winning', function () {
    const r = resolveConnectionOptions({}, {
      REDIS_URL: 'rediss://worker:p%40ss@redis.example:6390/3?ssl_cert_reqs=required',
      REDIS_CA_CERT: certs.caFile,
      RESULT_REDIS_URL: 'rediss://results.example:6391/1',
      REDIS_DB: '4',
    });
    expect(r.broker).to.deep.include({ host: 'redis.example', port: 6390, db: 4, username: 'worker' });
    expect(r.broker.password?.reveal()).to.equal('p@ss');
    // A result-backend URL names another server: the broker's credentials are not sent to it.
    expect(r.backend).to.deep.include({ host: 'results.example', port: 6391, db: 1, username: null, password: null });
  });

  it('reads the password from a file (Docker secrets)', function () {
    const r = resolveConnectionOptions({}, { REDIS_PASSWORD_FILE: certs.caFile.replace(/ca\.crt$/, 'ca.crt'), REDIS_CA_CERT: certs.caFile });
    expect(r.broker.password?.reveal()).to.include('BEGIN CERTIFICATE');
    expect(() => resolveConnectionOptions({}, { REDIS_PASSWORD_FILE: '/run/secrets/nope' })).to.throw(ConfigError, /REDIS_PASSWORD_FILE/);
  });

  it('names the variable of each bad value', function () {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ REDIS_PORT: 'abc' }, /REDIS_PORT must be a whole number from 1 to 65535, got "abc"/],
      [{ RESULT_REDIS_PORT: '70000' }, /RESULT_REDIS_PORT/],
      [{ REDIS_SSL: 'maybe' }, /REDIS_SSL must be true or false/],
      [{ REDIS_MAX_CONNECTIONS: '0' }, /REDIS_MAX_CONNECTIONS/],
      [{ REDIS_HEALTH_CHECK_INTERVAL: '-1' }, /REDIS_HEALTH_CHECK_INTERVAL must be a number of seconds/],
      [{ REDIS_TLS_MIN_VERSION: 'TLSv1.1' }, /REDIS_TLS_MIN_VERSION must be TLSv1.2 or TLSv1.3.*never allowed/],
      [{ REDIS_URL: 'http://x' }, /REDIS_URL must start with rediss:\/\//],
      [{ REDIS_URL: 'rediss://h/0?bogus=1' }, /unknown query parameter "bogus"/],
      [{ REDIS_RETRY_BASE_MS: '500', REDIS_RETRY_CAP_MS: '100' }, /REDIS_RETRY_CAP_MS \(100\) is below REDIS_RETRY_BASE_MS/],
      [{ REDIS_CLIENT_CERT: '/x.crt' }, /Mutual TLS needs both REDIS_CLIENT_CERT and REDIS_CLIENT_KEY/],
    ];
    for (const [env, message] of cases) {
      expect(() => resolveConnectionOptions({}, env), JSON.stringify(env)).to.throw(ConfigError, message);
    }
  });

  it('never prints a password when options are logged or inspected', function () {
    const r = resolveConnectionOptions({}, { REDIS_PASSWORD: 'hunter2-pw', REDIS_CA_CERT: certs.caFile });
    expect(JSON.stringify(r)).not.to.include('hunter2-pw');
    expect(inspect(r, { depth: 10 })).not.to.include('hunter2-pw');
    expect(String(r.broker.password)).not.to.include('hunter2-pw');
  });
});

describe('backoffDelay (pure)', function () {
  it('grows exponentially from the base, is capped, and jitters within the upper half', function () {
    const settings = { baseMs: 100, capMs: 2000 };
    expect(backoffDelay(1, settings, () => 0)).to.equal(50);
    expect(backoffDelay(1, settings, () => 1)).to.equal(100);
    expect(backoffDelay(3, settings, () => 1)).to.equal(400);
    expect(backoffDelay(10, settings, () => 1)).to.equal(2000);
    expect(backoffDelay(10, settings, () => 0)).to.equal(1000);
  });
});

describe('toConnectionError (pure)', function () {
  const target = { service: 'backend' as const, host: '10.0.0.5', port: 6380, tls: true, servername: 'results' };
  const err = (code: string, message = code) => Object.assign(new Error(message), { code });

  it('maps each known low-level code to one sentence with the cause and the fix', function () {
    const cases: Array<[Error, string, RegExp, boolean]> = [
      [err('SELF_SIGNED_CERT_IN_CHAIN'), 'TLS_UNTRUSTED_CERT', /RESULT_REDIS_CA_CERT/, false],
      [err('UNABLE_TO_VERIFY_LEAF_SIGNATURE'), 'TLS_UNTRUSTED_CERT', /CA that issued/, false],
      [err('DEPTH_ZERO_SELF_SIGNED_CERT'), 'TLS_SELF_SIGNED_CERT', /self-signed/, false],
      [err('ERR_TLS_CERT_ALTNAME_INVALID'), 'TLS_HOSTNAME_MISMATCH', /"results"/, false],
      [err('CERT_HAS_EXPIRED'), 'TLS_CERT_EXPIRED', /expired/, false],
      [err('ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION'), 'TLS_PROTOCOL_MISMATCH', /TLS version/, false],
      [new Error('WRONGPASS invalid username-password pair or user is disabled.'), 'AUTH_FAILED', /RESULT_REDIS_PASSWORD/, false],
      [new Error('NOAUTH Authentication required.'), 'AUTH_REQUIRED', /RESULT_REDIS_PASSWORD_FILE/, false],
      [new Error("NOPERM this user has no permissions to run the 'flushall' command"), 'AUTH_NO_PERMISSION', /ACL/, false],
      [err('ECONNREFUSED'), 'CONNECTION_REFUSED', /RESULT_REDIS_HOST/, true],
      [err('ERR_SSL_WRONG_VERSION_NUMBER'), 'TLS_TO_PLAINTEXT_SERVER', /not a TLS port/, false],
    ];
    for (const [input, code, message, retryable] of cases) {
      const mapped = toConnectionError(input, target);
      expect(mapped.code, input.message).to.equal(code);
      expect(mapped.message).to.match(/^Cannot use the result backend at 10\.0\.0\.5:6380: /);
      expect(mapped.message).to.match(message);
      expect(mapped.retryable).to.equal(retryable);
      expect(mapped.service).to.equal('backend');
      expect(mapped.cause).to.equal(input);
    }
  });

  it('scrubs credentials out of an unknown error', function () {
    const mapped = toConnectionError(new Error('boom at rediss://user:topsecret@h:1'), target);
    expect(mapped.code).to.equal('CONNECTION_FAILED');
    expect(mapped.message).not.to.include('topsecret');
  });
});
