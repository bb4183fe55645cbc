// The demo's orchestration (scripts/demo.sh builds first). Plain JS: it only starts processes
// and uses the public APIs of @taskline/producer.
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createProducer } from '@taskline/producer';

const root = resolve(import.meta.dirname, '..');
const certs = join(root, 'certs/dev');
const children = [];
let stopping = false;

const say = (text) => process.stdout.write(`${text}\n`);

function freePort() {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolvePort(port));
    });
  });
}

function start(name, command, args, env) {
  const child = spawn(command, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let tail = '';
  child.stderr.on('data', (chunk) => {
    tail = (tail + chunk.toString()).slice(-4000);
  });
  child.on('exit', (code, signal) => {
    if (!stopping) {
      say(`\n${name} exited unexpectedly (${signal ?? code}). Its last log lines:\n${tail}`);
      void shutdown(1);
    }
  });
  children.push({ name, child });
  return child;
}

async function startRedis(name, port, dir) {
  const which = spawnSync('redis-server', ['--version']);
  if (which.error) {
    const docker = spawnSync('docker', ['info'], { stdio: 'ignore' });
    say(
      docker.status === 0
        ? 'redis-server is not installed. With Docker running, use the development compose file instead: docker compose -f compose/docker-compose.dev.yml up'
        : 'redis-server is not installed. Install Redis 7 (Debian/Ubuntu: sudo apt-get install redis-server) or run Docker and use compose/docker-compose.dev.yml.',
    );
    process.exit(2);
  }
  mkdirSync(dir, { recursive: true });
  start(name, 'redis-server', [
    '--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1',
    '--tls-cert-file', join(certs, 'server.crt'), '--tls-key-file', join(certs, 'server.key'),
    '--tls-ca-cert-file', join(certs, 'ca.crt'), '--tls-auth-clients', 'no',
    '--tls-protocols', 'TLSv1.2 TLSv1.3', '--appendonly', 'yes', '--dir', dir, '--save', '',
    '--maxmemory-policy', 'noeviction',
  ], {});
  for (let i = 0; i < 100; i++) {
    const ping = spawnSync('redis-cli', ['--tls', '--cacert', join(certs, 'ca.crt'), '-h', '127.0.0.1', '-p', String(port), 'ping'], { encoding: 'utf8' });
    if (ping.stdout.trim() === 'PONG') return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${name} did not start on port ${port}`);
}

async function waitHttp(url) {
  for (let i = 0; i < 150; i++) {
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} did not become ready`);
}

function bar(done, total, width = 30) {
  const filled = Math.round((done / total) * width);
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total}`;
}

// On a terminal the bar redraws in place; piped or logged, one line per 10 % instead of frames.
const drawsInPlace = process.stdout.isTTY === true;
let tenthsShown = 0;
function progress(done, total) {
  if (drawsInPlace) {
    process.stdout.write(`\r${bar(done, total)}`);
    if (done === total) process.stdout.write('\n');
    return;
  }
  const tenths = Math.floor((done * 10) / total);
  if (tenths > tenthsShown) {
    tenthsShown = tenths;
    say(`${tenths * 10}% (${done}/${total} done)`);
  }
}

async function shutdown(code = 0) {
  if (stopping) return;
  stopping = true;
  say('\nStopping: workers drain their jobs, then the beat, the API and Redis stop...');
  for (const { child } of [...children].reverse()) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await new Promise((r) => {
        const timer = setTimeout(() => { child.kill('SIGKILL'); r(); }, 35_000);
        child.once('exit', () => { clearTimeout(timer); r(); });
      });
    }
  }
  rmSync(dataDir, { recursive: true, force: true });
  say('Everything stopped.');
  process.exit(code);
}

const dataDir = mkdtempSync(join(tmpdir(), 'taskline-demo-'));
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

const [brokerPort, backendPort, apiPort, w1, w2, beat] = await Promise.all(Array.from({ length: 6 }, freePort));
const token = randomBytes(32).toString('hex');
const tokenFile = join(dataDir, 'api-token');
writeFileSync(tokenFile, token, { mode: 0o600 });
const env = {
  REDIS_HOST: '127.0.0.1', REDIS_PORT: String(brokerPort), REDIS_CA_CERT: join(certs, 'ca.crt'),
  RESULT_REDIS_HOST: '127.0.0.1', RESULT_REDIS_PORT: String(backendPort),
  TASKLINE_PREFIX: 'demo', PRODUCER_API_TOKEN_FILE: tokenFile, LOG_FORMAT: 'json',
};
Object.assign(process.env, env);

say('Starting two TLS-only Redis servers (broker and result backend)...');
await startRedis('redis broker', brokerPort, join(dataDir, 'broker'));
await startRedis('redis result backend', backendPort, join(dataDir, 'backend'));

say('Starting two workers, the beat and the HTTP API...');
const tasks = 'worker/examples/tasks.ts';
start('worker 1', 'node', ['worker/bin/taskline-worker.js', 'start', '--tasks', tasks, '--metrics-port', String(w1)], env);
start('worker 2', 'node', ['worker/bin/taskline-worker.js', 'start', '--tasks', tasks, '--metrics-port', String(w2)], env);
start('scheduler', 'node', ['scheduler/bin/taskline-scheduler.js', 'start', '--schedule', 'scheduler/examples/schedule.json', '--metrics-port', String(beat)], env);
start('producer API', 'node', ['producer/bin/taskline-producer.js', 'serve', '--port', String(apiPort), '--host', '127.0.0.1'], env);
await Promise.all([
  waitHttp(`http://127.0.0.1:${w1}/readyz`),
  waitHttp(`http://127.0.0.1:${w2}/readyz`),
  waitHttp(`http://127.0.0.1:${beat}/healthz`),
  waitHttp(`http://127.0.0.1:${apiPort}/healthz`),
]);

