// Issue 11, finding 8: TLS versions and ciphers are judged in one place whatever layer sets them
// (library options, environment, CLI), and a refused setting stops before any connection.
import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { ConfigError, createConnections, resolveConnectionOptions, type ConnectionOptions } from '@taskline/shared';
import { checkCipherList } from '@taskline/shared/connection';
import { makeCertBundle, runningRedisCount, startRedis, type CertBundle, type RunningRedis } from '../harness/index.js';

const WORKER_BIN = fileURLToPath(new URL('../../worker/bin/taskline-worker.js', import.meta.url));

function health(env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise(resolve => {
    execFile(process.execPath, [WORKER_BIN, 'health'], { env: { PATH: process.env['PATH'] ?? '', LOG_LEVEL: 'error', ...env }, timeout: 20_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

describe('security: TLS settings validated in one place (issue 11, finding 8)', function () {
  this.timeout(30_000);
  let certs: CertBundle;
  let listener: Server;
  let accepted = 0;
  let port = 0;
  const servers: RunningRedis[] = [];

  before(async () => {
    certs = await makeCertBundle();
    // Stands in for any server (the finding used a TLS 1.1 Redis): it only counts connections.
    listener = createServer(socket => {
      accepted += 1;
      socket.destroy();
    });
    await new Promise<void>(resolve => listener.listen(0, '127.0.0.1', resolve));
    port = (listener.address() as { port: number }).port;
  });
  after(async () => {
    await new Promise<void>(resolve => listener.close(() => resolve()));
    for (const s of servers.splice(0)) await s.stop();
    expect(runningRedisCount()).to.equal(0);
  });

  it('refuses library options below TLS 1.2, with weak ciphers or with TLS settings on an endpoint, before anything connects', async () => {
    const endpoint = { host: '127.0.0.1', port, caFile: certs.caFile, password: 'sent-to-nobody' };
    const cases: Array<[Record<string, unknown>, string, RegExp]> = [
      [{ tlsMinVersion: 'TLSv1' }, 'tlsMinVersion', /^tlsMinVersion must be TLSv1\.2 or TLSv1\.3, got "TLSv1"; TLS 1\.0 and 1\.1 are broken and never allowed\.$/],
      [{ tlsMaxVersion: 'TLSv1.1' }, 'tlsMaxVersion', /tlsMaxVersion must be TLSv1\.2 or TLSv1\.3, got "TLSv1\.1"/],
      [{ tlsCiphers: 'ALL:@SECLEVEL=0' }, 'tlsCiphers', /^tlsCiphers contains "ALL", which is a broad group that also takes ciphers without forward secrecy or AEAD; taskline allows only ECDHE or DHE key exchange with AES-GCM or ChaCha20-Poly1305 .*unset tlsCiphers for the default ECDHE\+AESGCM:ECDHE\+CHACHA20:DHE\+AESGCM:DHE\+CHACHA20\.$/],
      [{ tlsCiphers: 'ECDHE+AESGCM:@SECLEVEL=0' }, 'tlsCiphers', /"@SECLEVEL=0", which lets OpenSSL accept weak keys and ciphers; remove it \(the minimum is @SECLEVEL=2\)/],
      [{ tlsCiphers: 'ECDHE+AESGCM:@SECLEVEL=1' }, 'tlsCiphers', /"@SECLEVEL=1"/],
      [{ broker: { ...endpoint, minVersion: 'TLSv1' } }, 'broker.minVersion', /broker\.minVersion is not a connection option; TLS versions and ciphers are set once for both services \(tlsMinVersion, tlsMaxVersion, tlsCiphers\)/],
      [{ backend: { ...endpoint, ciphers: 'ALL' } }, 'backend.ciphers', /backend\.ciphers is not a connection option/],
      [{ broker: { ...endpoint, tls: { minVersion: 'TLSv1' } } }, 'broker.tls', /broker\.tls must be true or false/],
    ];
    for (const [options, variable, message] of cases) {
      const make = () => createConnections({ options: { broker: endpoint, healthCheckIntervalMs: 0, ...options } as ConnectionOptions, role: 'cli' });
      expect(make, JSON.stringify(options)).to.throw(ConfigError, message).with.property('variable', variable);
    }
    await new Promise(resolve => setTimeout(resolve, 200));
    expect(accepted, 'connections the refused settings opened').to.equal(0);
  });

  it('judges REDIS_TLS_CIPHERS and REDIS_TLS_MIN_VERSION the same way, through the bins (exit 2, one sentence, nothing connects)', async () => {
    const env = { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(port), REDIS_CA_CERT: certs.caFile };
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ REDIS_TLS_CIPHERS: 'AES128-SHA:@SECLEVEL=0' }, /^FAIL configuration: REDIS_TLS_CIPHERS contains "AES128-SHA", which has no forward secrecy \(RSA or PSK key exchange\); .*unset REDIS_TLS_CIPHERS for the default/],
      [{ REDIS_TLS_CIPHERS: 'ECDHE-RSA-AES128-SHA' }, /REDIS_TLS_CIPHERS contains "ECDHE-RSA-AES128-SHA", which allows CBC ciphers \(no AEAD\)/],
      [{ REDIS_TLS_CIPHERS: 'ECDHE+AESGCM:RC4-MD5' }, /"RC4-MD5", which allows broken ciphers/],
      [{ REDIS_TLS_CIPHERS: 'HIGH:!aNULL' }, /"HIGH", which is a broad group/],
      [{ REDIS_TLS_CIPHERS: 'aNULL' }, /"aNULL", which allows unauthenticated \(anonymous\) key exchange/],
      [{ REDIS_TLS_CIPHERS: 'eNULL' }, /"eNULL", which allows no encryption at all/],
      [{ REDIS_TLS_CIPHERS: 'DEFAULT:@SECLEVEL=0' }, /"DEFAULT", which is a broad group/],
      [{ REDIS_TLS_MIN_VERSION: 'TLSv1.1' }, /REDIS_TLS_MIN_VERSION must be TLSv1\.2 or TLSv1\.3, got "TLSv1\.1"/],
    ];
    for (const [extra, message] of cases) {
      const run = await health({ ...env, ...extra });
      expect(run.code, JSON.stringify(extra)).to.equal(2);
      expect(run.stdout.trim(), JSON.stringify(extra)).to.match(message);
    }
    expect(accepted).to.equal(0);
  });

  it('refuses each weak entry of a list and takes strong ones, removals and reorderings as they are', () => {
    const refused = ['ALL', 'COMPLEMENTOFDEFAULT', 'aNULL', 'eNULL', 'NULL', 'RSA', 'kRSA', 'AES128-SHA', 'AES256-GCM-SHA384', 'ECDHE-RSA-AES128-SHA256', 'DES-CBC3-SHA', 'RC4', '3DES', 'MD5', 'SHA1', 'EXPORT', 'LOW', 'MEDIUM', 'PSK', 'AESGCM', 'ECDHE', 'DHE-RSA-AES256-SHA', 'TLS_AES_128_CCM_8_SHA256', '@SECLEVEL=1', '@BOGUS'];
    // Each weak entry is found even behind a strong one.
    for (const entry of refused) expect(() => checkCipherList('REDIS_TLS_CIPHERS', `ECDHE+AESGCM:${entry}`), entry).to.throw(ConfigError);
    expect(() => checkCipherList('REDIS_TLS_CIPHERS', ''), 'empty').to.throw(ConfigError, /non-empty OpenSSL cipher list/);
    const accepted = [
      'ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20',
      'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-AES256-GCM-SHA384',
      'EECDH+AESGCM:EDH+AESGCM:!aNULL:!MD5:-DHE+CHACHA20:+ECDHE+CHACHA20:@STRENGTH:@SECLEVEL=3',
      'ECDHE+AESGCM+aECDSA, ECDHE+AESCCM TLS_AES_256_GCM_SHA384',
    ];
    for (const list of accepted) expect(checkCipherList('REDIS_TLS_CIPHERS', list), list).to.equal(list);
    expect(() => checkCipherList('REDIS_TLS_CIPHERS', '!aNULL:!eNULL'), 'only removals').to.throw(ConfigError, /names no cipher to use/);
  });

  it('a strong custom list still connects over real TLS, with the cipher it names', async () => {
    const server = await startRedis({ certs, tlsProtocols: 'TLSv1.2' });
    servers.push(server);
    const connections = createConnections({
      options: resolveConnectionOptions({ healthCheckIntervalMs: 0, tlsCiphers: 'ECDHE-RSA-AES256-GCM-SHA384:!aNULL:@SECLEVEL=2' }, { ...server.env('REDIS_') }),
      role: 'cli',
    });
    try {
      const report = await connections.checkHealth();
      expect(report.broker.tls).to.include({ protocol: 'TLSv1.2', cipher: 'ECDHE-RSA-AES256-GCM-SHA384' });
    } finally {
      await connections.close();
    }
  });
});
