// Issue 11 through the real bin: `taskline-producer serve` in production over HTTPS, the
// finding-5 reproduction (4 × bulk of 10,000 jobs naming distinct queues) measured on the
// process, and the CLI's refusals.
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { makeCertBundle, type CertBundle } from '../harness/index.js';
import { keysOf, useProducerFixture, type ProducerFixture } from '../producer/fixtures.js';
import { call, rssMb, series } from './https.js';

const BIN = fileURLToPath(new URL('../../producer/bin/taskline-producer.js', import.meta.url));
const TOKEN = randomBytes(32).toString('hex');

interface Serving {
  child: ChildProcess;
  output: string[];
  port: number;
  exited: Promise<number | null>;
}

function serve(env: Record<string, string>): Promise<Serving> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0'], { env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const exited = new Promise<number | null>(resolve => child.once('exit', code => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${output.join('')}`)), 20_000);
    const onData = (chunk: Buffer): void => {
      output.push(chunk.toString());
      const line = output.join('').split('\n').find(l => l.includes('Producer API listening'));
      if (line) {
        clearTimeout(timer);
        resolve({ child, output, port: (JSON.parse(line) as { port: number }).port, exited });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    void exited.then(code => {
      clearTimeout(timer);
      reject(new Error(`serve exited with ${code}: ${output.join('')}`));
    });
  });
}

function runCli(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [BIN, ...args], { env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json', ...env }, timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('security: taskline-producer serve in production (issue 11)', function () {
  this.timeout(120_000);
  let fx: ProducerFixture;
  let certs: CertBundle;
  let env: Record<string, string>;
  let running: Serving | null = null;

  useProducerFixture(fixture => (fx = fixture));
  before(async () => {
    certs = await makeCertBundle();
  });
  beforeEach(async () => {
    const tokenFile = path.join(certs.dir, `token-${fx.prefix}`);
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    env = {
      ...fx.env,
      TASKLINE_PREFIX: fx.prefix,
      TASKLINE_ENV: 'production',
      PRODUCER_API_TOKEN_FILE: tokenFile,
      PRODUCER_API_TLS_CERT: certs.serverCertFile,
      PRODUCER_API_TLS_KEY: certs.serverKeyFile,
    };
  });
  afterEach(async () => {
    if (running) {
      running.child.kill('SIGTERM');
      expect(await running.exited, 'exit code after SIGTERM').to.equal(0);
      expect(running.output.join(''), 'serve output').to.not.include(TOKEN);
    }
    running = null;
  });

  it('starts HTTPS-only on 127.0.0.1 and says so; NODE_ENV=production alone with no token, or plain HTTP, does not start', async () => {
    running = await serve(env);
    const listening = JSON.parse(running.output.join('').split('\n').find(l => l.includes('Producer API listening')) ?? '{}') as Record<string, unknown>;
    expect(listening).to.include({ host: '127.0.0.1', protocol: 'https', auth: 'bearer token' });
    const reply = await call(certs, running.port, 'POST', '/api/v1/jobs', { token: TOKEN, body: JSON.stringify({ task: 'echo', data: 1 }) });
    expect([reply.status, reply.protocol]).to.deep.equal([202, 'TLSv1.3']);

    const { PRODUCER_API_TOKEN_FILE: _t, TASKLINE_ENV: _e, ...rest } = env;
    const noToken = await runCli(['serve', '--port', '0'], { ...rest, NODE_ENV: 'production' });
    expect(noToken.code).to.equal(2);
    expect(noToken.stderr).to.match(/refuses to start in production without a token; set PRODUCER_API_TOKEN/);
    const { PRODUCER_API_TLS_CERT: _c, PRODUCER_API_TLS_KEY: _k, ...plain } = env;
    const noTls = await runCli(['serve', '--port', '0'], plain);
    expect(noTls.code).to.equal(2);
    expect(noTls.stderr).to.match(/refuses plain HTTP in production/);
    const weak = await runCli(['serve', '--port', '0'], { ...rest, PRODUCER_API_TOKEN: 'a'.repeat(16) });
    expect(weak.code).to.equal(2);
    expect(weak.stderr).to.match(/The API token in PRODUCER_API_TOKEN is too weak: it is 16 characters long; .*openssl rand -hex 32/);
  });

  it('finding 5 reproduced: 4 × bulk of 10,000 jobs with distinct queues get 400s, and the RSS and metric series stay flat', async () => {
    running = await serve(env);
    const { port } = running;
    const metrics = async (): Promise<string> => (await call(certs, port, 'GET', '/metrics', { token: TOKEN })).text;
    // taskline's own series: Node's default metrics (GC kinds, heap spaces) appear on their own schedule.
    const own = (line: string): boolean => Boolean(line) && !line.startsWith('#') && !/^taskline_process_|^taskline_nodejs_|^process_|^nodejs_/.test(line);
    const sampleCount = (text: string): number => text.split('\n').filter(own).length;
    // Warm-up requests, so the baseline includes the connections, the first parse and the routes' series.
    expect((await call(certs, port, 'POST', '/api/v1/jobs/bulk', { token: TOKEN, body: JSON.stringify({ jobs: [{ task: 'echo', data: 0 }] }) })).status).to.equal(202);
    await metrics();
    const beforeText = await metrics();
    const before = { rss: rssMb(running.child.pid ?? 0), series: sampleCount(beforeText) };
    const statuses: number[] = [];
    for (let round = 0; round < 4; round++) {
      const jobs = Array.from({ length: 10_000 }, (_, i) => ({ task: 'echo', data: {}, options: { queue: `q-${round}-${i}` } }));
      const reply = await call(certs, port, 'POST', '/api/v1/jobs/bulk', { token: TOKEN, body: JSON.stringify({ jobs }) });
      statuses.push(reply.status);
      expect(reply.body['code']).to.equal('QUEUE_NOT_ALLOWED');
    }
    const text = await metrics();
    const after = { rss: rssMb(running.child.pid ?? 0), series: sampleCount(text) };
    if (after.series - before.series !== 1) {
      const names = (t: string) => new Set(t.split('\n').filter(own).map(l => l.replace(/ [^ ]+$/, '')));
      const had = names(beforeText);
      console.log('new samples:', [...names(text)].filter(l => !had.has(l)));
    }
    // The figures, for docs/SECURITY.md: printed, not just asserted.
    console.log(`      finding 5: RSS ${before.rss.toFixed(0)} -> ${after.rss.toFixed(0)} MB, metric samples ${before.series} -> ${after.series}`);
    expect(statuses).to.deep.equal([400, 400, 400, 400]);
    expect(series(text, 'taskline_jobs_enqueued_total')).to.have.length(1); // the warm-up's
    // The one new sample: taskline_http_requests_total{route="jobs_bulk",status="400"}.
    expect(after.series - before.series, 'new metric samples').to.equal(1);
    expect(after.rss - before.rss, 'RSS growth in MB (it was +459 MB before the fix)').to.be.below(60);
    expect((await keysOf(fx.broker, fx.prefix)).filter(k => k.includes(':q-')), 'queues created').to.deep.equal([]);
  });

  it('the CLI refuses ids that are not job ids before reaching Redis', async () => {
    for (const command of ['result', 'revoke']) {
      const reply = await runCli([command, 'events'], { ...env, TASKLINE_ENV: 'development' });
      expect(reply.code, command).to.equal(1);
      expect(reply.stderr).to.match(/"events" is not a job id \(ids are UUIDs or repeat:beat:<schedule>:<ms>\); check the id\./);
    }
  });
});
