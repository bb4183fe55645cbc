import type { TLSSocket } from 'node:tls';
import type { Redis } from 'ioredis';
import { SERVICE_LABEL, type ServiceName } from '../errors.js';
import { toConnectionError, type ConnectionTarget } from './error-mapping.js';
import { withTimeout } from '../process/index.js';

/** What `checkHealth()` reports for one Redis service. */
export interface ConnectionHealth {
  service: ServiceName;
  label: string;
  host: string;
  port: number;
  ok: boolean;
  latencyMs: number | null;
  tls: {
    protocol: string | null;
    cipher: string | null;
    peerCertificateExpires: string | null;
    peerCertificateDaysLeft: number | null;
  } | null;
  /** The one-sentence cause and fix, when not ok. */
  error: string | null;
  code: string | null;
}

const DAY_MS = 86_400_000;

/** What a health check needs from the service it checks. */
export interface HealthProbe {
  target: ConnectionTarget;
  /** The multiplexed connection, ready or not. */
  client(): Redis;
  /** Resolves once the client is ready (or rejects with its cause), as a start-up would. */
  waitReady(client: Redis): Promise<void>;
  /** The client lost a connection it had, and the last error since (if any). */
  interruption(client: Redis): { interrupted: boolean; lastError: unknown };
  connectTimeoutMs: number;
}

/** PINGs over the multiplexed connection and describes its TLS session; never throws. */
export async function checkConnectionHealth(probe: HealthProbe): Promise<ConnectionHealth> {
  const { target } = probe;
  const report: ConnectionHealth = {
    service: target.service,
    label: SERVICE_LABEL[target.service],
    host: target.host,
    port: target.port,
    ok: false,
    latencyMs: null,
    tls: null,
    error: null,
    code: null,
  };
  try {
    const client = probe.client();
    // A connection that was up and is lost: the next reconnect attempt decides (its error, or
    // the last one while waiting to retry), so a readiness probe gets its 503 at once instead
    // of timing out while we wait up to 2 × the connect timeout.
    const { interrupted, lastError } = probe.interruption(client);
    if (interrupted && client.status === 'reconnecting' && lastError !== undefined) throw lastError;
    const ready = interrupted ? readyOrError(client) : probe.waitReady(client);
    await withTimeout(ready, probe.connectTimeoutMs * 2, timedOut('connect', probe.connectTimeoutMs * 2));
    const started = performance.now();
    // A server that just died may not have been noticed yet: its close ends the PING at once.
    const loss = connectionLoss(client);
    try {
      await withTimeout(Promise.race([client.ping(), loss.lost]), probe.connectTimeoutMs, timedOut('PING', probe.connectTimeoutMs));
    } finally {
      loss.cancel();
    }
    report.latencyMs = Math.round((performance.now() - started) * 100) / 100;
    report.ok = true;
    report.tls = target.tls ? describeTls(client) : null;
  } catch (err) {
    const mapped = toConnectionError(err, target);
    report.error = mapped.message;
    report.code = mapped.code;
  }
  return report;
}

/** The TLS session of a connected client: protocol, cipher, the server certificate's expiry. */
export function describeTls(client: Redis): NonNullable<ConnectionHealth['tls']> {
  const socket = client.stream as unknown as TLSSocket | undefined;
  const peer = typeof socket?.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
  const expires = peer?.valid_to ? new Date(peer.valid_to) : null;
  return {
    protocol: typeof socket?.getProtocol === 'function' ? socket.getProtocol() : null,
    cipher: typeof socket?.getCipher === 'function' ? socket.getCipher().name : null,
    peerCertificateExpires: expires ? expires.toISOString() : null,
    peerCertificateDaysLeft: expires ? Math.floor((expires.getTime() - Date.now()) / DAY_MS) : null,
  };
}

/** A socket-style timeout (ETIMEDOUT), which the error mapping words as "the connection timed out". */
function timedOut(what: string, ms: number): () => Error {
  return () => Object.assign(new Error(`${what} timed out after ${ms} ms`), { code: 'ETIMEDOUT' });
}

/** Rejects when the client reports an error or loses its connection; `cancel` removes the listeners. */
function connectionLoss(client: Redis): { lost: Promise<never>; cancel: () => void } {
  let cancel = (): void => undefined;
  const lost = new Promise<never>((_, reject) => {
    const onError = (err: unknown): void => {
      cancel();
      reject(err);
    };
    const onClose = (): void => {
      cancel();
      reject(Object.assign(new Error('the connection was lost'), { code: 'ECONNRESET' }));
    };
    client.once('error', onError);
    client.once('close', onClose);
    cancel = () => {
      client.off('error', onError);
      client.off('close', onClose);
    };
  });
  lost.catch(() => undefined);
  return { lost, cancel };
}

/** Resolves when the client is ready; rejects on its next error or end. */
function readyOrError(client: Redis): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const settle = (err?: unknown): void => {
      client.off('ready', onReady);
      client.off('error', onError);
      client.off('end', onEnd);
      if (err === undefined) resolve();
      else reject(err);
    };
    const onReady = (): void => settle();
    const onError = (err: unknown): void => settle(err);
    const onEnd = (): void => settle(new Error('the connection was closed'));
    client.once('ready', onReady);
    client.once('error', onError);
    client.once('end', onEnd);
  });
}
