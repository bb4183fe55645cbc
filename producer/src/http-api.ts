import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from '@taskline/shared';
import { resolveApiServerOptions, type ApiServerOptions, type ResolvedApiServerOptions } from './api-options.js';
import { toHttpError } from './api-responses.js';
import { createRouteHandler, routeOf, send } from './api-routes.js';
import { ApiTlsFiles } from './api-tls.js';
import { traceEnqueueRequest } from './api-tracing.js';

export interface ApiServer {
  readonly port: number;
  /** `https` when the API serves TLS itself. */
  readonly protocol: 'http' | 'https';
  /** Stops accepting, lets in-flight requests finish (up to the grace), then closes. Idempotent. */
  stop(): Promise<void>;
}

/**
 * The producer's HTTP API: enqueue, read, revoke (bearer token), detailed health and metrics
 * (bearer token), and bare `/healthz` (alive) and `/readyz` (both connections healthy) for probes.
 * HTTPS when given a certificate; node:http(s), no framework. Options: {@link ApiServerOptions}.
 */
export async function startApiServer(input: ApiServerOptions): Promise<ApiServer> {
  const options: ResolvedApiServerOptions = resolveApiServerOptions(input);
  const { logger, token } = options;
  warnIfExposed(options);
  const requests = createRequestListener(options);
  const server = createServer(options, requests.onRequest, logger);
  server.keepAliveTimeout = 5000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const protocol = options.tls ? 'https' : 'http';
  logger.info('Producer API listening', {
    host: options.host,
    port,
    protocol,
    auth: token ? 'bearer token' : 'NONE',
    clientCertificates: options.tls?.caFile ? 'required' : 'no',
    queues: [...options.allowedQueues],
  });
  let stopped: Promise<void> | null = null;
  return { port, protocol, stop: () => (stopped ??= stopServer(server, requests, options.shutdownGraceMs)) };
}

function warnIfExposed({ logger, token, tls, production }: ResolvedApiServerOptions): void {
  if (!token) {
    logger.warn(
      'THE PRODUCER API IS OPEN: no PRODUCER_API_TOKEN is set, so anyone who can reach this port can enqueue and revoke jobs. Set PRODUCER_API_TOKEN (production refuses to start without it).',
    );
  }
  if (!tls) {
    logger.warn(
      production
        ? 'The producer API serves plain HTTP because PRODUCER_API_ALLOW_HTTP=true: keep it reachable only through a TLS-terminating proxy, or the bearer token crosses the network in clear.'
        : 'The producer API serves plain HTTP (allowed outside production); set PRODUCER_API_TLS_CERT and PRODUCER_API_TLS_KEY before going to production.',
    );
  }
}

interface RequestListener {
  onRequest(req: IncomingMessage, res: ServerResponse): void;
  /** Requests being answered (a stop waits for them, up to its grace). */
  readonly inFlight: Set<Promise<void>>;
  /** Set when a stop begins: answers then close their connection. */
  stopping: boolean;
}

/** Routes each request, turns its errors into JSON answers, counts and times it. */
function createRequestListener(options: ResolvedApiServerOptions): RequestListener {
  const { logger } = options;
  const metrics = options.producer.metrics;
  const handle = createRouteHandler(options);
  const listener: RequestListener = {
    inFlight: new Set(),
    stopping: false,
    onRequest: (req, res) => {
      const started = performance.now();
      // Not URL-decoded: job ids need no escapes, so an escaped one is simply not a job id.
      const { route, id } = routeOf((req.url ?? '/').split('?')[0] ?? '/');
      const work = traceEnqueueRequest(req, res, route, () =>
        handle(req, res, route, id).catch((err: unknown) => {
          const http = toHttpError(err);
          if (http.status >= 500) logger.error('API request failed', { route, code: http.code, error: err });
          // A body we did not read (401, 413, 415, early 400) must not be parsed as the next request.
          const unread = !req.complete;
          if (!res.headersSent) send(res, http.status, { error: http.message, code: http.code, ...(http.field ? { field: http.field } : {}) }, unread || listener.stopping ? { connection: 'close' } : {});
          if (unread) res.once('finish', () => req.socket.destroy());
        }),
      ).finally(() => {
        metrics.httpRequests.inc({ route, status: String(res.statusCode) });
        metrics.httpDuration.observe({ route }, (performance.now() - started) / 1000);
        logger.debug('API request', { method: req.method, route, status: res.statusCode, ms: Math.round(performance.now() - started) });
        listener.inFlight.delete(work);
      });
      listener.inFlight.add(work);
    },
  };
  return listener;
}

function createServer(options: ResolvedApiServerOptions, onRequest: RequestListener['onRequest'], logger: Logger): Server {
  if (!options.tls) return createHttpServer(onRequest);
  const files = new ApiTlsFiles(options.tls);
  const https = createHttpsServer(files.contextOptions(), onRequest);
  // Before the TLS layer takes the socket: new connections get the current files.
  https.prependListener('connection', () => files.refresh(https, logger));
  https.on('tlsClientError', (err: NodeJS.ErrnoException) => logger.debug('TLS handshake with an API client failed', { code: err.code, error: err.message }));
  return https;
}

/** Stops accepting, lets in-flight requests finish within the grace, then closes every connection. */
async function stopServer(server: Server, requests: RequestListener, graceMs: number): Promise<void> {
  requests.stopping = true;
  const closed = new Promise<void>(resolve => server.close(() => resolve()));
  server.closeIdleConnections();
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>(resolve => {
    timer = setTimeout(resolve, graceMs);
  });
  await Promise.race([Promise.allSettled([...requests.inFlight]), grace]);
  clearTimeout(timer);
  server.closeAllConnections();
  await closed;
}
