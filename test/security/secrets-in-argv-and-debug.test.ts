// Issue 11, finding 10: a password on the command line (visible to every user in `ps`) is warned
// about, naming the _FILE alternative, and refused in production; DEBUG=ioredis:* never prints
// AUTH/HELLO arguments or a configured password. Run through the bins, as operators do.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { runningRedisCount, startRedis, type RunningRedis } from '../harness/index.js';

const BIN = (name: string): string => fileURLToPath(new URL(`../../${name}/bin/taskline-${name}.js`, import.meta.url));
const TASKS = fileURLToPath(new URL('../../worker/examples/tasks.ts', import.meta.url));
const PASSWORD = `pw-${randomBytes(12).toString('hex')}`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(bin: string, args: string[], env: Record<string, string>): Promise<Run> {
  return new Promise(resolve => {
    execFile(process.execPath, [BIN(bin), ...args], { env: { PATH: process.env['PATH'] ?? '', LOG_FORMAT: 'json', ...env }, timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('security: passwords in argv and in debug output (issue 11, finding 10)', function () {
  this.timeout(60_000);
  let server: RunningRedis;
  let env: Record<string, string>;
  let url: string;

  before(async () => {
    server = await startRedis({ tls: true, aclUsers: [{ name: 'producer', password: PASSWORD, rules: '~* &* +@all' }] });
    env = { REDIS_CA_CERT: server.certs?.caFile ?? '', TASKLINE_PREFIX: `argv${randomBytes(3).toString('hex')}` };
    url = `rediss://producer:${PASSWORD}@127.0.0.1:${server.port}/0`;
  });
  after(async () => {
    await server.stop();
    expect(runningRedisCount()).to.equal(0);
  });

  const noPassword = (r: Run, what: string): void => {
    expect(r.stdout + r.stderr, `${what} output`).to.not.include(PASSWORD);
  };

  it('warns about a password in --redis-url / --result-redis-url, naming REDIS_PASSWORD_FILE / RESULT_REDIS_PASSWORD_FILE, and still works outside production', async () => {
    const broker = await run('producer', ['health', '--redis-url', url], env);
    expect(broker.code, broker.stdout + broker.stderr).to.equal(0);
    expect(broker.stdout).to.match(/^ok +broker/m);
    expect(broker.stderr).to.match(/^WARN --redis-url carries a password, which every user of this host can read in the process list \(ps, \/proc\/<pid>\/cmdline\); put the password in REDIS_PASSWORD_FILE \(or REDIS_PASSWORD\) and drop it from the URL \(the user name may stay\)\. Production refuses this\.$/m);
    noPassword(broker, 'health --redis-url');
    const backend = await run('producer', ['health', '--result-redis-url', url], { ...env, REDIS_URL: `rediss://producer@127.0.0.1:${server.port}/0`, REDIS_PASSWORD: PASSWORD });
    expect(backend.code, backend.stdout + backend.stderr).to.equal(0);
    expect(backend.stderr).to.include('--result-redis-url carries a password').and.include('RESULT_REDIS_PASSWORD_FILE');
    noPassword(backend, 'health --result-redis-url');
    const clean = await run('producer', ['health', '--redis-url', `rediss://producer@127.0.0.1:${server.port}/0`], { ...env, REDIS_PASSWORD: PASSWORD });
    expect(clean.code).to.equal(0);
    expect(clean.stderr, 'no warning without a password in argv').to.not.include('carries a password');
  });

  it('refuses a password in argv in production, in every bin, before connecting', async () => {
    const production = { ...env, TASKLINE_ENV: 'production' };
    const health = await run('producer', ['health', '--redis-url', url], production);
    expect(health.code).to.equal(2);
    expect(health.stdout.trim()).to.match(/^FAIL configuration: --redis-url carries a password, .*put the password in REDIS_PASSWORD_FILE .*\(production refuses it\)\.$/);
    noPassword(health, 'health in production');
    const worker = await run('worker', ['start', '--tasks', TASKS, '--metrics-port', '0', '--redis-url', url], production);
    expect(worker.code).to.equal(2);
    expect(worker.stderr).to.match(/taskline-worker: --redis-url carries a password/);
    noPassword(worker, 'worker start in production');
    const enqueue = await run('producer', ['enqueue', 'echo', '--result-redis-url', url], production);
    expect(enqueue.code).to.equal(2);
    expect(enqueue.stderr).to.match(/--result-redis-url carries a password.*RESULT_REDIS_PASSWORD_FILE/);
    noPassword(enqueue, 'enqueue in production');
  });

  it('DEBUG=ioredis:* shows commands but never the AUTH/HELLO arguments or the password, and warns that it is on', async () => {
    const debugEnv = { ...env, REDIS_URL: `rediss://producer@127.0.0.1:${server.port}/0`, REDIS_PASSWORD: PASSWORD, DEBUG: 'ioredis:*' };
    const enqueue = await run('producer', ['enqueue', 'echo', '--data', '{"x": 1}'], debugEnv);
    expect(enqueue.code, enqueue.stderr.slice(-2000)).to.equal(0);
    expect(enqueue.stderr, 'ioredis debug output is there').to.match(/ioredis:redis write command\[.*\]: 0 -> (hello|auth)\(\[redacted\]\)/);
    expect(enqueue.stderr).to.match(/ioredis:redis write command.* -> (evalsha|eval|set)\(/i);
    expect(enqueue.stderr).to.include("DEBUG turns on ioredis' debug output");
    noPassword(enqueue, 'DEBUG=ioredis:*');
    const everything = await run('producer', ['health'], { ...debugEnv, DEBUG: '*' });
    expect(everything.code).to.equal(0);
    expect(everything.stderr).to.include('[redacted]');
    noPassword(everything, 'DEBUG=*');
  });
});
