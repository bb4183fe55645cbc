// The checks of pnpm test:compose against the running production compose stack. Run by
// scripts/test-compose.sh (which starts the engine, makes the images, certificates and secrets,
// and tears everything down); prints one line per check and a summary line, exits 1 on a failure.
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { connect as netConnect } from 'node:net';
import path from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { expect } from 'chai';
import { Api, type JobRecord } from './api.js';
import { badInputChecks } from './bad-input.js';
import { docker, inspect, logsOf, nodeIn, sleep, Stack, waitFor, type Container } from './docker.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set; run this through scripts/test-compose.sh`);
  return value;
};

const image = env('TASKLINE_IMAGE');
const baseImage = env('TEST_COMPOSE_NODE_IMAGE');
const certsDir = env('TASKLINE_CERTS_DIR');
const secretsDir = env('TASKLINE_SECRETS_DIR');
const wrongCertsDir = env('TEST_COMPOSE_WRONG_CERTS_DIR');
const stack = new Stack(env('COMPOSE_PROJECT_NAME'), env('TEST_COMPOSE_FILE'), env('TEST_COMPOSE_CMD'));
const api = new Api(
  `https://${env('PRODUCER_PORT')}`,
  readFileSync(path.join(secretsDir, 'producer_api_token'), 'utf8').trim(),
  readFileSync(path.join(certsDir, 'ca.crt'), 'utf8'),
);
const graceMs = Number(process.env['TASKLINE_SHUTDOWN_GRACE_MS'] ?? 30_000);

// Every secret value, so that no line this test prints can carry one (and so a check can look for them).
const secrets = readdirSync(secretsDir)
  .filter(f => /_password$|_token$/.test(f))
  .map(f => readFileSync(path.join(secretsDir, f), 'utf8').trim())
  .filter(s => s.length >= 16);
const scrub = (text: string): string => secrets.reduce((t, s) => t.split(s).join('[redacted]'), text);

// ---- the runner --------------------------------------------------------------------------------

interface Check {
  name: string;
  /** Needs the stack up; skipped (and failed) when bringing it up failed. */
  needsStack?: boolean;
  run: () => Promise<string | void>;
}

const mb = (bytes: number): string => `${(bytes / 1e6).toFixed(1)} MB`;
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

async function runChecks(checks: Check[]): Promise<boolean> {
  let passed = 0;
  let failed = 0;
  let stackUp = true;
  for (const check of checks) {
    const started = Date.now();
    if (check.needsStack && !stackUp) {
      failed += 1;
      console.log(`FAIL ${check.name}: not run, the stack did not come up`);
      continue;
    }
    try {
      const detail = await check.run();
      passed += 1;
      console.log(scrub(`ok   ${check.name}${detail ? ` — ${detail}` : ''} (${seconds(Date.now() - started)})`));
    } catch (err) {
      failed += 1;
      if (check.name.startsWith('stack up')) stackUp = false;
      console.log(scrub(`FAIL ${check.name}: ${err instanceof Error ? err.message : String(err)}`));
    }
  }
  console.log(`compose: ${passed} passed, ${failed} failed`);
  return failed === 0;
}

// ---- helpers -----------------------------------------------------------------------------------

// Each runs as the ACL user of its name on both Redis servers.
const tasklineServices = ['loader', 'producer', 'worker', 'scheduler'];

async function imageSize(name: string): Promise<number> {
  return Number((await docker(['image', 'inspect', '--format', '{{.Size}}', name])).trim());
}

interface StoredRecord {
  state: string;
  /** The container host name of the worker that ran (or runs) the job. */
  worker: string;
}

/**
 * Each job's state and worker, read as admin from the stored records on the result backend
 * (`P:result:{id}`, field `base`: `[task, queue, attempt, …, worker "host:pid", …]`); the API keeps
 * the worker internal.
 */
