// Calling the producer API the way a client does: over HTTPS, verifying its certificate.
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { CertBundle } from '../harness/index.js';

export interface Reply {
  status: number;
  body: Record<string, unknown>;
  text: string;
  /** TLS version of the connection. */
  protocol: string | null;
  /** Serial number of the certificate the server presented. */
  serial: string | null;
}

export interface CallOptions {
  body?: string | Buffer;
  /** Bearer token; `null` sends none. */
  token?: string | null;
  /** @defaultValue `application/json` when there is a body; `null` sends none. */
  contentType?: string | null;
  headers?: Record<string, string>;
  /** A client certificate (mutual TLS). */
  client?: { certFile: string; keyFile: string };
  /** Extra TLS options for the client (versions, ciphers). */
  tls?: Pick<RequestOptions, 'minVersion' | 'maxVersion' | 'ciphers'>;
  /** Plain HTTP instead of HTTPS. */
  plain?: boolean;
}

/** One request to 127.0.0.1:`port`, trusting `ca` (the CA of the API's certificate). */
export function call(ca: CertBundle | null, port: number, method: string, path: string, options: CallOptions = {}): Promise<Reply> {
  const headers: Record<string, string> = { ...(options.headers ?? {}) };
  if (options.token) headers['authorization'] = `Bearer ${options.token}`;
  const contentType = options.contentType === undefined ? (options.body !== undefined ? 'application/json' : null) : options.contentType;
  if (contentType) headers['content-type'] = contentType;
  const base = { host: '127.0.0.1', port, method, path, headers, agent: false as const };
  return new Promise((resolve, reject) => {
    const onResponse = (res: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      const socket = res.socket as TLSSocket;
      const protocol = typeof socket.getProtocol === 'function' ? socket.getProtocol() : null;
      const serial = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate().serialNumber ?? null : null;
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: Record<string, unknown> = {};
        try {
          body = JSON.parse(text) as Record<string, unknown>;
        } catch {
          // /metrics is text
        }
        resolve({ status: res.statusCode ?? 0, body, text, protocol, serial });
      });
    };
    const req = options.plain
      ? httpRequest(base, onResponse)
      : httpsRequest(
          {
            ...base,
            ...(ca ? { ca: readFileSync(ca.caFile) } : {}),
            ...(options.client ? { cert: readFileSync(options.client.certFile), key: readFileSync(options.client.keyFile) } : {}),
            ...(options.tls ?? {}),
          },
          onResponse,
        );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** Prometheus series (sample lines) of one metric in a /metrics text. */
export function series(metricsText: string, name: string): string[] {
  return metricsText.split('\n').filter(line => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

/** Resident memory of a process, in MB. */
export function rssMb(pid: number): number {
  const match = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : 0;
}
