import { access } from 'node:fs/promises';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import {
  getSharedCertBundle,
  makeCertBundle,
  makeSelfSignedServerCert,
  makeWrongHostCertBundle,
  runningRedisCount,
  startRedis,
  startTcpProxy,
  type CertBundle,
  type RedisServerOptions,
  type RunningRedis,
  type TcpProxy,
} from './harness/index.js';

// ---- tiny RESP client over raw sockets (so the harness is tested without the code under test) ----

function connectPlain(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

interface TlsClientOptions {
  ca?: string | undefined;
  cert?: string;
  key?: string;
}

function connectTls(port: number, opts: TlsClientOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...opts });
    socket.once('secureConnect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Sends one inline command and resolves with the first reply chunk; rejects on error/close/timeout. */
function send(socket: net.Socket, line: string, timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => cleanup(new Error(`no reply to ${line} within ${timeoutMs} ms`)), timeoutMs);
    const onData = (data: Buffer): void => cleanup(undefined, data.toString('utf8'));
    const onError = (error: Error): void => cleanup(error);
    const onClose = (): void => cleanup(new Error('connection closed'));
    function cleanup(error: Error | undefined, reply?: string): void {
      clearTimeout(timer);
      socket.off('data', onData).off('error', onError).off('close', onClose);
      if (error) reject(error);
      else resolve(reply ?? '');
    }
    socket.on('data', onData).on('error', onError).on('close', onClose);
    socket.write(`${line}\r\n`);
  });
}

