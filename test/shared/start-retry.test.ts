import { PassThrough } from 'node:stream';
import { expect } from 'chai';
import { AuthError, ConfigError, ConnectionError, TlsError, createLogger, resolveConnectionOptions } from '@taskline/shared';
import { canStartLater, startWithRetry, StartTimeoutError } from '@taskline/shared/ops';

// The start contract as a pure unit (no Redis): which causes are waited for, for how long, and
// what is logged. The bins are tested end to end in test/ops/start-errors.test.ts.

const enoent = (): NodeJS.ErrnoException => Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
const eacces = (): NodeJS.ErrnoException => Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
const target = { service: 'broker' as const, host: '127.0.0.1', port: 1 };

function capture(): { logger: ReturnType<typeof createLogger>; lines: () => Array<Record<string, unknown>> } {
  const out: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (c: Buffer) => out.push(...c.toString().split('\n').filter(Boolean)));
  return { logger: createLogger({ component: 'test', format: 'json', level: 'debug', stream }), lines: () => out.map(l => JSON.parse(l) as Record<string, unknown>) };
}

describe('start: fail fast, wait only for what can heal (unit)', () => {
  it('waits for Redis not up yet and for a file not mounted yet, nothing else', () => {
    const refused = new ConnectionError('nothing is listening there', { ...target, code: 'CONNECTION_REFUSED', kind: 'network', retryable: true });
    expect(canStartLater(refused)).to.equal(true);
    expect(canStartLater(new ConfigError('CONFIG_FILE_MISSING', 'REDIS_CA_CERT', 'missing'))).to.equal(true);
    expect(canStartLater(new ConfigError('CONFIG_FILE_UNREADABLE', 'REDIS_CA_CERT', 'gone', { cause: enoent() }))).to.equal(true);
    expect(canStartLater(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).to.equal(true);

    expect(canStartLater(new ConfigError('CONFIG_FILE_UNREADABLE', 'REDIS_CA_CERT', 'no access', { cause: eacces() }))).to.equal(false);
    expect(canStartLater(new ConfigError('CONFIG_INVALID_NUMBER', 'REDIS_PORT', 'bad'))).to.equal(false);
    expect(canStartLater(new TlsError('untrusted', { ...target, code: 'TLS_UNTRUSTED_CERT', kind: 'tls', retryable: false }))).to.equal(false);
    expect(canStartLater(new AuthError('wrong password', { ...target, code: 'AUTH_FAILED', kind: 'auth', retryable: false }))).to.equal(false);
    expect(canStartLater(new TypeError('a bug'))).to.equal(false);
  });

  it('a fatal cause: one attempt, logged at error (the sentence as the message), thrown as is', async () => {
    const { logger, lines } = capture();
    const fatal = new TlsError('Cannot use the broker at 127.0.0.1:1: the certificate is not signed by the CA in REDIS_CA_CERT; point it at the CA.', { ...target, code: 'TLS_UNTRUSTED_CERT', kind: 'tls', retryable: false });
    let attempts = 0;
    const thrown = await startWithRetry({
      create: () => ++attempts,
      start: () => Promise.reject(fatal),
      discard: () => Promise.resolve(),
      stop: new AbortController().signal,
      logger,
      env: {},
    }).catch((err: unknown) => err);
    expect(thrown).to.equal(fatal);
    expect(attempts).to.equal(1);
    expect(lines().filter(l => l['level'] === 'error')).to.have.length(1);
    expect(lines()[0]).to.include({ level: 'error', message: fatal.message, code: 'TLS_UNTRUSTED_CERT', fatal: true });
  });

  it('a cause that can heal: a warn line per retry, then START_TIMEOUT after TASKLINE_START_TIMEOUT_MS, the cause first', async () => {
    const { logger, lines } = capture();
    const missing = new ConfigError('CONFIG_FILE_MISSING', 'REDIS_PASSWORD_FILE', 'REDIS_PASSWORD_FILE names a password file "/x" that does not exist; fix the path or mount the file.');
    const started = performance.now();
    const thrown = await startWithRetry({
      create: () => null,
      start: () => Promise.reject(missing),
      discard: () => Promise.resolve(),
      stop: new AbortController().signal,
      logger,
      env: { TASKLINE_START_TIMEOUT_MS: '400' },
      baseMs: 20,
      capMs: 50,
    }).catch((err: unknown) => err);
    const ms = performance.now() - started;
    expect(thrown).to.be.instanceOf(StartTimeoutError);
    expect((thrown as StartTimeoutError).code).to.equal('START_TIMEOUT');
    expect((thrown as Error).message).to.match(/^REDIS_PASSWORD_FILE names a password file "\/x" that does not exist; fix the path or mount the file; gave up starting after 0\.4 s/);
    expect(ms).to.be.within(350, 2000);
    const warns = lines().filter(l => l['level'] === 'warn');
    expect(warns.length).to.be.greaterThan(2);
    expect(warns.every(l => l['message'] === missing.message && typeof l['retryInMs'] === 'number')).to.equal(true);
    expect(lines().at(-1)).to.include({ level: 'error', code: 'START_TIMEOUT', fatal: true });
  });

  it('starts once the cause clears, and a stop while waiting resolves null', async () => {
    const { logger, lines } = capture();
    let n = 0;
    const value = await startWithRetry({
      create: () => ++n,
      start: c => (c < 3 ? Promise.reject(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })) : Promise.resolve()),
      discard: () => Promise.resolve(),
      stop: new AbortController().signal,
      logger,
      env: {},
      baseMs: 10,
      capMs: 10,
    });
    expect(value).to.equal(3);
    expect(lines().some(l => l['message'] === 'Started after waiting for the cause to clear')).to.equal(true);

    const stop = new AbortController();
    setTimeout(() => stop.abort('SIGTERM'), 50);
    const stopped = await startWithRetry({
      create: () => null,
      start: () => Promise.reject(new ConfigError('CONFIG_FILE_MISSING', 'REDIS_CA_CERT', 'missing')),
      discard: () => Promise.resolve(),
      stop: stop.signal,
      logger,
      env: {},
      baseMs: 1000,
    });
    expect(stopped).to.equal(null);
  });

  it('refuses a bad TASKLINE_START_TIMEOUT_MS with the variable named', async () => {
    const { logger } = capture();
    const thrown = await startWithRetry({ create: () => null, start: () => Promise.resolve(), discard: () => Promise.resolve(), stop: new AbortController().signal, logger, env: { TASKLINE_START_TIMEOUT_MS: 'soon' } }).catch((err: unknown) => err);
    expect((thrown as ConfigError).variable).to.equal('TASKLINE_START_TIMEOUT_MS');
  });
});

