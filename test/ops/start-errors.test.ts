import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { getFreePort, makeCertBundle, makeWrongHostCertBundle, removeCertBundle, runningRedisCount, startRedis, type CertBundle, type RunningRedis } from '../harness/index.js';
import { envFor } from '../shared/helpers.js';
import { BinProcess, EXAMPLE_SCHEDULE, EXAMPLE_TASKS, killAllBins, type LogLine } from './bin-process.js';

// At start, what waiting cannot fix (a bad setting, a certificate that does not verify, a
// rejected password, a malformed URL) ends the process within seconds, non-zero, logged at
// `error` with its sentence; what can heal by waiting (Redis not up yet, a secret or certificate
// file not mounted yet) is retried, a `warn` line per retry, up to TASKLINE_START_TIMEOUT_MS.

const FAST_MS = 10_000;

const worker = (env: Record<string, string>): BinProcess => new BinProcess('worker', ['start', '--tasks', EXAMPLE_TASKS], env);

/** A fatal start: non-zero within 10 s, an `error` line whose message is the sentence, and no `fatal` line at `warn`. */
async function expectFatal(proc: BinProcess, code: string, sentence: RegExp, exitCode: number): Promise<LogLine> {
  const exit = await proc.exitWithin(FAST_MS + 5000);
  expect(exit, proc.text).to.equal(exitCode);
  expect(proc.ranMs, 'ran for').to.be.below(FAST_MS);
  const line = proc.logs.find(l => l.level === 'error' && l['code'] === code && l['fatal'] === true);
  expect(line, `an error line with code ${code}:\n${proc.text}`).to.not.equal(undefined);
  expect(line?.message).to.match(sentence);
  expect(proc.logs.filter(l => l.level === 'warn' && l['fatal'] === true), 'fatal lines at warn').to.deep.equal([]);
  if (code !== 'START_TIMEOUT') expect(proc.logs.filter(l => l.level === 'warn' && l['retryInMs'] !== undefined), 'no retry of a fatal cause').to.deep.equal([]);
  // The bin's last line says the same sentence for a person reading the terminal.
  expect(proc.text).to.match(/taskline-(worker|producer|scheduler): /);
  return line!;
}

