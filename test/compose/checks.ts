// The checks of pnpm test:compose against the running production compose stack. Run by
// scripts/test-compose.sh (which starts the engine, makes the images, certificates and secrets,
// and tears everything down); prints one line per check and a summary line, exits 1 on a failure.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { Api, workerHost, type JobRecord } from './api.js';
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
const api = new Api(`http://${env('PRODUCER_PORT')}`, readFileSync(path.join(secretsDir, 'producer_api_token'), 'utf8').trim());
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

const tasklineServices = ['producer', 'worker', 'scheduler'];

async function imageSize(name: string): Promise<number> {
  return Number((await docker(['image', 'inspect', '--format', '{{.Size}}', name])).trim());
}

/** A worker holding at least one STARTED job among `ids`, and those jobs. */
async function busyWorker(ids: string[], workers: Container[]): Promise<{ worker: Container; jobs: string[] }> {
  return waitFor('a worker with a job in flight', 60_000, async () => {
    const records = await api.records(ids);
    for (const worker of workers) {
      const jobs = ids.filter(id => records.get(id)?.state === 'STARTED' && workerHost(records.get(id)) === worker.hostname);
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
      expect(counts).to.deep.equal({ 'redis-broker': 1, 'redis-backend': 1, producer: 1, worker: 2, scheduler: 2 });
      return `7 containers, up → all healthy in ${seconds(Date.now() - started)}`;
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
    name: 'jobs enqueued through the HTTP API complete (and the API refuses a request without the token)',
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
    name: 'up --scale worker=4 spreads jobs over 4 workers',
    needsStack: true,
    run: async () => {
      await scaleWorkers(4);
      const workers = await stack.healthy(120_000, 'worker', 4);
      const ids = await api.enqueue(sleepJobs(80, 300, 'scale'));
      const records = await api.settle(ids, 90_000);
      const perWorker = new Map(workers.map(w => [w.hostname, 0]));
      for (const r of records.values()) {
        expect(r.state).to.equal('SUCCESS');
        perWorker.set(workerHost(r), (perWorker.get(workerHost(r)) ?? 0) + 1);
      }
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
      const moved = jobs.filter(id => workerHost(records.get(id)) !== worker.hostname);
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
      for (const id of jobs) {
        expect(records.get(id)?.state, id).to.equal('SUCCESS');
        expect(workerHost(records.get(id)), `${id} finished on the stopped worker`).to.equal(worker.hostname);
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
      for (const c of after.filter(x => x.service === 'producer' || x.service === 'scheduler')) {
        const old = before.find(b => b.id === c.id);
        expect(old?.startedAt, `${c.name} was not restarted`).to.equal(c.startedAt);
      }
      return `100 jobs acknowledged while no worker ran, broker container replaced (same volume), 100 of 100 SUCCESS; producer and schedulers reconnected in place`;
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
        (await stack.redisAdmin('redis-backend', ['--scan', '--pattern', 'taskline:result:repeat:beat:tick:*']))
          .split('\n')
          .map(k => Number(/:(\d+)$/.exec(k)?.[1]))
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
    name: 'no secret appears in any container log',
    needsStack: true,
    run: async () => {
      const all = await stack.containers(undefined, true);
      for (const c of all) {
        const logs = await logsOf(c.id);
        for (const s of secrets) expect(logs.includes(s), `a secret in the log of ${c.name}`).to.equal(false);
      }
      return `${all.length} logs, ${secrets.length} secrets looked for`;
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

process.exitCode = (await runChecks(checks)) ? 0 : 1;
