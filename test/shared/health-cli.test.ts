import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { makeCertBundle, runningRedisCount, startRedis, type CertBundle, type RunningRedis } from '../harness/index.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const BINS = ['taskline-worker', 'taskline-producer', 'taskline-scheduler'];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `pnpm exec <bin> health` the way an operator does, from the repo root. */
function health(bin: string, env: Record<string, string>): Promise<Run> {
  const started = performance.now();
  return new Promise(resolve => {
    execFile(
      'pnpm',
      ['exec', bin, 'health'],
      { cwd: ROOT, env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/root', LOG_LEVEL: 'error', ...env }, timeout: 30_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr, ms: performance.now() - started });
      },
    );
  });
}

describe('`health` command of every bin (real TLS)', function () {
  let certs: CertBundle;
  let broker: RunningRedis;
  let backend: RunningRedis;

  before(async function () {
    certs = await makeCertBundle();
    broker = await startRedis({ certs, password: 'health-pw-1' });
    backend = await startRedis({ certs, password: 'health-pw-2' });
  });
  after(async function () {
    await broker.stop();
    await backend.stop();
    expect(runningRedisCount()).to.equal(0);
  });

  for (const bin of BINS) {
    it(`${bin} health prints both connections healthy with TLS 1.3 and certificate days left`, async function () {
      const run = await health(bin, { ...broker.env('REDIS_'), ...backend.env('RESULT_REDIS_') });
      expect(run.code, run.stdout + run.stderr).to.equal(0);
      const lines = run.stdout.trim().split('\n');
      expect(lines).to.have.length(2);
      expect(lines[0]).to.match(new RegExp(`^ok +broker 127\\.0\\.0\\.1:${broker.port}: TLSv1\\.3 TLS_\\S+, server certificate expires in 36[45] days, latency [\\d.]+ ms$`));
      expect(lines[1]).to.match(new RegExp(`^ok +result backend 127\\.0\\.0\\.1:${backend.port}: TLSv1\\.3`));
      expect(run.stdout + run.stderr).not.to.match(/health-pw-/);
    });
  }

  it('exits non-zero within seconds and names the cause for a bad password on one side', async function () {
    const env = { ...broker.env('REDIS_'), ...backend.env('RESULT_REDIS_'), RESULT_REDIS_PASSWORD: 'not-the-password' };
    const run = await health('taskline-worker', env);
    expect(run.code).to.not.equal(0);
    expect(run.stdout).to.match(/^ok +broker/m);
    expect(run.stdout).to.match(/^FAIL result backend .*Redis rejected the user name or password; check RESULT_REDIS_USERNAME and RESULT_REDIS_PASSWORD/m);
    expect(run.ms).to.be.below(10_000);
    expect(run.stdout + run.stderr).not.to.include('not-the-password');
  });

  it('exits non-zero within seconds and names the cause for an untrusted CA', async function () {
    const other = await makeCertBundle();
    const env = { ...broker.env('REDIS_'), ...backend.env('RESULT_REDIS_'), REDIS_CA_CERT: other.caFile };
    const run = await health('taskline-worker', env);
    expect(run.code).to.not.equal(0);
    expect(run.stdout).to.match(/^FAIL broker .*not signed by the CA in REDIS_CA_CERT/m);
    expect(run.ms).to.be.below(10_000);
  });

  it('warns about a misspelt variable, naming the one it most likely meant, and still checks', async function () {
    const env = { ...broker.env('REDIS_'), ...backend.env('RESULT_REDIS_'), REDIS_MAX_CONECTIONS: '5', TASKLINE_HEALTHCHECK_URL: 'https://127.0.0.1:1/healthz' };
    const run = await health('taskline-producer', env);
    expect(run.code, run.stdout + run.stderr).to.equal(0);
    const warnings = run.stderr.split('\n').filter(line => line.startsWith('WARN '));
    expect(warnings).to.deep.equal([
      'WARN REDIS_MAX_CONECTIONS is not a taskline setting and is ignored; did you mean REDIS_MAX_CONNECTIONS? (docs/CONFIGURATION.md lists every setting)',
    ]);
  });

  it('refuses an insecure configuration before connecting', async function () {
    const env = { ...broker.env('REDIS_'), TASKLINE_ENV: 'production', REDIS_URL: `rediss://127.0.0.1:${broker.port}/0?ssl_cert_reqs=none` };
    const run = await health('taskline-worker', env);
    expect(run.code).to.not.equal(0);
    expect(run.stdout).to.match(/FAIL configuration: ssl_cert_reqs=none turns off certificate verification/);
  });
});