const producer = createProducer();
const jobs = [
  ...Array.from({ length: 100 }, (_, i) => ({ task: 'add', data: { a: i, b: i } })),
  ...Array.from({ length: 10 }, (_, i) => ({ task: 'echo', data: { hello: `world ${i}` } })),
  { task: 'flaky', data: { failTimes: 2 } },
  { task: 'sleep', data: { ms: 500 } },
  { task: 'fail', data: { reason: 'this one always fails, to show FAILURE' } },
];
say(`Enqueuing ${jobs.length} example jobs...`);
const enqueued = await producer.enqueueBulk(jobs);
let done = 0;
const states = {};
const results = await Promise.all(
  enqueued.map(async ({ id }, i) => {
    const record = await producer.waitForResult(id, { timeoutMs: 60_000 });
    done += 1;
    states[record.state] = (states[record.state] ?? 0) + 1;
    progress(done, jobs.length);
    return { task: jobs[i].task, record };
  }),
);
const show = (task) => results.find((r) => r.task === task)?.record;
say(`States: ${JSON.stringify(states)}`);
say(`  add(99, 99)       -> ${JSON.stringify(results[99].record.result)}`);
say(`  flaky(failTimes 2) -> ${show('flaky')?.state} after ${show('flaky')?.attempt} attempts`);
say(`  fail               -> ${show('fail')?.state}: ${show('fail')?.error?.message}`);
await producer.close();

say(`
taskline is running:
  HTTP API        http://127.0.0.1:${apiPort}   (POST /api/v1/jobs to enqueue, GET /api/v1/jobs/<id> for a result; bearer token in ${tokenFile})
  API health      http://127.0.0.1:${apiPort}/readyz   (alive: /healthz; details, with the token: /api/v1/health)
  metrics         http://127.0.0.1:${w1}/metrics  http://127.0.0.1:${w2}/metrics  http://127.0.0.1:${beat}/metrics  http://127.0.0.1:${apiPort}/metrics (token)
  try:            curl -s -H "Authorization: Bearer $(cat ${tokenFile})" -H 'content-type: application/json' \\
                    -d '{"task":"add","data":{"a":1,"b":2}}' http://127.0.0.1:${apiPort}/api/v1/jobs
The beat enqueues "echo" every 10 s. Press Ctrl-C to stop everything.`);