async function storedRecords(ids: string[]): Promise<Map<string, StoredRecord>> {
  const prefix = process.env['TASKLINE_PREFIX'] ?? 'taskline';
  const lines = await stack.redisAdminBatch('redis-backend', ids.map(id => ['HMGET', `${prefix}:result:{${id}}`, 'state', 'base']));
  const out = new Map<string, StoredRecord>();
  ids.forEach((id, i) => {
    const state = lines[2 * i] ?? '';
    let worker = '';
    try {
      const base = JSON.parse(lines[2 * i + 1] ?? '') as unknown[];
      if (typeof base[8] === 'string') worker = base[8].split(':')[0] ?? '';
    } catch {
      // no record yet
    }
    out.set(id, { state, worker });
  });
  return out;
}

/** A worker holding at least one STARTED job among `ids`, and those jobs. */
async function busyWorker(ids: string[], workers: Container[]): Promise<{ worker: Container; jobs: string[] }> {
  return waitFor('a worker with a job in flight', 60_000, async () => {
    const records = await storedRecords(ids);
    for (const worker of workers) {
      const jobs = ids.filter(id => records.get(id)?.state === 'STARTED' && records.get(id)?.worker === worker.hostname);
      if (jobs.length > 0) return { worker, jobs };
    }
    return undefined;
  }, 200);
}

const sleepJobs = (count: number, ms: number, tag: string) => Array.from({ length: count }, (_, i) => ({ task: 'sleep', data: { ms, tag: `${tag}-${i}` } }));

const scaleWorkers = (count: number): Promise<string> =>
  stack.compose(['up', '-d', '--no-build', '--no-recreate', '--scale', `worker=${count}`]);

// Probes from inside a taskline container, i.e. from the compose network, as any peer there would.
const TLS_PROBE = `
const net = require('net'), tls = require('tls'), fs = require('fs');
const host = process.env.PROBE_HOST;
const done = (s, resolve, d) => { s.destroy(); resolve(d); };
function plain() {
  return new Promise(resolve => {
    const s = net.connect(6379, host, () => s.write('PING\\r\\n'));
    let d = ''; s.on('data', x => { d += x; });
    s.on('close', () => resolve(d || 'closed, no reply')); s.on('error', e => resolve('error ' + e.code));
    setTimeout(() => done(s, resolve, d || 'no reply'), 4000);
  });
}
function secure(opts) {
  return new Promise(resolve => {
    const s = tls.connect({ host, port: 6379, servername: host, minVersion: 'TLSv1.2', ...opts }, () => s.write('PING\\r\\n'));
    let d = ''; s.on('data', x => { d += x; s.end(); });
    s.on('close', () => resolve(d || 'closed, no reply')); s.on('error', e => resolve('error ' + (e.code || e.message)));
    setTimeout(() => done(s, resolve, d || 'no reply'), 4000);
  });
}
const pem = name => fs.readFileSync(name);
(async () => {
  const ca = pem('/tls/ca.crt'), cert = pem('/tls/client.crt'), key = pem('/tls/client.key');
  const out = {
    plaintext: await plain(),
    noClientCert: await secure({ ca }),
    clientCertOfOtherCa: await secure({ ca, cert: process.env.WRONG_CERT, key: process.env.WRONG_KEY }),
    clientTrustsOtherCa: await secure({ ca: process.env.WRONG_CA, cert, key }),
    control: await secure({ ca, cert, key }),
  };
  console.log(JSON.stringify(out));
})();
`;

// From inside a taskline container, as one of its own users (the password file never leaves it):
// AUTH, then EVAL and SCRIPT LOAD, which an app user must not have; one RESP reply each.
const RESP_PROBE = `
const tls = require('tls'), fs = require('fs');
const host = process.env.PROBE_HOST;
const password = fs.readFileSync(process.env.PROBE_PASSWORD_FILE, 'utf8').replace(/\\r?\\n$/, '');
const cmd = args => '*' + args.length + '\\r\\n' + args.map(a => '$' + Buffer.byteLength(a) + '\\r\\n' + a + '\\r\\n').join('');
const s = tls.connect({ host, port: 6379, servername: host, ca: fs.readFileSync('/tls/ca.crt'), cert: fs.readFileSync('/tls/client.crt'), key: fs.readFileSync('/tls/client.key') }, () => {
  s.write(cmd(['AUTH', process.env.PROBE_USER, password]) + cmd(['EVAL', 'return 1', '0']) + cmd(['SCRIPT', 'LOAD', 'return 1']));
});
let d = '', done = false;
const report = out => { if (!done) { done = true; console.log(JSON.stringify(out)); } s.destroy(); };
s.on('data', x => {
  d += x;
  const lines = d.split('\\r\\n').filter(Boolean);
  if (lines.length >= 3) report({ auth: lines[0], eval: lines[1], scriptLoad: lines[2] });
});
s.on('error', e => report({ auth: 'error ' + (e.code || e.message) }));
setTimeout(() => report({ auth: 'no reply: ' + d.slice(0, 80) }), 5000).unref();
`;

