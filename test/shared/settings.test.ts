import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ConfigError, createLogger, resolveConnectionOptions } from '@taskline/shared';
import { bool, editDistance, findUnknownVariables, int, list, oneOf, optionsFromFlags, resolveSetting, resolveSettings, secondsAsMs, setting, text, warnUnknownVariables } from '@taskline/shared/settings';
import { CONNECTION_SETTINGS } from '@taskline/shared/connection';
import { resolveWorkerOptions } from '@taskline/worker/internal';
import { defineTasks } from '@taskline/worker';

// The settings machinery as pure units: rows, parsers, the layered resolver, flags, and the
// unknown-variable warning. No Redis.

const TABLE = {
  limit: setting({ env: 'TASKLINE_LIMIT', flag: 'limit', fileEnv: 'TASKLINE_LIMIT_FILE', parser: int({ min: 1, max: 100 }), default: 10, doc: 'A limit.' }),
  mode: setting({ env: 'TASKLINE_MODE', flag: 'mode', parser: oneOf(['fast', 'safe']), default: 'safe', doc: 'A mode.' }),
  names: setting({ env: 'TASKLINE_NAMES', parser: list(), doc: 'Some names.' }),
  token: setting({ env: 'TASKLINE_TOKEN', parser: int({ min: 0, max: 9 }), secret: true, doc: 'A secret.' }),
};

