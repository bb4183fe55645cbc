import { spawn, spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { createProducer } from '@taskline/producer';
import { createSilentLogger } from '@taskline/shared';
import { runningRedisCount, startRedis, type RunningRedis } from '../harness/index.js';
import { envFor } from '../shared/helpers.js';
import { BinProcess, EXAMPLE_SCHEDULE, EXAMPLE_TASKS, killAllBins } from './bin-process.js';

// `promtool check metrics` (Debian's prometheus package) on every bin's /metrics: nothing to say
// about taskline's own metrics (taskline_*). prom-client's default Node.js metrics keep their
// stock names (process_*, nodejs_*), which stock dashboards expect, even where promtool would
// name them otherwise (nodejs_active_handles_total is a gauge).

const hasPromtool = spawnSync('promtool', ['--version']).status === 0;

function promtool(text: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', reject);
    child.on('close', () => resolve(out.split('\n').map(l => l.trim()).filter(Boolean)));
    child.stdin.end(text);
  });
}

describe('ops: promtool check metrics on every bin reports nothing for taskline_* metrics', function () {
  this.timeout(90_000);
  let redis: RunningRedis;
  const prefix = `lint${Math.random().toString(36).slice(2, 8)}`;

  before(async function () {
    if (!hasPromtool) {
      console.log('      (skipped: promtool not found; install it with `apt-get install -y --no-install-recommends prometheus`, as .ci/run does)');
      this.skip();
    }
    redis = await startRedis({ tls: true });
  });
  after(async () => {
    await redis?.stop();
    expect(runningRedisCount()).to.equal(0);
  });
  afterEach(async () => {
    expect(await killAllBins(), 'bins left running').to.equal(0);
  });

  it('worker, beat and the HTTP API, after a job ran', async () => {
    const env = { ...envFor(redis), TASKLINE_PREFIX: prefix };
    const procs = {
      worker: new BinProcess('worker', ['start', '--tasks', EXAMPLE_TASKS], env),
      scheduler: new BinProcess('scheduler', ['start', '--schedule', EXAMPLE_SCHEDULE, '--metrics-host', '127.0.0.1'], env),
      producer: new BinProcess('producer', ['serve', '--port', '0', '--host', '127.0.0.1'], env),
    };
    await procs.worker.waitFor('Worker ready', 20_000);
    const producer = createProducer({ env: { ...envFor(redis), REDIS_HEALTH_CHECK_INTERVAL: '0' }, prefix, logger: createSilentLogger() });
    try {
      const { id } = await producer.enqueue('add', { a: 1, b: 2 });
      await producer.waitForResult(id, { timeoutMs: 15_000 });
    } finally {
      await producer.close();
    }
    for (const [name, proc] of Object.entries(procs)) {
      const port = await proc.port();
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      expect(text, `${name} exports taskline metrics`).to.match(/^taskline_/m);
      expect(text, `${name} keeps the stock default names`).to.match(/^process_cpu_seconds_total /m).and.match(/^nodejs_heap_size_used_bytes /m);
      const complaints = await promtool(text);
      expect(complaints.filter(l => /^taskline_/.test(l) || /error|parse/i.test(l)), `${name}: promtool about taskline's metrics`).to.deep.equal([]);
    }
    for (const proc of Object.values(procs)) expect(await proc.stop()).to.equal(0);
  });
});
