import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { parse } from 'yaml';

// The compose files promise an operator a TLS-only, secret-free, health-checked topology;
// these tests read them the way docker compose does and hold them to it.

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FILES = ['compose/docker-compose.prod.yml', 'compose/docker-compose.dev.yml'];

interface Service {
  image?: string;
  build?: unknown;
  command?: string | string[];
  user?: string;
  environment?: Record<string, string> | string[];
  secrets?: Array<string | { source: string }>;
  healthcheck?: { test?: string | string[] };
  depends_on?: Record<string, { condition?: string }> | string[];
  deploy?: { replicas?: number };
  ports?: string[];
  container_name?: string;
  restart?: string;
}
interface ComposeFile {
  services: Record<string, Service>;
  secrets?: Record<string, { file?: string; external?: boolean; environment?: string }>;
}

function load(file: string): { text: string; compose: ComposeFile } {
  const text = readFileSync(path.join(root, file), 'utf8');
  return { text, compose: parse(text, { merge: true }) as ComposeFile };
}

function commandLine(service: Service): string {
  return Array.isArray(service.command) ? service.command.join(' ') : (service.command ?? '');
}

function environment(service: Service): Record<string, string> {
  if (!service.environment) return {};
  if (!Array.isArray(service.environment)) return service.environment;
  return Object.fromEntries(service.environment.map(entry => [entry.split('=')[0] ?? '', entry.split('=').slice(1).join('=')]));
}

function secretNames(service: Service): string[] {
  return (service.secrets ?? []).map(s => (typeof s === 'string' ? s : s.source));
}

// The Redis image is a setting (TASKLINE_REDIS_IMAGE); what makes a service a Redis server is its command.
const isRedis = (service: Service): boolean => commandLine(service).startsWith('redis-server');

/** The value of `--flag` in a command line (quoted values kept whole). */
function flag(command: string, name: string): string | undefined {
  const match = new RegExp(`${name}\\s+("[^"]*"|\\S+)`).exec(command);
  return match?.[1]?.replace(/^"|"$/g, '');
}

function healthcheckPort(service: Service): string | undefined {
  const test = Array.isArray(service.healthcheck?.test) ? service.healthcheck.test.join(' ') : (service.healthcheck?.test ?? '');
  return /127\.0\.0\.1:(\d+)\//.exec(test)?.[1];
}