function closed(socket: net.Socket, timeoutMs = 2_000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(() => reject(new Error('socket still open')), timeoutMs);
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const read = (file: string): string => readFileSync(file, 'utf8');

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('test harness', function () {
  let certs: CertBundle;
  const servers: RunningRedis[] = [];
  const sockets: net.Socket[] = [];
  const proxies: TcpProxy[] = [];

  async function start(opts: RedisServerOptions = {}): Promise<RunningRedis> {
    const server = await startRedis(opts.tls === false ? opts : { certs, ...opts });
    servers.push(server);
    return server;
  }
  function track<T extends net.Socket>(socket: T): T {
    sockets.push(socket);
    return socket;
  }

  before(async function () {
    certs = await getSharedCertBundle();
  });

  afterEach(async function () {
    for (const socket of sockets.splice(0)) socket.destroy();
    await Promise.all(proxies.splice(0).map((proxy) => proxy.close()));
    await Promise.all(servers.splice(0).map((server) => server.stop()));
    expect(runningRedisCount(), 'redis servers left running').to.equal(0);
  });

  describe('startRedis', function () {
    it('serves TLS that a CA-verifying client accepts, answering PING', async function () {
      const redis = await start();
      expect(redis.tls).to.equal(true);
      expect(redis.url).to.equal(`rediss://127.0.0.1:${redis.port}`);
      const socket = track(await connectTls(redis.port, { ca: read(certs.caFile) }));
      expect(socket.authorized).to.equal(true);
      expect(await send(socket, 'PING')).to.equal('+PONG\r\n');
      // TLS-only: the plain port is off.
      expect(await redis.cli('CONFIG', 'GET', 'port')).to.equal('port\n0');
    });

    it('makes its own certificates by default and limits protocols with tlsProtocols', async function () {
      const redis = await startRedis({ tlsProtocols: 'TLSv1.2' });
      servers.push(redis);
      expect(redis.certs).to.not.equal(undefined);
      const own = redis.certs as CertBundle;
      expect(own.dir.startsWith(redis.dir)).to.equal(true);
      const socket = track(await connectTls(redis.port, { ca: read(own.caFile) }));
      expect(socket.getProtocol()).to.equal('TLSv1.2');
      expect(await send(socket, 'PING')).to.equal('+PONG\r\n');
      // The shared CA did not sign this server's certificate.
      await connectTls(redis.port, { ca: read(certs.caFile) }).then(
        (s) => { track(s); throw new Error('connected with the wrong CA'); },
        (error: NodeJS.ErrnoException) => expect(error.code).to.be.oneOf(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN']),
      );
    });

    it('with requireClientCert rejects a client without a certificate and accepts one with it', async function () {
      const redis = await start({ requireClientCert: true });
      // TLS 1.3: the client's handshake may finish before the server's alert arrives.
      const rejected = await connectTls(redis.port, { ca: read(certs.caFile) })
        .then((socket) => send(track(socket), 'PING'))
        .then((reply) => `replied ${reply}`, (error: Error) => error.message);
      expect(rejected).to.not.include('PONG');
      expect(rejected).to.match(/certificate required|closed|ECONNRESET|alert/i);

      const socket = track(await connectTls(redis.port, {
        ca: read(certs.caFile), cert: read(certs.clientCertFile), key: read(certs.clientKeyFile),
      }));
      expect(await send(socket, 'PING')).to.equal('+PONG\r\n');
      expect(redis.env()).to.include({ REDIS_CLIENT_CERT: certs.clientCertFile, REDIS_CLIENT_KEY: certs.clientKeyFile });
    });

    it('serves overridden certificates: expired, self-signed and wrong host name fail verification', async function () {
      const expired = await makeCertBundle({ keyType: 'ec', expired: true, ca: { certFile: certs.caFile, keyFile: certs.caKeyFile } });
      const selfSigned = await makeSelfSignedServerCert();
      const wrongHost = await makeWrongHostCertBundle({ keyType: 'ec', ca: { certFile: certs.caFile, keyFile: certs.caKeyFile } });
      const cases: Array<[string, string, string]> = [
        [expired.serverCertFile, expired.serverKeyFile, 'CERT_HAS_EXPIRED'],
        [selfSigned.certFile, selfSigned.keyFile, 'DEPTH_ZERO_SELF_SIGNED_CERT'],
        [wrongHost.serverCertFile, wrongHost.serverKeyFile, 'ERR_TLS_CERT_ALTNAME_INVALID'],
      ];
      await Promise.all(cases.map(async ([serverCertFile, serverKeyFile, code]) => {
        const redis = await start({ serverCertFile, serverKeyFile });
        const error = await connectTls(redis.port, { ca: read(certs.caFile) }).then(
          (socket) => { track(socket); return undefined; },
          (e: NodeJS.ErrnoException) => e,
        );
        expect(error?.code, serverCertFile).to.equal(code);
        expect(await redis.cli('PING')).to.equal('PONG'); // the harness's own channel still works
      }));
    });

    it('keeps AOF data across restart() on the same port', async function () {
      const redis = await start({ appendonly: true });
      const { port, pid } = redis;
      expect(await redis.cli('SET', 'harness:key', 'kept')).to.equal('OK');
      await redis.restart();
      expect(redis.port).to.equal(port);
      expect(redis.pid).to.not.equal(pid);
      expect(isRunning(pid)).to.equal(false);
      expect(await redis.cli('GET', 'harness:key')).to.equal('kept');
    });

    it('stop() ends the process, removes its dir and can be called twice', async function () {
      const redis = await startRedis({ tls: false });
      servers.push(redis);
      expect(runningRedisCount()).to.equal(1);
      const { pid, dir } = redis;
      expect(isRunning(pid)).to.equal(true);
      await Promise.all([redis.stop(), redis.stop()]);
      expect(() => process.kill(pid, 0)).to.throw();
      await access(dir).then(() => expect.fail(`${dir} still exists`), () => undefined);
      expect(runningRedisCount()).to.equal(0);
      await redis.stop();
    });

    it('pause() stops answers until resume()', async function () {
      const redis = await start({ tls: false });
      const socket = track(await connectPlain(redis.port));
      redis.pause();
      const pending = send(socket, 'PING', 3_000);
      const early = await Promise.race([pending, new Promise((r) => setTimeout(r, 300, 'no reply'))]);
      expect(early).to.equal('no reply');
      redis.resume();
      expect(await pending).to.equal('+PONG\r\n');
    });

    it('protects with a password and ACL users, and cli() authenticates without printing it', async function () {
      const redis = await start({
        tls: false,
        password: 'top-secret',
        aclUsers: [{ name: 'app', password: 'app-pw', rules: '~app:* +@all -flushall' }],
      });
      const socket = track(await connectPlain(redis.port));
      expect(await send(socket, 'PING')).to.match(/^-NOAUTH/);
      expect(await send(socket, 'AUTH app app-pw')).to.equal('+OK\r\n');
      expect(await send(socket, 'SET other:key 1')).to.match(/^-NOPERM/);
      expect(await send(socket, 'SET app:key 1')).to.equal('+OK\r\n');
      expect(await redis.cli('GET', 'app:key')).to.equal('1');
      expect(redis.url).to.equal(`redis://127.0.0.1:${redis.port}`);
      expect(redis.env('RESULT_REDIS_')).to.deep.equal({
        RESULT_REDIS_HOST: '127.0.0.1',
        RESULT_REDIS_PORT: String(redis.port),
        RESULT_REDIS_SSL: 'false',
        RESULT_REDIS_PASSWORD: 'top-secret',
      });
    });
  });

  describe('startTcpProxy', function () {
    async function proxyTo(port: number): Promise<TcpProxy> {
      const proxy = await startTcpProxy({ targetPort: port });
      proxies.push(proxy);
      return proxy;
    }

    it('forwards TLS untouched and cutAll() closes every connection', async function () {
      const redis = await start();
      const proxy = await proxyTo(redis.port);
      const socket = track(await connectTls(proxy.port, { ca: read(certs.caFile) }));
      expect(await send(socket, 'PING')).to.equal('+PONG\r\n');
      expect(proxy.connectionCount()).to.equal(1);
      const whenClosed = closed(socket);
      proxy.cutAll();
      await whenClosed;
      expect(proxy.connectionCount()).to.equal(0);
    });

    it('drops new connections while setDropNew(true) and delays data with setDelayMs', async function () {
      const redis = await start({ tls: false });
      const proxy = await proxyTo(redis.port);
      proxy.setDropNew(true);
      const dropped = track(await connectPlain(proxy.port));
      await closed(dropped);
      proxy.setDropNew(false);

      const socket = track(await connectPlain(proxy.port));
      proxy.setDelayMs(150);
      const started = Date.now();
      expect(await send(socket, 'PING')).to.equal('+PONG\r\n');
      expect(Date.now() - started).to.be.at.least(290); // delayed both ways
      proxy.setDelayMs(0);
      expect(await send(socket, 'PING')).to.equal('+PONG\r\n');
    });
  });
});
