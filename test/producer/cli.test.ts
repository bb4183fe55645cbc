import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createWorker } from '@taskline/worker';
import tasks from '../../worker/examples/tasks.js';

import { useProducerFixture, type ProducerFixture } from './fixtures.js';

const BIN = fileURLToPath(new URL('../../producer/bin/taskline-producer.js', import.meta.url));
const TOKEN = 'cli-token-5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string>, timeoutMs = 20_000): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', code => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('taskline-producer CLI', function () {
  let fx: ProducerFixture;
  let env: Record<string, string>;

  useProducerFixture(fixture => (fx = fixture));
  beforeEach(() => {
    env = { ...fx.env, TASKLINE_PREFIX: fx.prefix };
  });

  it('enqueue --wait prints the result from a running worker; FAILURE exits 1; result <id> reads it back', async function () {
    this.timeout(40_000);
    const worker = createWorker({ tasks, env: fx.env, prefix: fx.prefix });
    try {
      await worker.start();
      const ok = await run(['enqueue', 'add', '--data', '{"a": 2, "b": 40}', '--wait', '--timeout', '15'], env);
      expect(ok.code, ok.stderr).to.equal(0);
      const record = JSON.parse(ok.stdout) as { id: string; state: string; result: unknown };
      expect(record).to.include({ state: 'SUCCESS', result: 42 });
      const read = await run(['result', record.id], env);
      expect(read.code).to.equal(0);
      expect(JSON.parse(read.stdout)).to.include({ id: record.id, state: 'SUCCESS' });
      const bad = await run(['enqueue', 'fail', '--attempts', '1', '--wait', '--timeout', '15'], env);
      expect(bad.code).to.equal(1);
      expect(JSON.parse(bad.stdout)).to.include({ state: 'FAILURE' });
      const counts = await run(['inspect', 'counts'], env);
      expect(counts.code, counts.stderr).to.equal(0);
      expect(JSON.parse(counts.stdout)).to.have.nested.property('default.failed', 1);
    } finally {
      await worker.close();
    }
  });

  it('enqueue prints the id; --wait without a worker times out with exit 3', async () => {
    const queued = await run(['enqueue', 'echo', '--data', '"hi"', '--queue', 'nobody-listens'], env);
    expect(queued.code, queued.stderr).to.equal(0);
    expect(queued.stdout.trim()).to.match(/^[0-9a-f-]{36}$/);
    const waited = await run(['enqueue', 'echo', '--queue', 'nobody-listens', '--wait', '--timeout', '0.5'], env);
    expect(waited.code).to.equal(3);
    expect(waited.stderr).to.match(/did not finish within 500 ms/);
  });

  it('bad --data is one clear error with exit 2, and nothing is enqueued', async () => {
    const bad = await run(['enqueue', 'add', '--data', '{a:1}'], env);
    expect(bad.code).to.equal(2);
    expect(bad.stderr.trim().split('\n')).to.have.length(1);
    expect(bad.stderr).to.match(/--data is not valid JSON .*; pass a JSON value/);
    const unknownFlag = await run(['enqueue', 'add', '--colour', 'red'], env);
    expect(unknownFlag.code).to.equal(2);
    expect(unknownFlag.stderr).to.match(/Unknown argument/);
    const queues = await run(['inspect', 'queues'], env);
    expect(queues.stdout.trim()).to.equal('');
  });

  it('serve answers with the token, stops cleanly on SIGTERM, and never prints the token', async function () {
    this.timeout(30_000);
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--host', '127.0.0.1'], {
      env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json', LOG_LEVEL: 'debug', PRODUCER_API_TOKEN: TOKEN, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString()));
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`serve did not start: ${output}`)), 15_000);
      child.stderr.on('data', (c: Buffer) => {
        output += c.toString();
        const match = /"port":(\d+)/.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
    });
    const reply = await fetch(`http://127.0.0.1:${port}/api/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ task: 'echo', data: { x: 1 } }),
    });
    expect(reply.status).to.equal(202);
    const denied = await fetch(`http://127.0.0.1:${port}/api/v1/jobs/x`, { headers: { authorization: 'Bearer nope' } });
    expect(denied.status).to.equal(401);
    const exit = new Promise<number | null>(resolve => child.on('close', code => resolve(code)));
    child.kill('SIGTERM');
    expect(await exit).to.equal(0);
    expect(output).to.include('Stopping the producer API');
    expect(output).to.not.include(TOKEN);
  });

  it('every command has --help', async () => {
    for (const args of [['--help'], ['serve', '--help'], ['enqueue', '--help'], ['result', '--help'], ['inspect', '--help'], ['inspect', 'failed', '--help'], ['health', '--help']]) {
      const r = await run(args, env);
      expect(r.code, args.join(' ')).to.equal(0);
      expect(r.stdout).to.match(/taskline-producer/);
    }
  });
});