// ---- the checks --------------------------------------------------------------------------------

const checks: Check[] = [
  {
    name: 'image: multi-stage, production deps only, non-root, HEALTHCHECK, no key or secret inside; own layers < 50 MB',
    run: async () => {
      const own = (await imageSize(image)) - (await imageSize(baseImage));
      expect(own, 'taskline layers').to.be.below(50e6);
      const config = JSON.parse(await docker(['image', 'inspect', '--format', '{{json .Config}}', image])) as { User: string; Healthcheck?: { Test?: string[] } };
      expect(config.User).to.equal('node');
      expect(config.Healthcheck?.Test?.join(' ')).to.match(/healthcheck/);
      // taskline's own steps: the rows above the base image's (docker history lists newest first).
      const rows = (name: string): Promise<string[]> => docker(['history', '--no-trunc', '--format', '{{.CreatedBy}}', name]).then(out => out.trim().split('\n'));
      const all = await rows(image);
      const history = all.slice(0, all.length - (await rows(baseImage)).length).join('\n');
      expect(history, 'own steps').to.match(/HEALTHCHECK/);
      expect(history).not.to.match(/PRIVATE KEY|PASSWORD=|TOKEN=|ca-certificates\.crt/);
      for (const s of secrets) expect(history.includes(s), 'a secret in docker history').to.equal(false);
      const listing = await docker(['run', '--rm', '--entrypoint', 'sh', image, '-c',
        'find /app /usr/local/bin \\( -name "*.key" -o -name "*.pem" -o -name "*.p12" -o -name "*.pfx" -o -name ".env" \\) -print; ' +
          'grep -rlE -- "-----BEGIN ([A-Z]+ )?PRIVATE KEY-----" /app /usr/local/bin 2>/dev/null; ' +
          'ls /app/node_modules/.pnpm | grep -E "^(typescript|mocha|chai|eslint|testcontainers)@" ; ls /app/*/src 2>/dev/null; true']);
      expect(listing.trim(), 'keys, dev dependencies or sources in the image').to.equal('');
      return `image ${mb(await imageSize(image))}, taskline's own layers ${mb(own)} over ${baseImage}`;
    },
  },
  {
    name: 'image: a tasks module mounted outside the install tree resolves @taskline/worker (the worker provides it)',
    run: async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'taskline-mounted-'));
      try {
        writeFileSync(path.join(dir, 'tasks.mjs'), "import { defineTasks } from '@taskline/worker';\nexport default defineTasks({ mounted: { run: () => 'ok' } });\n");
        chmodSync(dir, 0o755);
        chmodSync(path.join(dir, 'tasks.mjs'), 0o644);
        // What `taskline-worker start --tasks /tasks/tasks.mjs` does first: load the module through
        // the worker's resolution hook, from a directory with no node_modules of its own.
        const script = "import('@taskline/worker').then(w => w.loadTaskModule('/tasks/tasks.mjs')).then(t => console.log(JSON.stringify([...t.byName.keys()])))";
        const out = await docker(['run', '--rm', '-v', `${dir}:/tasks:ro`, '--workdir', '/app', '--entrypoint', 'node', image, '-e', script]);
        expect(JSON.parse(out.trim().split('\n').pop() ?? '[]')).to.deep.equal(['mounted']);
        return 'tasks module at /tasks/tasks.mjs loaded in the image: task "mounted"';
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  },
  {
    name: 'stack up: compose up -d, every container healthy',
    run: async () => {
      const started = Date.now();
      for (let attempt = 1; ; attempt++) {
        try {
          await stack.compose(['up', '-d', '--no-build']);
          break;
        } catch (err) {
          if (attempt === 3) throw err;
          console.log(`     compose up failed (attempt ${attempt} of 3), retrying: ${err instanceof Error ? err.message.slice(-200) : ''}`);
          await sleep(5000);
        }
      }
      const list = await stack.healthy(180_000);
      const counts = list.reduce<Record<string, number>>((acc, c) => ({ ...acc, [c.service]: (acc[c.service] ?? 0) + 1 }), {});
      expect(counts).to.deep.equal({ 'redis-broker': 1, 'redis-backend': 1, loader: 1, producer: 1, worker: 2, scheduler: 2 });
      return `${list.length} containers, up → all healthy in ${seconds(Date.now() - started)}`;
    },
  },
  {
    name: 'both Redis servers refuse plaintext, a client without a certificate and a client certificate of another CA; a client trusting another CA refuses them',
    needsStack: true,
    run: async () => {
      const [worker] = await stack.containers('worker');
      if (!worker) throw new Error('no worker');
      const wrong = (f: string): string => readFileSync(path.join(wrongCertsDir, f), 'utf8');
      const lines: string[] = [];
      for (const host of ['redis-broker', 'redis-backend']) {
        const out = JSON.parse(await nodeIn(worker, TLS_PROBE, { PROBE_HOST: host, WRONG_CA: wrong('ca.crt'), WRONG_CERT: wrong('client.crt'), WRONG_KEY: wrong('client.key') })) as Record<string, string>;
        // The control proves the probe sees replies: TLS with the right files reaches Redis, which asks for AUTH.
        expect(out['control'], `${host} control`).to.match(/^-NOAUTH/);
        for (const refused of ['plaintext', 'noClientCert', 'clientCertOfOtherCa']) {
          expect(out[refused], `${host} ${refused}`).not.to.match(/^[+-]/);
        }
        expect(out['clientTrustsOtherCa'], `${host} clientTrustsOtherCa`).to.match(/SELF_SIGNED|UNABLE_TO_VERIFY|unable to verify/i);
        lines.push(`${host}: plaintext → ${out['plaintext']}, no cert → ${out['noClientCert']}, other CA's cert → ${out['clientCertOfOtherCa']}`);
      }
      return lines.join('; ');
    },
  },
  {
    name: 'every process runs as non-root, each taskline role under its own ACL user on both Redis servers',
    needsStack: true,
    run: async () => {
      const all = await stack.containers();
      for (const c of all) {
        const uids = (await docker(['exec', c.id, 'sh', '-c', "awk '/^Uid:/ {print $2, $3, $4, $5}' /proc/1/status"])).trim().split(' ');
        const expected = c.service.startsWith('redis') ? '999' : '1000';
        expect(uids, `${c.name} PID 1 uids`).to.deep.equal([expected, expected, expected, expected]);
      }
      const byIp = new Map(all.map(c => [c.ip, c]));
      const seen: string[] = [];
      for (const redis of ['redis-broker', 'redis-backend'] as const) {
        const list = await stack.redisAdmin(redis, ['CLIENT', 'LIST']);
        const users = new Map<string, Set<string>>();
        for (const line of list.split('\n').filter(Boolean)) {
          const ip = / addr=([\d.]+):/.exec(line)?.[1] ?? '';
          const user = / user=(\S+)/.exec(line)?.[1] ?? '';
          const from = byIp.get(ip);
          if (!from || from.service.startsWith('redis')) continue; // this check's own redis-cli, health checks
          expect(user, `${redis}: a connection from ${from.name}`).to.equal(from.service);
          users.set(from.name, (users.get(from.name) ?? new Set()).add(user));
        }
        for (const c of all.filter(x => tasklineServices.includes(x.service))) {
          expect(users.has(c.name), `${c.name} holds a connection to ${redis}`).to.equal(true);
        }
        seen.push(`${redis}: ${[...users].map(([name, u]) => `${name}=${[...u].join(',')}`).join(' ')}`);
      }
      return `uids 999 (redis) / 1000 (taskline); ${seen.join('; ')}`;
    },
  },
  {
    name: "each worker's /readyz is ready, and the image's own HEALTHCHECK passes in every taskline container",
    needsStack: true,
    run: async () => {
      const workers = await stack.containers('worker');
      expect(workers).to.have.length(2);
      for (const w of workers) {
        const body = await nodeIn(w, "fetch('http://127.0.0.1:9100/readyz').then(async r => console.log(r.status, await r.text()))");
        expect(body, w.name).to.match(/^200 /);
        expect((JSON.parse(body.slice(4)) as { ok: boolean }).ok, w.name).to.equal(true);
      }
      for (const c of (await stack.containers()).filter(x => tasklineServices.includes(x.service))) {
        await docker(['exec', c.id, 'node', '/app/healthcheck.mjs']);
      }
    },
  },
  {
    name: 'jobs enqueued through the HTTPS API complete (and the API refuses a request without the token)',
    needsStack: true,
    run: async () => {
      expect((await api.request('POST', '/api/v1/jobs', { task: 'add', data: { a: 1, b: 2 } }, false)).status).to.equal(401);
      const ids = await api.enqueue(Array.from({ length: 40 }, (_, i) => ({ task: 'add', data: { a: i, b: 1000 } })));
      const started = Date.now();
      const records = await api.settle(ids, 60_000);
      ids.forEach((id, i) => {
        expect(records.get(id)?.state, id).to.equal('SUCCESS');
        expect(records.get(id)?.result, id).to.equal(i + 1000);
      });
      return `40 of 40 SUCCESS with the right result in ${seconds(Date.now() - started)}`;
    },
  },
  {
    name: "the API speaks HTTPS only: a certificate of the deployment's CA naming the address, TLS 1.2+; plain HTTP gets no answer; /healthz alone is open and says only ok",
    needsStack: true,
    run: async () => {
      const [host = '', port = ''] = env('PRODUCER_PORT').split(':');
      const handshake = await new Promise<{ protocol: string; subject: string }>((resolve, reject) => {
        const socket = tlsConnect({ host, port: Number(port), ca: readFileSync(path.join(certsDir, 'ca.crt')), minVersion: 'TLSv1.2' }, () => {
          const result = { protocol: socket.getProtocol() ?? '', subject: socket.getPeerCertificate().subjectaltname ?? '' };
          socket.end();
          resolve(result);
        });
        socket.once('error', reject);
        socket.setTimeout(5000, () => socket.destroy(new Error('no TLS handshake within 5 s')));
      });
      expect(handshake.protocol).to.match(/^TLSv1\.[23]$/);
      const plain = await new Promise<string>(resolve => {
        const socket = netConnect(Number(port), host, () => socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'));
        let got = '';
        socket.on('data', chunk => (got += chunk.toString('latin1')));
        socket.on('close', () => resolve(got));
        socket.on('error', () => undefined);
        socket.setTimeout(4000, () => socket.destroy());
      });
      expect(plain, 'an answer to plain HTTP').not.to.match(/^HTTP\/1\.1 [23]/);
      const healthz = await api.request('GET', '/healthz', undefined, false);
      expect(healthz).to.deep.equal({ status: 200, json: { ok: true } });
      expect((await api.request('GET', '/api/v1/health', undefined, false)).status, '/api/v1/health without the token').to.equal(401);
      expect((await api.request('GET', '/metrics', undefined, false)).status, '/metrics without the token').to.equal(401);
      return `${handshake.protocol}, certificate for ${handshake.subject}; plain HTTP → ${plain ? JSON.stringify(plain.slice(0, 40)) : 'connection closed, no answer'}; anonymous /healthz → {"ok":true}, /api/v1/health and /metrics → 401`;
    },
  },
  {
    name: 'the loader keeps every script on both servers; the app users run EVALSHA only (EVAL, SCRIPT LOAD refused)',
    needsStack: true,
    run: async () => {
      const loader = await stack.one('loader');
      const ready = JSON.parse(await nodeIn(loader, "fetch('http://127.0.0.1:9100/readyz').then(async r => console.log(await r.text()))")) as { ok: boolean };
      expect(ready.ok, 'loader /readyz').to.equal(true);
      const check = await docker(['exec', loader.id, 'taskline-worker', 'scripts', 'check']);
      expect(check, 'scripts check').not.to.match(/missing: [1-9]/);
      const refusals: string[] = [];
      for (const service of ['producer', 'worker', 'scheduler']) {
        const c = await stack.one(service);
        for (const host of ['redis-broker', 'redis-backend']) {
          const out = JSON.parse(await nodeIn(c, RESP_PROBE, { PROBE_HOST: host, PROBE_USER: service, PROBE_PASSWORD_FILE: `/run/secrets/redis_${service}_password` })) as Record<string, string>;
          expect(out['auth'], `${service}@${host} AUTH`).to.equal('+OK');
          expect(out['eval'], `${service}@${host} EVAL`).to.match(/^-NOPERM/);
          expect(out['scriptLoad'], `${service}@${host} SCRIPT LOAD`).to.match(/^-NOPERM/);
        }
        refusals.push(service);
      }
      return `${check.trim().split('\n').join('; ')}; EVAL and SCRIPT LOAD refused (NOPERM) for ${refusals.join(', ')} on both servers`;
    },
  },
  {
    name: 'SCRIPT FLUSH on both servers: the loader puts every script back within its interval, and jobs keep completing',
    needsStack: true,
    run: async () => {
      const loader = await stack.one('loader');
      const readyz = async (): Promise<boolean> =>
        (JSON.parse(await nodeIn(loader, "fetch('http://127.0.0.1:9100/readyz').then(async r => console.log(await r.text()))")) as { ok: boolean }).ok;
      const flushed = Date.now();
      await stack.redisAdmin('redis-broker', ['SCRIPT', 'FLUSH']);
      await stack.redisAdmin('redis-backend', ['SCRIPT', 'FLUSH']);
      const ids = await api.enqueue(Array.from({ length: 20 }, (_, i) => ({ task: 'add', data: { a: i, b: 2000 } })));
      const records = await api.settle(ids, 60_000);
      ids.forEach((id, i) => expect(records.get(id)?.result, id).to.equal(i + 2000));
      const backIn = Date.now() - flushed;
      expect(await readyz(), 'loader /readyz after the reload').to.equal(true);
      return `20 of 20 SUCCESS enqueued right after the flush, the last ${seconds(backIn)} after it`;
    },
  },
  {
    name: 'up --scale worker=4 spreads jobs over 4 workers',
    needsStack: true,
    run: async () => {
      await scaleWorkers(4);
      const workers = await stack.healthy(120_000, 'worker', 4);
      const ids = await api.enqueue(sleepJobs(80, 300, 'scale'));
      const records = await api.settle(ids, 90_000);
      for (const r of records.values()) expect(r.state).to.equal('SUCCESS');
      const perWorker = new Map(workers.map(w => [w.hostname, 0]));
      for (const r of (await storedRecords(ids)).values()) perWorker.set(r.worker, (perWorker.get(r.worker) ?? 0) + 1);
      expect(perWorker.size, 'only the 4 workers ran jobs').to.equal(4);
      for (const [host, count] of perWorker) expect(count, `worker ${host}`).to.be.above(0);
      return `80 jobs: ${[...perWorker.values()].join(' / ')} per worker`;
    },
  },
  {
    name: 'SIGKILL of a worker container mid-load loses no job (its jobs are redelivered)',
    needsStack: true,
    run: async () => {
      const workers = await stack.healthy(60_000, 'worker', 4);
      const ids = await api.enqueue(sleepJobs(60, 1500, 'kill'));
      const { worker, jobs } = await busyWorker(ids, workers);
      await docker(['kill', '--signal', 'KILL', worker.id]);
      const killedAt = Date.now();
      const records = await api.settle(ids, 120_000);
      const lost = ids.filter(id => records.get(id)?.state !== 'SUCCESS');
      expect(lost, 'jobs not SUCCESS').to.deep.equal([]);
      const stored = await storedRecords(jobs);
      const moved = jobs.filter(id => stored.get(id)?.worker !== worker.hostname);
      expect(moved, 'jobs in flight on the killed worker finished elsewhere').to.deep.equal(jobs);
      const redelivered = Math.max(...jobs.map(id => Date.parse((records.get(id) as JobRecord).finishedAt ?? '')));
      await scaleWorkers(4); // whatever the restart policy did, four again
      await stack.healthy(120_000, 'worker', 4);
      return `killed ${worker.name} with ${jobs.length} in flight; 60 of 60 SUCCESS, its ${jobs.length} redelivered and done ${seconds(redelivered - killedAt)} after the kill`;
    },
  },
  {
    name: 'docker stop of a worker drains it: in-flight jobs finish there, exit 0 within the grace',
    needsStack: true,
    run: async () => {
      const workers = await stack.healthy(60_000, 'worker', 4);
      const ids = await api.enqueue(sleepJobs(40, 4000, 'drain'));
      const { worker, jobs } = await busyWorker(ids, workers);
      const started = Date.now();
      await docker(['stop', '-t', '45', worker.id], { timeoutMs: 60_000 });
      const stoppedIn = Date.now() - started;
      const [after] = await inspect([worker.id]);
      expect(after?.exitCode, 'exit code').to.equal(0);
      expect(stoppedIn, 'stop time').to.be.below(graceMs);
      const records = await api.settle(ids, 120_000);
      const stored = await storedRecords(jobs);
      for (const id of jobs) {
        expect(records.get(id)?.state, id).to.equal('SUCCESS');
        expect(stored.get(id)?.worker, `${id} finished on the stopped worker`).to.equal(worker.hostname);
        expect(records.get(id)?.attempt, `${id} ran once`).to.equal(1);
      }
      expect(await logsOf(worker.id)).to.match(/Worker draining/).and.match(/"outcome":"drained"/);
      await docker(['start', worker.id]);
      await stack.healthy(120_000, 'worker', 4);
      return `${worker.name} stopped in ${seconds(stoppedIn)} (grace ${seconds(graceMs)}), exit 0, its ${jobs.length} in-flight jobs finished there`;
    },
  },
  {
    name: 'recreating the broker container on its AOF volume loses no acknowledged job; the other processes reconnect without a restart',
    needsStack: true,
    run: async () => {
      await stack.compose(['stop', 'worker'], 120_000);
      const ids = await api.enqueue(Array.from({ length: 100 }, (_, i) => ({ task: 'add', data: { a: i, b: 1 } })));
      const before = await stack.containers();
      const oldBroker = await stack.one('redis-broker');
      await stack.compose(['up', '-d', '--no-build', '--no-deps', '--force-recreate', 'redis-broker']);
      const newBroker = (await stack.healthy(120_000, 'redis-broker', 1))[0] as Container;
      expect(newBroker.id, 'a new broker container').not.to.equal(oldBroker.id);
      await stack.compose(['start', 'worker'], 120_000);
      const records = await api.settle(ids, 120_000);
      expect([...records.values()].filter(r => r.state !== 'SUCCESS').length, 'jobs not SUCCESS').to.equal(0);
      const after = await stack.healthy(120_000);
      for (const c of after.filter(x => ['loader', 'producer', 'scheduler'].includes(x.service))) {
        const old = before.find(b => b.id === c.id);
        expect(old?.startedAt, `${c.name} was not restarted`).to.equal(c.startedAt);
      }
      return `100 jobs acknowledged while no worker ran, broker container replaced (same volume), 100 of 100 SUCCESS; the loader reloaded the scripts; loader, producer and schedulers reconnected in place`;
    },
  },
  {
    name: "the beat's two replicas: one leader, each tick fired once",
    needsStack: true,
    run: async () => {
      const schedulers = await stack.containers('scheduler');
      expect(schedulers).to.have.length(2);
      const leaders = await waitFor('exactly one beat leader', 30_000, async () => {
        const states = await Promise.all(schedulers.map(s => nodeIn(s, "fetch('http://127.0.0.1:9100/readyz').then(async r => console.log(await r.text()))")));
        const count = states.filter(s => (JSON.parse(s) as { leader: boolean }).leader).length;
        return count === 1 ? count : undefined;
      });
      const ticks = async (): Promise<number[]> =>
        // Records are `P:result:{<id>}`, the beat's ids `repeat:beat:<schedule>:<ms>` ({ } are literal in a SCAN glob).
        (await stack.redisAdmin('redis-backend', ['--scan', '--pattern', 'taskline:result:{repeat:beat:tick:*}']))
          .split('\n')
          .map(k => Number(/:(\d+)\}$/.exec(k)?.[1]))
          .filter(n => Number.isFinite(n) && n > 0)
          .sort((a, b) => a - b);
      const first = await ticks();
      await sleep(12_000);
      const all = await ticks();
      const fresh = all.filter(t => !first.includes(t));
      expect(fresh.length, 'ticks in 12 s of an every-2s schedule').to.be.within(5, 7);
      const gaps = all.slice(1).map((t, i) => t - (all[i] as number));
      expect(gaps.filter(g => g < 2000), 'two ticks in one 2 s slot').to.deep.equal([]);
      return `${leaders} leader; ${fresh.length} ticks in 12 s, ${all.length} in all, no two in one slot`;
    },
  },
  {
    name: 'no container holds a CA private key; each mounts only its own TLS files',
    needsStack: true,
    run: async () => {
      const all = await stack.containers(undefined, true);
      const caKeys = findCaKeys(certsDir).map(f => readFileSync(f, 'utf8'));
      expect(caKeys.length, 'the test knows the CA key it must not find').to.be.above(0);
      for (const c of all) {
        const tls = c.mounts.filter(m => m.Destination.startsWith('/tls')).map(m => m.Destination).sort();
        expect(tls, c.name).to.deep.equal(c.service.startsWith('redis') ? ['/tls/ca.crt', '/tls/server.crt', '/tls/server.key'] : ['/tls/ca.crt', '/tls/client.crt', '/tls/client.key']);
        for (const m of c.mounts.filter(x => x.Type === 'bind')) {
          const st = statSync(m.Source);
          expect(st.isFile(), `${c.name} mounts a directory ${m.Destination}`).to.equal(true);
          expect(caKeys.includes(readFileSync(m.Source, 'utf8')), `${c.name}: ${m.Destination} is a CA key`).to.equal(false);
        }
        if (c.running) {
          const found = await docker(['exec', c.id, 'sh', '-c', 'find / \\( -path /proc -o -path /sys \\) -prune -o -type f -name "*ca*.key" -print 2>/dev/null; true']);
          expect(found.trim(), `${c.name} holds a CA key file`).to.equal('');
        }
      }
      return `${all.length} containers checked`;
    },
  },
  ...badInputChecks(stack),
  {
    name: 'no secret or private key appears in any container log',
    needsStack: true,
    run: async () => {
      const all = await stack.containers(undefined, true);
      for (const c of all) {
        const logs = await logsOf(c.id);
        for (const s of secrets) expect(logs.includes(s), `a secret in the log of ${c.name}`).to.equal(false);
        expect(/-----BEGIN ([A-Z]+ )?PRIVATE KEY-----/.test(logs), `a private key in the log of ${c.name}`).to.equal(false);
      }
      return `${all.length} logs, ${secrets.length} secrets and any PEM private key looked for`;
    },
  },
  {
    name: 'down -v leaves no container, network or volume of the project',
    run: async () => {
      await stack.compose(['down', '-v', '--remove-orphans', '-t', '10'], 180_000);
      const label = `label=com.docker.compose.project=${stack.project}`;
      const left = [
        ...(await docker(['ps', '-aq', '--filter', label])).split('\n'),
        ...(await docker(['network', 'ls', '-q', '--filter', label])).split('\n'),
        ...(await docker(['volume', 'ls', '-q', '--filter', label])).split('\n'),
      ].filter(Boolean);
      expect(left).to.deep.equal([]);
    },
  },
];


function findCaKeys(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...findCaKeys(full));
    else if (/(^|-)ca\.key$/.test(entry.name)) out.push(full);
  }
  return out;
}

try {
  process.exitCode = (await runChecks(checks)) ? 0 : 1;
} finally {
  api.close();
}
