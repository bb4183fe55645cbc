import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ConfigError } from '../errors.js';

/** A readiness probe: `ok` plus whatever explains it. */
export interface ReadinessReport {
  ok: boolean;
  [detail: string]: unknown;
}

export interface OpsServerOptions {
  port: number;
  /** @defaultValue `0.0.0.0` */
  host?: string;
  registry: Registry;
  /** Liveness: the process is not wedged. @defaultValue always ok */
  live?: () => ReadinessReport | Promise<ReadinessReport>;
  /** Readiness: both connections healthy and the component doing its work. */
  ready: () => ReadinessReport | Promise<ReadinessReport>;
}

export interface OpsServer {
  readonly port: number;
  close(): Promise<void>;
}

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(text);
}

/** A taken port as one sentence naming the way out (another worker on this host holds it). */
function portInUse(err: Error, port: number, host: string): ConfigError | null {
  if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') return null;
  return new ConfigError(
    'CONFIG_METRICS_PORT_IN_USE',
    'TASKLINE_METRICS_PORT',
    `The metrics port ${host}:${port} is already in use (another taskline process on this host?); give each process its own with --metrics-port <port> or TASKLINE_METRICS_PORT, or 0 to pick a free one.`,
    { cause: err },
  );
}

/** Serves `/metrics`, `/healthz` (liveness) and `/readyz` (readiness) for workers and the beat. */
export async function startOpsServer(options: OpsServerOptions): Promise<OpsServer> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') return send(res, 405, { error: 'method not allowed' });
    if (path === '/metrics') {
      return send(res, 200, await options.registry.metrics(), options.registry.contentType);
    }
    if (path === '/healthz') {
      const report = options.live ? await options.live() : { ok: true };
      return send(res, report.ok ? 200 : 503, report);
    }
    if (path === '/readyz') {
      const report = await options.ready();
      return send(res, report.ok ? 200 : 503, report);
    }
    send(res, 404, { error: 'not found; try /metrics, /healthz or /readyz' });
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => send(res, 500, { error: err instanceof Error ? err.message : 'internal error' }));
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', err => reject(portInUse(err, options.port, options.host ?? '0.0.0.0') ?? err));
    server.listen(options.port, options.host ?? '0.0.0.0', () => resolve());
  });
  let closing: Promise<void> | null = null;
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      (closing ??= new Promise<void>(resolve => {
        server.close(() => resolve());
        server.closeAllConnections();
      })),
  };
}