describe('ops: start fails fast on what retrying cannot fix, waits (bounded) for what can heal', function () {
  this.timeout(60_000);
  let redis: RunningRedis;
  const bundles: CertBundle[] = [];
  const dirs: string[] = [];

  before(async () => {
    redis = await startRedis({ tls: true, password: 'start-errors-pw-0042' });
  });
  after(async () => {
    await redis.stop();
    for (const b of bundles) await removeCertBundle(b);
    expect(runningRedisCount()).to.equal(0);
  });
  afterEach(async () => {
    expect(await killAllBins(), 'bins left running').to.equal(0);
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  const env = (): Record<string, string> => ({ ...envFor(redis), REDIS_PASSWORD: 'start-errors-pw-0042', RESULT_REDIS_PASSWORD: 'start-errors-pw-0042' });
  const scratch = (): string => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'taskline-start-'));
    dirs.push(dir);
    return dir;
  };

  describe('fatal: exits non-zero within 10 s', () => {
    it('an untrusted server certificate (the CA is another one)', async () => {
      const other = await makeCertBundle();
      bundles.push(other);
      const proc = worker({ ...env(), REDIS_CA_CERT: other.caFile, RESULT_REDIS_CA_CERT: other.caFile });
      await expectFatal(proc, 'TLS_UNTRUSTED_CERT', /not signed by the CA in (RESULT_)?REDIS_CA_CERT/, 1);
    });

    it('a server certificate for another host name', async () => {
      const wrong = await makeWrongHostCertBundle();
      bundles.push(wrong);
      const server = await startRedis({ tls: true, certs: wrong });
      try {
        await expectFatal(worker(envFor(server)), 'TLS_HOSTNAME_MISMATCH', /TLS_SERVERNAME/, 1);
      } finally {
        await server.stop();
      }
    });

    it('a wrong password, never printed', async () => {
      const proc = worker({ ...env(), REDIS_PASSWORD: 'wrong-pw-never-shown', RESULT_REDIS_PASSWORD: 'wrong-pw-never-shown' });
      await expectFatal(proc, 'AUTH_FAILED', /rejected the user name or password/, 1);
      expect(proc.text).to.not.include('wrong-pw-never-shown');
    });

    it('a URL whose password holds a raw %: the sentence says to percent-encode it or use REDIS_PASSWORD_FILE', async () => {
      const proc = worker({ ...env(), REDIS_URL: `rediss://:pa%zz-secret-9@127.0.0.1:${redis.port}/0` });
      const line = await expectFatal(proc, 'CONFIG_INVALID_URL', /percent-encode the password.*REDIS_PASSWORD_FILE/, 2);
      expect(line.message).to.not.match(/URI malformed/);
      expect(proc.text).to.not.include('pa%zz-secret-9');
    });

    it('a bad setting (TASKLINE_CONCURRENCY=lots)', async () => {
      await expectFatal(worker({ ...env(), TASKLINE_CONCURRENCY: 'lots' }), 'CONFIG_INVALID_NUMBER', /TASKLINE_CONCURRENCY/, 2);
    });

    it('the HTTP API (producer serve) and the beat too', async () => {
      const other = await makeCertBundle();
      bundles.push(other);
      const untrusted = { ...env(), REDIS_CA_CERT: other.caFile, RESULT_REDIS_CA_CERT: other.caFile };
      const api = new BinProcess('producer', ['serve', '--port', '0', '--host', '127.0.0.1'], untrusted);
      const beat = new BinProcess('scheduler', ['start', '--schedule', EXAMPLE_SCHEDULE, '--metrics-host', '127.0.0.1'], untrusted);
      await expectFatal(api, 'TLS_UNTRUSTED_CERT', /REDIS_CA_CERT/, 1);
      await expectFatal(beat, 'TLS_UNTRUSTED_CERT', /REDIS_CA_CERT/, 1);
    });
  });

  describe('healing by waiting', () => {
    it('a CA file that appears after 5 s lets the start succeed (a warn line per retry meanwhile)', async () => {
      const dir = scratch();
      const ca = path.join(dir, 'ca.crt');
      const proc = worker({ ...env(), REDIS_CA_CERT: ca, RESULT_REDIS_CA_CERT: ca });
      await proc.waitFor(/REDIS_CA_CERT names .* that does not exist/, 15_000);
      await new Promise(resolve => setTimeout(resolve, 5000));
      expect(proc.ranMs, 'still running while the file is missing').to.equal(-1);
      copyFileSync(redis.certs!.caFile, ca);
      await proc.waitFor('Worker ready', 20_000);
      const retries = proc.logs.filter(l => l.level === 'warn' && l['code'] === 'CONFIG_FILE_MISSING');
      expect(retries.length, 'a warn line per retry').to.be.greaterThan(1);
      expect(retries.every(l => typeof l['attempt'] === 'number' && typeof l['retryInMs'] === 'number')).to.equal(true);
      expect(await proc.stop()).to.equal(0);
    });

    it('a Redis that comes up after 10 s is waited for', async () => {
      const port = await getFreePort();
      const proc = worker({ ...env(), REDIS_PORT: String(port), RESULT_REDIS_PORT: String(port) });
      await proc.waitFor(/nothing is listening there/, 15_000);
      await new Promise(resolve => setTimeout(resolve, 10_000));
      expect(proc.ranMs, 'still running while Redis is down').to.equal(-1);
      const late = await startRedis({ tls: true, certs: redis.certs!, port, password: 'start-errors-pw-0042' });
      try {
        await proc.waitFor('Worker ready', 30_000);
        expect(proc.logs.some(l => l.message === 'Started after waiting for the cause to clear')).to.equal(true);
        expect(await proc.stop()).to.equal(0);
      } finally {
        await late.stop();
      }
    });

    it('gives up after TASKLINE_START_TIMEOUT_MS and exits non-zero, the last cause first in its sentence', async () => {
      const port = await getFreePort();
      const proc = worker({ ...env(), REDIS_PORT: String(port), RESULT_REDIS_PORT: String(port), TASKLINE_START_TIMEOUT_MS: '3000' });
      const line = await expectFatal(proc, 'START_TIMEOUT', /^Cannot use the (broker|result backend) at .*nothing is listening there.*gave up starting after 3 s.*TASKLINE_START_TIMEOUT_MS/, 1);
      expect(line.level).to.equal('error');
    });

    it('a file that is never mounted also ends at the timeout', async () => {
      const missing = path.join(scratch(), 'never', 'password');
      const { REDIS_PASSWORD: _a, RESULT_REDIS_PASSWORD: _b, ...rest } = env();
      const proc = worker({ ...rest, REDIS_PASSWORD_FILE: missing, RESULT_REDIS_PASSWORD_FILE: missing, TASKLINE_START_TIMEOUT_MS: '2000' });
      await expectFatal(proc, 'START_TIMEOUT', /PASSWORD_FILE names .* that does not exist.*gave up starting/, 1);
    });
  });
});
