import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { CHECK_EXPIRY_SCRIPT, GENERATE_CERTS_SCRIPT } from './harness/index.js';

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: readonly string[]): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: 20_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

const generate = (...args: string[]): Promise<RunResult> => run('bash', [GENERATE_CERTS_SCRIPT, ...args]);
const checkExpiry = (...args: string[]): Promise<RunResult> => run('bash', [CHECK_EXPIRY_SCRIPT, ...args]);
const openssl = (...args: string[]): Promise<RunResult> => run('openssl', args);

async function certText(file: string): Promise<string> {
  const result = await openssl('x509', '-in', file, '-noout', '-text');
  expect(result.code, result.stderr).to.equal(0);
  return result.stdout;
}

describe('certs/generate-certs.sh', function () {
  let root: string;
  let dev: string; // one default RSA set, made once

  before(async function () {
    root = await mkdtemp(path.join(os.tmpdir(), 'taskline-certs-test-'));
    dev = path.join(root, 'dev');
    const result = await generate('--out', dev, '--san', 'DNS:redis.internal', '--san', 'IP:10.1.2.3');
    expect(result.code, result.stderr).to.equal(0);
  });

  after(async function () {
    await rm(root, { recursive: true, force: true });
  });

  it('makes server and client certificates that verify against the CA', async function () {
    const result = await openssl('verify', '-CAfile', path.join(dev, 'ca.crt'),
      path.join(dev, 'server.crt'), path.join(dev, 'client.crt'));
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.include('server.crt: OK').and.to.include('client.crt: OK');
  });

  it('puts the default and requested SANs and the right key usages in the certificates', async function () {
    const server = await certText(path.join(dev, 'server.crt'));
    for (const name of ['DNS:localhost', 'IP Address:127.0.0.1', 'IP Address:0:0:0:0:0:0:0:1',
      'DNS:redis-broker', 'DNS:redis-backend', 'DNS:broker', 'DNS:backend',
      'DNS:redis.internal', 'IP Address:10.1.2.3']) {
      expect(server).to.include(name);
    }
    // clientAuth too: Redis presents its server certificate as a client one (replication, the
    // compose health check), so a Redis container never needs the taskline client key.
    expect(server).to.include('TLS Web Server Authentication').and.include('TLS Web Client Authentication');
    expect(server).to.match(/Public-Key: \(2048 bit\)/);

    const client = await certText(path.join(dev, 'client.crt'));
    expect(client).to.include('TLS Web Client Authentication').and.to.include('CN = taskline-client').and.not.include('TLS Web Server Authentication');

    const ca = await certText(path.join(dev, 'ca.crt'));
    expect(ca).to.match(/Basic Constraints: critical\s+CA:TRUE/);
  });

  it('writes key files with mode 600', async function () {
    for (const key of ['ca-private/ca.key', 'server.key', 'client.key']) {
      const { mode } = await stat(path.join(dev, key));
      expect(mode & 0o777, key).to.equal(0o600);
    }
  });

  it('keeps the CA key out of the directory servers and containers mount (finding 1)', async function () {
    // Everything a server or a client needs is in --out; the CA key is not, so mounting --out
    // (or any file in it) never hands a container the key that signs certificates.
    const names = await readdir(dev);
    expect(names.filter(name => name.endsWith('.key')).sort()).to.deep.equal(['client.key', 'server.key']);
    expect((await stat(path.join(dev, 'ca-private'))).mode & 0o777, 'ca-private/ mode').to.equal(0o700);
    const key = await openssl('pkey', '-in', path.join(dev, 'ca-private', 'ca.key'), '-pubout');
    const cert = await openssl('x509', '-in', path.join(dev, 'ca.crt'), '-noout', '-pubkey');
    expect(key.stdout, 'ca-private/ca.key belongs to ca.crt').to.equal(cert.stdout).and.include('PUBLIC KEY');

    const elsewhere = path.join(root, 'ca-elsewhere');
    const keys = path.join(root, 'signing-machine');
    const result = await generate('--out', elsewhere, '--ca-dir', keys, '--key-type', 'ec');
    expect(result.code, result.stderr).to.equal(0);
    expect((await readdir(elsewhere)).filter(name => name.includes('ca.key'))).to.deep.equal([]);
    expect((await stat(path.join(keys, 'ca.key'))).mode & 0o777).to.equal(0o600);
    expect((await stat(keys)).mode & 0o777).to.equal(0o700);
  });

  it('refuses to overwrite existing files unless --force is given', async function () {
    const before = await readFile(path.join(dev, 'server.crt'), 'utf8');
    const refused = await generate('--out', dev);
    expect(refused.code).to.equal(1);
    expect(refused.stderr).to.include(path.join(dev, 'ca.crt')).and.to.include('--force');
    expect(await readFile(path.join(dev, 'server.crt'), 'utf8')).to.equal(before);

    const out = path.join(root, 'forced');
    expect((await generate('--out', out, '--key-type', 'ec')).code).to.equal(0);
    const old = await readFile(path.join(out, 'server.crt'), 'utf8');
    const forced = await generate('--out', out, '--key-type', 'ec', '--force');
    expect(forced.code, forced.stderr).to.equal(0);
    expect(await readFile(path.join(out, 'server.crt'), 'utf8')).to.not.equal(old);
  });

  it('makes P-256 keys with --key-type ec', async function () {
    const out = path.join(root, 'ec');
    const result = await generate('--out', out, '--key-type', 'ec', '--days', '30', '--client-cn', 'svc-a');
    expect(result.code, result.stderr).to.equal(0);
    const server = await certText(path.join(out, 'server.crt'));
    expect(server).to.include('id-ecPublicKey').and.to.include('P-256');
    expect(await certText(path.join(out, 'client.crt'))).to.include('CN = svc-a');
    const verify = await openssl('verify', '-CAfile', path.join(out, 'ca.crt'), path.join(out, 'server.crt'));
    expect(verify.code, verify.stderr).to.equal(0);
  });

  it('replaces the default SANs with --no-default-sans', async function () {
    const out = path.join(root, 'other');
    const result = await generate('--out', out, '--key-type', 'ec', '--server-only',
      '--no-default-sans', '--san', 'DNS:other.example');
    expect(result.code, result.stderr).to.equal(0);
    const sans = await openssl('x509', '-in', path.join(out, 'server.crt'), '-noout', '-ext', 'subjectAltName');
    expect(sans.stdout.trim().split('\n').at(-1)?.trim()).to.equal('DNS:other.example');
    expect(await stat(path.join(out, 'client.crt')).catch(() => undefined)).to.equal(undefined);
  });

  it('issues new certificates from an existing CA beside the old ones (--ca-cert, --prefix)', async function () {
    const oldServer = await readFile(path.join(dev, 'server.crt'), 'utf8');
    const result = await generate('--out', dev, '--ca-cert', path.join(dev, 'ca.crt'),
      '--ca-key', path.join(dev, 'ca-private', 'ca.key'), '--prefix', 'next', '--key-type', 'ec');
    expect(result.code, result.stderr).to.equal(0);
    const verify = await openssl('verify', '-CAfile', path.join(dev, 'ca.crt'),
      path.join(dev, 'next-server.crt'), path.join(dev, 'next-client.crt'));
    expect(verify.code, verify.stderr).to.equal(0);
    expect(await readFile(path.join(dev, 'server.crt'), 'utf8')).to.equal(oldServer);
    expect(await stat(path.join(dev, 'next-ca.crt')).catch(() => undefined)).to.equal(undefined);
  });

  it('makes an already expired server certificate with --expired', async function () {
    const out = path.join(root, 'expired');
    expect((await generate('--out', out, '--key-type', 'ec', '--expired')).code).to.equal(0);
    const verify = await openssl('verify', '-CAfile', path.join(out, 'ca.crt'), path.join(out, 'server.crt'));
    expect(verify.code).to.not.equal(0);
    expect(verify.stdout + verify.stderr).to.include('certificate has expired');
  });

  it('rejects bad options with a message', async function () {
    const badType = await generate('--out', path.join(root, 'bad'), '--key-type', 'dsa');
    expect(badType.code).to.equal(1);
    expect(badType.stderr).to.include("--key-type must be 'rsa' or 'ec'");
    const badSan = await generate('--out', path.join(root, 'bad'), '--san', 'localhost');
    expect(badSan.code).to.equal(1);
    expect(badSan.stderr).to.include('DNS:name or IP:address');
    const help = await generate('--help');
    expect(help.code).to.equal(0);
    expect(help.stdout).to.include('Usage:').and.to.include('--force');
  });
});

