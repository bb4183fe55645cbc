import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { Redis } from 'ioredis';
import type { ConnectionError } from '../errors.js';
import { isFatalConnectionError, toConnectionError, type ConnectionTarget } from './error-mapping.js';
import type { TlsContextProvider } from './tls-context.js';

/**
 * Why a connection could not be made, when the client alone cannot tell: a plaintext server
 * behind a TLS client (it never answers the hello), a TLS server behind a plaintext client, a
 * server that wants a client certificate. Each probe is a short side connection that sends no
 * data the server could act on and is closed at once.
 */

/** A TLS client whose server has not answered within this long is checked for a plaintext server. */
export const PLAINTEXT_PROBE_AFTER_MS = 1000;

/**
 * While a TLS client waits for its handshake: a plaintext Redis never answers a TLS hello (it
 * waits for a newline), so after `afterMs` ask it in plaintext and, if it answers, fail the
 * client with the error that names the fix. Returns a function that cancels the probe.
 */
export function probePlaintextLater(client: Redis, target: ConnectionTarget, onPlaintext: (err: Error) => void, afterMs = PLAINTEXT_PROBE_AFTER_MS): () => void {
  const timer = setTimeout(() => {
    if (client.status === 'ready' || client.status === 'end') return;
    speaksPlaintextRedis(target.host, target.port).then(plaintext => {
      if (!plaintext || client.status === 'ready') return;
      const err = Object.assign(new Error('plaintext server'), { code: 'ERR_SSL_WRONG_VERSION_NUMBER' });
      onPlaintext(err);
      client.emit('error', err);
    }, () => undefined);
  }, afterMs);
  return () => clearTimeout(timer);
}

/**
 * Maps a start-up failure to one sentence with its cause and fix, probing where the error alone
 * is ambiguous: a TLS client without a certificate that was reset is checked for a server that
 * requires one; a plaintext client that was hung up on is checked for a TLS server.
 */
export async function explainStartFailure(err: unknown, target: ConnectionTarget, tls: TlsContextProvider | null): Promise<ConnectionError> {
  const closed = (): Error => new Error('Connection is closed.');
  if (err !== undefined && isFatalConnectionError(err)) return toConnectionError(err, target);
  if (tls) {
    // A TLS 1.3 server that wants a client certificate says so after the handshake; a client
    // that already wrote may see only a reset. A quiet, verified handshake hears the alert.
    const alert = tls.settings.certFile === null ? await quietTlsError(target, tls) : undefined;
    return toConnectionError(alert !== undefined && isFatalConnectionError(alert) ? alert : (err ?? closed()), target);
  }
  if (await speaksTls(target.host, target.port)) {
    return toConnectionError(Object.assign(new Error('TLS server'), { code: 'PLAINTEXT_TO_TLS_SERVER' }), target);
  }
  return toConnectionError(err ?? closed(), target);
}

/** A verified TLS connection that sends nothing: the error the server answers it with, if any. */
function quietTlsError(target: ConnectionTarget, tls: TlsContextProvider): Promise<unknown> {
  return new Promise(resolve => {
    const socket = tlsConnect({ host: target.host, port: target.port, ...tls.ioredisOptions() });
    const finish = (result: unknown): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish(undefined), 1000);
    socket.on('error', (error: unknown) => finish(error));
    socket.once('close', () => finish(undefined));
  });
}

/**
 * Diagnostic only: does the server complete a TLS handshake? No data is sent and the socket
 * is closed at once, so skipping verification here cannot leak or accept anything.
 */
function speaksTls(host: string, port: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = tlsConnect({ host, port, rejectUnauthorized: false, timeout: 2000 });
    const finish = (result: boolean): void => {
      socket.destroy();
      resolve(result);
    };
    socket.once('secureConnect', () => finish(true));
    socket.on('error', () => finish(false));
    socket.once('timeout', () => finish(false));
  });
}

/** Diagnostic only: does a plaintext PING get a RESP answer (+PONG, -NOAUTH...)? */
function speaksPlaintextRedis(host: string, port: number): Promise<boolean> {
  return new Promise(resolve => {
    const socket = netConnect({ host, port });
    const finish = (result: boolean): void => {
      socket.destroy();
      resolve(result);
    };
    socket.setTimeout(1000, () => finish(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (chunk: Buffer) => finish(chunk[0] === 0x2b || chunk[0] === 0x2d));
    socket.on('error', () => finish(false));
  });
}
