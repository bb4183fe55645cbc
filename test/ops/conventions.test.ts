import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { createProducer } from '@taskline/producer';
import { createSilentLogger } from '@taskline/shared';
import { runningRedisCount, startRedis, type RunningRedis } from '../harness/index.js';
import { envFor } from '../shared/helpers.js';
import { BINS, BinProcess, EXAMPLE_TASKS, killAllBins } from './bin-process.js';
import { ROOT } from './ops-helpers.js';

// What the tools around taskline expect of a process: `--version`, a clear sentence for a taken
// metrics port, a liveness endpoint that never asks Redis, and a success line per job.

const run = promisify(execFile);
const version = (pkg: string): string => (JSON.parse(readFileSync(path.join(ROOT, pkg, 'package.json'), 'utf8')) as { version: string }).version;

describe('ops: conventions of the tools around taskline', function () {
  this.timeout(60_000);
  let redis: RunningRedis;
  let prefix: string;

  before(async () => {
    redis = await startRedis({ tls: true });
  });
  after(async () => {
    await redis.stop();
    expect(runningRedisCount()).to.equal(0);
  });
  beforeEach(() => {
    prefix = `conv${Math.random().toString(36).slice(2, 8)}`;
  });
  afterEach(async () => {
    expect(await killAllBins(), 'bins left running').to.equal(0);
  });

  const worker = (env: Record<string, string> = {}): BinProcess =>
    new BinProcess('worker', ['start', '--tasks', EXAMPLE_TASKS], { ...envFor(redis), TASKLINE_PREFIX: prefix, ...env });

  it('--version on every bin prints its package version, from any directory', async () => {
    const cwd = mkdtempSync(path.join(os.tmpdir(), 'taskline-version-'));
    try {
      for (const [bin, pkg] of [['worker', 'worker'], ['producer', 'producer'], ['scheduler', 'scheduler']] as const) {
        const { stdout } = await run(process.execPath, [BINS[bin], '--version'], { cwd, env: { PATH: process.env['PATH'] ?? '' } });
        expect(stdout.trim(), bin).to.equal(version(pkg));
        expect(stdout.trim(), bin).to.match(/^\d+\.\d+\.\d+/);
      }
    } finally {
      rmSync(cwd, { recursive: true, force: true });
    }
  });

  it('a second worker on a taken metrics port exits non-zero with one sentence naming --metrics-port and TASKLINE_METRICS_PORT=0', async () => {
    const first = worker();
    const port = await first.port();
    const second = worker({ TASKLINE_METRICS_PORT: String(port) });
    const code = await second.exitWithin(15_000);
    expect(code, second.text).to.equal(2);
    expect(second.ranMs).to.be.below(10_000);
    expect(second.text).to.match(/metrics port 0\.0\.0\.0:\d+ is already in use.*--metrics-port.*TASKLINE_METRICS_PORT, or 0 to pick a free one/);
    expect(second.text).to.not.match(/EADDRINUSE|at Server\.|node:net/);
    expect(first.ranMs, 'the first one keeps running').to.equal(-1);
    expect(await first.stop()).to.equal(0);
  });

  it('logs one info line per successful job (task, id, queue, duration), as Celery does', async () => {
    const proc = worker({ LOG_LEVEL: 'info' });
    await proc.waitFor('Worker ready', 20_000);
    const producer = createProducer({ env: { ...envFor(redis), REDIS_HEALTH_CHECK_INTERVAL: '0' }, prefix, logger: createSilentLogger() });
    try {
      const { id } = await producer.enqueue('add', { a: 2, b: 3 });
      expect((await producer.waitForResult(id, { timeoutMs: 15_000 })).state).to.equal('SUCCESS');
      const line = await proc.waitFor(/^Task add succeeded in \d+\.\d{3}s$/, 5000);
      expect(line).to.include({ level: 'info', task: 'add', jobId: id, queue: 'default' });
      expect(line['durationMs']).to.be.a('number').within(0, 15_000);
    } finally {
      await producer.close();
    }
    expect(await proc.stop()).to.equal(0);
  });

  it('/healthz (liveness) stays 200 while Redis is down; /readyz is 503 and says why', async () => {
    const own = await startRedis({ tls: true });
    try {
      const proc = new BinProcess('worker', ['start', '--tasks', EXAMPLE_TASKS], { ...envFor(own), TASKLINE_PREFIX: prefix });
      await proc.waitFor('Worker ready', 20_000);
      const port = await proc.port();
      const get = async (p: string): Promise<{ status: number; body: string }> => {
        const res = await fetch(`http://127.0.0.1:${port}${p}`);
        return { status: res.status, body: await res.text() };
      };
      expect((await get('/readyz')).status).to.equal(200);
      await own.stop();
      const deadline = Date.now() + 30_000;
      while ((await get('/readyz')).status !== 503) {
        if (Date.now() > deadline) throw new Error('/readyz never turned 503 after Redis stopped');
        await new Promise(resolve => setTimeout(resolve, 200));
      }
      const readyz = await get('/readyz');
      expect(readyz.body).to.match(/broker|result backend|connection/i);
      expect(await get('/healthz')).to.include({ status: 200 });
      expect(proc.ranMs, 'the worker keeps running (it reconnects)').to.equal(-1);
      await proc.stop();
    } finally {
      await own.stop();
    }
  });
});