describe('certs/check-expiry.sh', function () {
  let root: string;

  before(async function () {
    root = await mkdtemp(path.join(os.tmpdir(), 'taskline-expiry-test-'));
    expect((await generate('--out', path.join(root, 'ok'), '--key-type', 'ec', '--days', '365')).code).to.equal(0);
    expect((await generate('--out', path.join(root, 'old'), '--key-type', 'ec', '--expired', '--server-only')).code)
      .to.equal(0);
    await writeFile(path.join(root, 'garbage.crt'), 'not a certificate\n');
  });

  after(async function () {
    await rm(root, { recursive: true, force: true });
  });

  it('exits 0 and prints the days left for a fresh certificate', async function () {
    const file = path.join(root, 'ok', 'server.crt');
    const result = await checkExpiry(file);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.match(new RegExp(`^${file}: expires .+ GMT \\((364|365) days left\\)$`, 'm'));
  });

  it('exits 1 when a certificate expires within --threshold-days', async function () {
    const result = await checkExpiry(path.join(root, 'ok', 'server.crt'), '--threshold-days', '400');
    expect(result.code).to.equal(1);
    expect(result.stderr).to.include('below the threshold of 400 days');
  });

  it('exits 1 for an expired certificate', async function () {
    const result = await checkExpiry(path.join(root, 'ok', 'ca.crt'), path.join(root, 'old', 'server.crt'));
    expect(result.code).to.equal(1);
    expect(result.stdout).to.match(/old\/server\.crt: expired .+ \(\d+ days ago\)/);
  });

  it('exits 2 for a file that is not a certificate or does not exist', async function () {
    const garbage = await checkExpiry(path.join(root, 'garbage.crt'));
    expect(garbage.code).to.equal(2);
    expect(garbage.stderr).to.include('garbage.crt: not a PEM X.509 certificate');
    const missing = await checkExpiry(path.join(root, 'missing.crt'), path.join(root, 'ok', 'server.crt'));
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.include('missing.crt: cannot read the file');
    expect(missing.stdout).to.include('ok/server.crt: expires');
  });
});