function thrown(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    return err as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('settings: the resolver (pure)', function () {
  let dir: string;
  let file: string;
  before(async function () {
    dir = await mkdtemp(path.join(os.tmpdir(), 'taskline-settings-'));
    file = path.join(dir, 'limit');
    await writeFile(file, '42\n');
  });
  after(async function () {
    await rm(dir, { recursive: true, force: true });
  });

  it('takes each layer in order: option > flag > env > file > default', function () {
    const env = { TASKLINE_LIMIT: '30', TASKLINE_LIMIT_FILE: file };
    expect(resolveSetting('limit', TABLE.limit, { options: { limit: 50 }, flags: { limit: 40 }, env })).to.equal(50);
    expect(resolveSetting('limit', TABLE.limit, { flags: { limit: 40 }, env })).to.equal(40);
    expect(resolveSetting('limit', TABLE.limit, { env })).to.equal(30);
    expect(resolveSetting('limit', TABLE.limit, { env: { TASKLINE_LIMIT_FILE: file } })).to.equal(42);
    expect(resolveSetting('limit', TABLE.limit, {})).to.equal(10);
    // An empty variable or flag counts as unset; an option only when undefined.
    expect(resolveSetting('limit', TABLE.limit, { flags: { limit: '' }, env: { TASKLINE_LIMIT: '' } })).to.equal(10);
    expect(resolveSetting('limit', TABLE.limit, { options: { limit: undefined }, env })).to.equal(30);
  });

  it('resolves a whole table, a row without default staying undefined', function () {
    expect(resolveSettings(TABLE, { env: { TASKLINE_MODE: ' fast ', TASKLINE_NAMES: 'a, b,,c' } })).to.deep.equal({ limit: 10, mode: 'fast', names: ['a', 'b', 'c'], token: undefined });
  });

  it('names the layer that set a bad value, with its bounds and the fix', function () {
    const cases: Array<[() => unknown, string, RegExp]> = [
      [() => resolveSetting('limit', TABLE.limit, { env: { TASKLINE_LIMIT: '0' } }), 'TASKLINE_LIMIT', /^TASKLINE_LIMIT must be a whole number from 1 to 100, got "0"; fix or unset it\.$/],
      [() => resolveSetting('limit', TABLE.limit, { options: { limit: 2.5 } }), 'limit', /^limit must be a whole number from 1 to 100, got "2.5"/],
      [() => resolveSetting('limit', TABLE.limit, { flags: { limit: Number.NaN } }), '--limit', /^--limit must be a whole number/],
      [() => resolveSetting('mode', TABLE.mode, { env: { TASKLINE_MODE: 'quick' } }), 'TASKLINE_MODE', /must be "fast" or "safe", got "quick"/],
      [() => resolveSetting('on', setting({ env: 'TASKLINE_ON', parser: bool(), doc: '' }), { env: { TASKLINE_ON: 'maybe' } }), 'TASKLINE_ON', /must be true or false/],
      [() => resolveSetting('every', setting({ env: 'TASKLINE_EVERY', parser: secondsAsMs({ min: 0, max: 60 }), doc: '' }), { env: { TASKLINE_EVERY: '61' } }), 'TASKLINE_EVERY', /number of seconds from 0 to 60/],
    ];
    for (const [fn, variable, message] of cases) {
      const error = thrown(fn);
      expect(error.variable).to.equal(variable);
      expect(error.message).to.match(message);
      expect(error.code).to.match(/^CONFIG_/);
    }
    const missing = thrown(() => resolveSetting('limit', TABLE.limit, { env: { TASKLINE_LIMIT_FILE: path.join(dir, 'nope') } }));
    expect(missing.code).to.equal('CONFIG_FILE_MISSING');
    expect(missing.variable).to.equal('TASKLINE_LIMIT_FILE');
  });

  it('reads seconds from the environment and milliseconds from code', function () {
    const row = setting({ env: 'TASKLINE_EVERY', parser: secondsAsMs({ min: 0, max: 60 }), doc: '' });
    expect(resolveSetting('every', row, { env: { TASKLINE_EVERY: '1.5' } })).to.equal(1500);
    expect(resolveSetting('every', row, { options: { every: 1500 } })).to.equal(1500);
  });

  it('never repeats a secret value in an error', function () {
    const error = thrown(() => resolveSetting('token', TABLE.token, { env: { TASKLINE_TOKEN: 'hunter2-secret' } }));
    expect(error.variable).to.equal('TASKLINE_TOKEN');
    expect(error.message).to.include('TASKLINE_TOKEN must be a whole number');
    expect(error.message).not.to.include('hunter2');
    const password = thrown(() => resolveSetting('pw', setting({ env: 'TASKLINE_PW', parser: text({ pattern: /^x+$/, says: 'only x', code: 'CONFIG_X' }), secret: true, doc: '' }), { env: { TASKLINE_PW: 'hunter2' } }));
    expect(password.message).not.to.include('hunter2');
  });

  it('the connection table is the one the library options go through: bounds name the option or variable', function () {
    expect(thrown(() => resolveConnectionOptions({ maxConnections: 1 }, {})).message).to.match(/^maxConnections must be a whole number from 2 to 10000, got "1"/);
    expect(thrown(() => resolveConnectionOptions({}, { REDIS_MAX_CONNECTIONS: '1' })).variable).to.equal('REDIS_MAX_CONNECTIONS');
    expect(resolveConnectionOptions({ maxConnections: 7 }, { REDIS_MAX_CONNECTIONS: '9' }).maxConnections).to.equal(7);
    expect(resolveConnectionOptions({}, { REDIS_HEALTH_CHECK_INTERVAL: '2' }).healthCheckIntervalMs).to.equal(2000);
    expect(Object.keys(CONNECTION_SETTINGS)).to.include('scriptWaitMs');
  });

  it('the worker resolves its table: flags become options that name the flag', function () {
    const tasks = defineTasks({ t: { run: () => 1 } });
    const resolved = resolveWorkerOptions({ tasks, env: { TASKLINE_CONCURRENCY: '4', TASKLINE_ISOLATION: 'none' } });
    expect(resolved).to.deep.include({ concurrency: 4, maxStalledCount: 3, queues: ['default'] });
    const bad = thrown(() => resolveWorkerOptions({ tasks, env: { TASKLINE_ISOLATION: 'fork' } }));
    expect(bad.code).to.equal('WORKER_BAD_ISOLATION');
    expect(bad.message).to.match(/TASKLINE_ISOLATION must be "none", "process" or "thread", got "fork"/);
  });
});

const WORKER_BIN = fileURLToPath(new URL('../../worker/bin/taskline-worker.js', import.meta.url));

function runWorkerBin(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [WORKER_BIN, ...args], { timeout: 30_000, env: { PATH: process.env['PATH'] ?? '' } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('settings: flags from the table', function () {
  it('reads the flags back checked, by option name, naming the flag in errors', function () {
    expect(optionsFromFlags(TABLE, { limit: 7, mode: 'fast', names: 'ignored: no flag' })).to.deep.equal({ limit: 7, mode: 'fast' });
    expect(thrown(() => optionsFromFlags(TABLE, { limit: 500 })).variable).to.equal('--limit');
  });

  it('declares every row with a flag on the bin, with its variable and default in --help', async function () {
    const run = await runWorkerBin(['start', '--help']);
    expect(run.code).to.equal(0);
    const help = { stdout: run.stdout.replace(/\s+/g, ' ') };
    expect(help.stdout).to.match(/--concurrency Jobs run at once per queue per process\. \(env TASKLINE_CONCURRENCY, default 10\)/);
    expect(help.stdout).to.match(/--isolation[\s\S]*\[choices: "none", "process", "thread"\]/);
    expect(help.stdout).to.match(/--metrics-port[\s\S]*env TASKLINE_METRICS_PORT, default 9464/);
    expect(help.stdout).to.match(/--redis-url/);
    // A row without a flag has none: yargs' strict mode refuses it.
    const refused = await runWorkerBin(['start', '--tasks', 'x.js', '--lock-duration-ms', '5']);
    expect(refused.code).to.equal(2);
    expect(refused.stderr).to.match(/Unknown argument/);
  });
});

describe('settings: unknown variables (pure)', function () {
  it('measures edit distance', function () {
    expect(editDistance('REDIS_MAX_CONECTIONS', 'REDIS_MAX_CONNECTIONS')).to.equal(1);
    expect(editDistance('abc', 'abc')).to.equal(0);
    expect(editDistance('', 'ab')).to.equal(2);
  });

  it('finds a typo under the checked prefixes and names the closest known variable', function () {
    const env = {
      REDIS_MAX_CONECTIONS: '10',
      TASKLINE_CONCURENCY: '3',
      RESULT_REDIS_HOTS: 'x',
      REDIS_HOST: 'known',
      TASKLINE_HEALTHCHECK_URL: 'allowed, read by the image health check',
      PATH: '/bin',
      HOME_REDIS_X: 'not a checked prefix',
    };
    expect(findUnknownVariables(env)).to.deep.equal([
      { variable: 'REDIS_MAX_CONECTIONS', closest: 'REDIS_MAX_CONNECTIONS' },
      { variable: 'RESULT_REDIS_HOTS', closest: 'RESULT_REDIS_HOST' },
      { variable: 'TASKLINE_CONCURENCY', closest: 'TASKLINE_CONCURRENCY' },
    ]);
  });

  it('warns once per variable through the logger, without the value', function () {
    const lines: string[] = [];
    const stream = new Writable({ write: (chunk: Buffer, _enc, done) => (lines.push(chunk.toString()), done()) });
    const logger = createLogger({ component: 'test', stream, format: 'json', env: {} });
    const seen = new Set<string>();
    const env = { TASKLINE_STALLED_INTERVAL: 'secret-ish-value-77' };
    warnUnknownVariables(env, logger, undefined, seen);
    warnUnknownVariables(env, logger, undefined, seen);
    return new Promise<void>(resolve => setImmediate(resolve)).then(() => {
      expect(lines).to.have.length(1);
      const line = JSON.parse(lines[0] ?? '{}') as { level: string; message: string };
      expect(line.level).to.equal('warn');
      expect(line.message).to.match(/^TASKLINE_STALLED_INTERVAL is not a taskline setting and is ignored; did you mean TASKLINE_STALLED_INTERVAL_MS\?/);
      expect(lines[0]).not.to.include('secret-ish-value-77');
    });
  });

  it('never warns about a variable any table declares', function () {
    const env = Object.fromEntries(['REDIS_PASSWORD_FILE', 'RESULT_REDIS_TLS_SERVERNAME', 'TASKLINE_BEAT_LEASE_MS', 'TASKLINE_QUEUES', 'TASKLINE_ROUTES', 'TASKLINE_ENV', 'REDIS_SCRIPTS'].map(name => [name, '1']));
    expect(findUnknownVariables(env)).to.deep.equal([]);
  });
});