describe('URL problems: one sentence naming the fix, never the URL', () => {
  const fails = (url: string, variable = 'REDIS_URL'): ConfigError => {
    try {
      resolveConnectionOptions({}, { [variable]: url });
    } catch (err) {
      return err as ConfigError;
    }
    throw new Error('expected a ConfigError');
  };

  it('a raw % in the password: percent-encode it, or use REDIS_PASSWORD_FILE (not "URI malformed")', () => {
    const err = fails('rediss://:50%off-secret@127.0.0.1:6379/0');
    expect(err.code).to.equal('CONFIG_INVALID_URL');
    expect(err.message).to.match(/percent-encode the password \(a literal % is %25\), or leave the password out of the URL and use REDIS_PASSWORD_FILE\./);
    expect(err.message).to.not.include('50%off-secret').and.not.include('URI malformed');
    expect(fails('rediss://:50%off-secret@127.0.0.1:6379/0', 'RESULT_REDIS_URL').message).to.include('RESULT_REDIS_PASSWORD_FILE');
  });

  it('a / or # in the password (the URL no longer parses): percent-encode, or use the password file', () => {
    for (const url of ['rediss://:pa/ss-secret@127.0.0.1:6379', 'rediss://:pa#ss-secret@127.0.0.1:6379']) {
      const err = fails(url);
      expect(err.code).to.equal('CONFIG_INVALID_URL');
      expect(err.message).to.match(/percent-encode the user name and password .*REDIS_PASSWORD_FILE/);
      expect(err.message).to.not.include('ss-secret');
    }
  });

  it('a percent-encoded password is decoded', () => {
    const resolved = resolveConnectionOptions({}, { REDIS_URL: 'rediss://:50%25off%2Fx@127.0.0.1:6379/0' });
    expect(resolved.broker.password?.reveal()).to.equal('50%off/x');
  });
});