for (const file of FILES) {
  describe(`compose: ${file}`, () => {
    const { text, compose } = load(file);
    const services = Object.entries(compose.services);
    const redis = services.filter(([, s]) => isRedis(s));
    const ours = services.filter(([, s]) => !isRedis(s));

    it('has a Redis broker, a separate Redis result backend, the producer, the worker and the scheduler', () => {
      expect(Object.keys(compose.services)).to.include.members(['redis-broker', 'redis-backend', 'producer', 'worker', 'scheduler']);
      expect(redis.map(([name]) => name).sort()).to.deep.equal(['redis-backend', 'redis-broker']);
      const env = environment(compose.services['worker'] as Service);
      expect(env['REDIS_HOST']).to.equal('redis-broker');
      expect(env['RESULT_REDIS_HOST']).to.equal('redis-backend');
    });

    it('runs Redis TLS-only: plaintext port 0, TLS 1.2-1.3, CA/cert/key mounted read-only, AOF, noeviction, ACL from a secret', () => {
      for (const [name, service] of redis) {
        const command = commandLine(service);
        expect(flag(command, '--port'), `${name} --port`).to.equal('0');
        expect(flag(command, '--tls-port'), `${name} --tls-port`).to.match(/^\d+$/);
        expect(flag(command, '--tls-protocols'), `${name} --tls-protocols`).to.equal('TLSv1.2 TLSv1.3');
        for (const f of ['--tls-cert-file', '--tls-key-file', '--tls-ca-cert-file']) {
          expect(flag(command, f), `${name} ${f}`).to.match(/^\/tls\//);
        }
        expect(flag(command, '--appendonly'), `${name} --appendonly`).to.equal('yes');
        expect(flag(command, '--maxmemory-policy'), `${name} --maxmemory-policy`).to.equal('noeviction');
        const aclfile = flag(command, '--aclfile') ?? '';
        expect(aclfile, `${name} --aclfile`).to.match(/^\/run\/secrets\//);
        expect(secretNames(service), `${name} secrets`).to.include(path.basename(aclfile));
        expect(command, `${name} command`).not.to.match(/requirepass|masterauth/);
      }
    });

    it('mounts each service only the TLS files it needs, read-only, file by file: never the certificate directory or a CA key', () => {
      // Security finding 1 (issue 11): the CA's private key must never reach a container.
      const tlsMounts = (service: Service): Record<string, string> => {
        const mounts: Record<string, string> = {};
        for (const volume of (service as { volumes?: string[] }).volumes ?? []) {
          // SOURCE:TARGET:MODE, where SOURCE may hold `${VAR:-default}`: split from the right.
          const parts = volume.split(':');
          const mode = parts.length >= 3 ? parts.pop() : undefined;
          const target = parts.pop() ?? '';
          const source = parts.join(':');
          if (!target.startsWith('/tls')) continue;
          expect(mode, `${volume} read-only`).to.equal('ro');
          mounts[target] = source;
        }
        return mounts;
      };
      for (const [name, service] of services) {
        const mounts = tlsMounts(service);
        for (const [target, source] of Object.entries(mounts)) {
          expect(path.basename(source), `${name}: ${target} comes from a file of the same name`).to.equal(path.basename(target));
          expect(source, `${name} mounts no CA key`).not.to.match(/ca\.key|ca-private/);
        }
        const expected = isRedis(service)
          ? ['/tls/ca.crt', '/tls/server.crt', '/tls/server.key']
          : file.includes('prod')
            ? ['/tls/ca.crt', '/tls/client.crt', '/tls/client.key']
            : ['/tls/ca.crt'];
        expect(Object.keys(mounts).sort(), `${name} TLS mounts`).to.deep.equal(expected);
      }
    });

    it('gives every service a health check, Redis by redis-cli --tls ping, ours by their HTTP(S) endpoints', () => {
      // An HTTPS API is probed by the image's own script (docker/healthcheck.mjs), which finds the
      // port in the command line and pins the certificate to PRODUCER_API_TLS_CERT.
      const https = (service: Service): boolean => Boolean(environment(service)['PRODUCER_API_TLS_CERT']);
      for (const [name, service] of services) {
        const test = service.healthcheck?.test;
        expect(test, `${name} healthcheck`).to.exist;
        const line = Array.isArray(test) ? test.join(' ') : String(test);
        if (isRedis(service)) {
          expect(line, name).to.match(/redis-cli --tls/).and.match(/ping/).and.match(/REDISCLI_AUTH="\$\$\(cat \/run\/secrets\//);
        } else if (https(service)) {
          expect(line, name).to.equal('CMD node /app/healthcheck.mjs');
        } else {
          expect(line, name).to.match(/fetch\('http:\/\/127\.0\.0\.1:\d+\/(readyz|healthz)'\)/);
        }
      }
      // The health checks probe the ports the processes are told to listen on.
      const producer = compose.services['producer'] as Service;
      if (!https(producer)) expect(healthcheckPort(producer)).to.equal(flag(commandLine(producer), '--port'));
      for (const name of ['worker', 'scheduler', 'loader']) {
        const service = compose.services[name] as Service;
        expect(healthcheckPort(service), name).to.equal(flag(commandLine(service), '--metrics-port'));
      }
    });

    it('starts taskline only once both Redis servers are healthy, and all but the loader once the scripts are loaded', () => {
      for (const [name, service] of ours) {
        const depends = service.depends_on as Record<string, { condition?: string }>;
        expect(depends?.['redis-broker']?.condition, `${name} → broker`).to.equal('service_healthy');
        expect(depends?.['redis-backend']?.condition, `${name} → backend`).to.equal('service_healthy');
        if (name !== 'loader') expect(depends?.['loader']?.condition, `${name} → loader`).to.equal('service_healthy');
      }
    });

    it('runs the script loader as the loader user, and every app process with REDIS_SCRIPTS=preloaded', () => {
      const loader = compose.services['loader'] as Service;
      expect(commandLine(loader)).to.match(/^taskline-\w+ scripts load --watch --metrics-port \d+$/);
      expect(environment(loader)['REDIS_USERNAME']).to.equal('loader');
      expect(environment(loader)['RESULT_REDIS_USERNAME']).to.equal('loader');
      for (const name of ['producer', 'worker', 'scheduler']) {
        expect(environment(compose.services[name] as Service)['REDIS_SCRIPTS'], name).to.equal('preloaded');
      }
    });

    it('writes no secret literal: passwords and tokens only as *_FILE paths to declared file secrets', () => {
      // No `SOMETHING_PASSWORD: value` / `TOKEN=value` anywhere, unless the value is a /run/secrets path.
      const literal = /^[ \t-]*[A-Z0-9_]*(PASSWORD|TOKEN|SECRET)[A-Z0-9_]*[ \t]*[:=][ \t]*(?!\/run\/secrets\/)["']?[^\s"'#]+/m;
      // Report the key only: the value may be a real secret and must not reach test output.
      expect(literal.exec(text)?.[0]?.split(/[:=]/)[0]?.trim(), 'secret literal under this key').to.equal(undefined);
      expect(text).not.to.match(/REDISCLI_AUTH=(?!"\$\$\(cat \/run\/secrets\/)/);
      expect(text).not.to.match(/requirepass|--user \w+ --pass|rediss?:\/\/[^@\s]*:[^@\s]*@/);
      const declared = compose.secrets ?? {};
      expect(Object.keys(declared)).not.to.be.empty;
      for (const [name, secret] of Object.entries(declared)) {
        expect(secret.file, `secret ${name} is a file`).to.be.a('string');
        expect(secret.environment, `secret ${name} must not come from an env var`).to.equal(undefined);
      }
      for (const [name, service] of services) {
        for (const [key, value] of Object.entries(environment(service))) {
          if (/PASSWORD|TOKEN|SECRET/.test(key)) {
            expect(key, `${name}: ${key}`).to.match(/_FILE$/);
            const m = /^\/run\/secrets\/([\w.-]+)$/.exec(value);
            expect(m, `${name}: ${key}=${value} points at /run/secrets`).to.not.equal(null);
            expect(secretNames(service), `${name} mounts ${m?.[1]}`).to.include(m?.[1]);
            expect(declared, `secret ${m?.[1]} declared`).to.have.property(m?.[1] ?? '');
          }
        }
        for (const used of secretNames(service)) expect(declared, `${name} uses undeclared secret ${used}`).to.have.property(used);
      }
    });

    it('runs every container as a non-root user, and the image as USER node', () => {
      for (const [name, service] of services) {
        expect(service.user, `${name} user`).to.be.a('string');
        expect(service.user, `${name} user`).not.to.match(/^(root|0)(:|$)/);
      }
      const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
      const finalStage = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '));
      expect(finalStage).to.match(/^USER node$/m);
    });

    it('restarts a taskline process that exits non-zero (a start error waiting cannot fix exits within seconds)', () => {
      for (const [name, service] of ours) {
        expect(service.restart, `${name} restart policy`).to.be.oneOf(['on-failure', 'unless-stopped', 'always']);
      }
    });

    it('lets the worker scale: replicas set, no container_name, no host port', () => {
      const worker = compose.services['worker'] as Service;
      expect(worker.deploy?.replicas).to.be.a('number');
      expect(worker.container_name).to.equal(undefined);
      expect(worker.ports).to.equal(undefined);
    });

    if (file.includes('prod')) {
      it('production: two scheduler replicas, client certificates required, Redis not published on the host, the API on HTTPS', () => {
        expect(compose.services['scheduler']?.deploy?.replicas).to.equal(2);
        const producer = environment(compose.services['producer'] as Service);
        expect(producer['PRODUCER_API_TLS_CERT'], 'PRODUCER_API_TLS_CERT').to.match(/^\/run\/secrets\//);
        expect(producer['PRODUCER_API_TLS_KEY'], 'PRODUCER_API_TLS_KEY').to.match(/^\/run\/secrets\//);
        expect(producer['PRODUCER_API_ALLOW_HTTP'], 'PRODUCER_API_ALLOW_HTTP').to.equal(undefined);
        for (const [name, service] of redis) {
          expect(flag(commandLine(service), '--tls-auth-clients'), name).to.equal('yes');
          expect(service.ports, `${name} ports`).to.equal(undefined);
          expect(environment(compose.services['worker'] as Service)['TASKLINE_ENV']).to.equal('production');
        }
      });
    }

    it('validates with docker-compose config -q', async function () {
      const binary = await findDockerCompose();
      if (!binary) {
        this.skip(); // docker-compose is not installed here (apt-get install docker-compose); the YAML checks above still ran
      }
      const result = await run(binary as string, ['-f', path.join(root, file), 'config', '-q']);
      expect(result.stderr.trim(), result.stderr).to.equal('');
      expect(result.code).to.equal(0);
    });
  });
}

describe('Dockerfile', () => {
  const dockerfile = readFileSync(path.join(root, 'Dockerfile'), 'utf8');
  const stages = dockerfile.split(/^FROM /m).slice(1);

  it('builds with the legacy builder as with BuildKit: no # syntax= line, no RUN --mount', () => {
    expect(dockerfile).not.to.match(/^#\s*syntax\s*=/im);
    expect(dockerfile).not.to.match(/--mount=/);
  });

  it('takes its base image as a build argument, the official node:20-slim by default, for every stage', () => {
    expect(dockerfile).to.match(/^ARG NODE_IMAGE=node:20-slim$/m);
    expect(stages.length).to.be.greaterThan(1);
    for (const stage of stages) expect(stage.split('\n')[0]).to.match(/^\$\{NODE_IMAGE\} AS \w+/);
  });

  it('runs as node with a HEALTHCHECK, and copies no key, certificate bundle or secret into the image', () => {
    const runtime = stages.at(-1) ?? '';
    expect(runtime).to.match(/^USER node$/m);
    expect(runtime).to.match(/^HEALTHCHECK .*CMD /m);
    expect(dockerfile).not.to.match(/^(COPY|ADD)\b.*(\.key|\.pem|ca-certificates|secrets|certs\/)/im);
    expect(dockerfile).not.to.match(/^(ARG|ENV)\b.*(PASSWORD|TOKEN|SECRET)/im);
    const ignore = readFileSync(path.join(root, '.dockerignore'), 'utf8');
    for (const pattern of ['**/*.key', '**/*.pem', '**/secrets', 'certs/dev', 'certs/prod']) expect(ignore).to.include(pattern);
  });
});

function run(cmd: string, args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise(resolve => {
    execFile(cmd, args, { timeout: 30_000, cwd: root }, (error, _stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stderr });
    });
  });
}

async function findDockerCompose(): Promise<string | null> {
  const probe = await run('sh', ['-c', 'command -v docker-compose']);
  return probe.code === 0 ? 'docker-compose' : null;
}
