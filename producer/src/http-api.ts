import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { type HealthReport } from '@taskline/shared';
import { isJobId } from '@taskline/shared/job';
import { EnqueueBulkError, type BulkJob } from './enqueue.js';
import { resolveApiServerOptions, type ApiServerOptions, type ResolvedApiServerOptions } from './api-options.js';
import { HttpError, toHttpError, toPublicRecord } from './api-responses.js';
import { ApiTlsFiles } from './api-tls.js';
import { traceEnqueueRequest } from './api-tracing.js';
import { bearerMatches } from './api-token.js';
import { JobNotFoundError } from './errors.js';
import { assertJsonContentType, readJsonBody } from './http-body.js';

export interface ApiServer {
  readonly port: number;
  /** `https` when the API serves TLS itself. */
  readonly protocol: 'http' | 'https';
  /** Stops accepting, lets in-flight requests finish (up to the grace), then closes. Idempotent. */
  stop(): Promise<void>;
}

type Route = 'jobs' | 'jobs_bulk' | 'job' | 'job_events' | 'healthz' | 'readyz' | 'health' | 'metrics' | 'unknown';

/** Event streams open at once per API process; more get 503 (each holds a socket and a subscription). */
const MAX_EVENT_STREAMS = 200;
/** Longest an event stream stays open (`?timeout=` seconds may lower it). */
const MAX_STREAM_SECONDS = 3600;
const STREAM_HEARTBEAT_MS = 15_000;

function routeOf(path: string): { route: Route; id?: string } {
  if (path === '/api/v1/jobs') return { route: 'jobs' };
  if (path === '/api/v1/jobs/bulk') return { route: 'jobs_bulk' };
  const job = /^\/api\/v1\/jobs\/([^/]{1,200})$/.exec(path);
  if (job?.[1]) return { route: 'job', id: job[1] };
  const events = /^\/api\/v1\/jobs\/([^/]{1,200})\/events$/.exec(path);
  if (events?.[1]) return { route: 'job_events', id: events[1] };
  if (path === '/healthz') return { route: 'healthz' };
  if (path === '/readyz') return { route: 'readyz' };
  if (path === '/api/v1/health') return { route: 'health' };
  if (path === '/metrics') return { route: 'metrics' };
  return { route: 'unknown' };
}

const ALLOWED: Record<Route, string[]> = {
  jobs: ['POST'],
  jobs_bulk: ['POST'],
  job: ['GET', 'DELETE'],
  job_events: ['GET'],
  healthz: ['GET'],
  readyz: ['GET'],
  health: ['GET'],
  metrics: ['GET'],
  unknown: [],
};

/** Most jobs in one bulk request. */
const MAX_BULK_JOBS = 10_000;
/** How long a `/readyz` answer is reused: unauthenticated callers cannot make the producer PING Redis faster than this. */
const HEALTHZ_CACHE_MS = 1000;

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers });
  res.end(text);
}

function asObject(body: unknown, what: string): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'INVALID_BODY', `${what} must be a JSON object.`);
  }
  return body as Record<string, unknown>;
}

function toBulkJob(value: unknown, where: string, queues: ReadonlySet<string>): BulkJob {
  const body = asObject(value, where);
  if (typeof body['task'] !== 'string' || body['task'] === '') {
    throw new HttpError(400, 'INVALID_TASK', `${where} needs "task", the name of a task (a non-empty string).`);
  }
  const options = body['options'];
  if (options !== undefined && (options === null || typeof options !== 'object' || Array.isArray(options))) {
    throw new HttpError(400, 'INVALID_OPTION', `${where}.options must be an object.`);
  }
  const queue = (options as Record<string, unknown> | undefined)?.['queue'];
  if (queue !== undefined && (typeof queue !== 'string' || !queues.has(queue))) {
    throw new HttpError(
      400,
      'QUEUE_NOT_ALLOWED',
      `${where}.options.queue ${JSON.stringify(queue)?.slice(0, 140) ?? String(queue)} is not a queue this API accepts (${[...queues].slice(0, 20).join(', ')}); use one of them, or ask the operator to add it to TASKLINE_QUEUES.`,
    );
  }
  return { task: body['task'], data: body['data'] ?? null, ...(options ? { options: options as BulkJob['options'] } : {}) };
}

/** `/readyz`'s answer, from at most one health check per {@link HEALTHZ_CACHE_MS}, shared by concurrent callers. */
function cachedHealth(check: () => Promise<HealthReport>): () => Promise<boolean> {
  let last: { at: number; ok: Promise<boolean> } | null = null;
  return () => {
    if (!last || performance.now() - last.at > HEALTHZ_CACHE_MS) {
      last = { at: performance.now(), ok: check().then(r => r.ok, () => false) };
    }
    return last.ok;
  };
}

/**
 * The producer's HTTP API: enqueue, read, revoke (bearer token), detailed health and metrics
 * (bearer token), and bare `/healthz` (alive) and `/readyz` (both connections healthy) for probes. HTTPS when given a certificate; node:http(s),
 * no framework. Options: {@link ApiServerOptions}.
 */
export async function startApiServer(input: ApiServerOptions): Promise<ApiServer> {
  const options: ResolvedApiServerOptions = resolveApiServerOptions(input);
  const { producer, logger, token } = options;
  const metrics = producer.metrics;
  if (!token) {
    logger.warn(
      'THE PRODUCER API IS OPEN: no PRODUCER_API_TOKEN is set, so anyone who can reach this port can enqueue and revoke jobs. Set PRODUCER_API_TOKEN (production refuses to start without it).',
    );
  }
  if (!options.tls) {
    logger.warn(
      options.production
        ? 'The producer API serves plain HTTP because PRODUCER_API_ALLOW_HTTP=true: keep it reachable only through a TLS-terminating proxy, or the bearer token crosses the network in clear.'
        : 'The producer API serves plain HTTP (allowed outside production); set PRODUCER_API_TLS_CERT and PRODUCER_API_TLS_KEY before going to production.',
    );
  }
  const readyz = cachedHealth(() => producer.checkHealth());

  const handle = async (req: IncomingMessage, res: ServerResponse, route: Route, id: string | undefined): Promise<void> => {
    if (route === 'unknown') throw new HttpError(404, 'NOT_FOUND', 'No such route; the API has /api/v1/jobs, /api/v1/jobs/bulk, /api/v1/jobs/:id, /api/v1/jobs/:id/events, /api/v1/health, /metrics, /healthz and /readyz.');
    if (!ALLOWED[route].includes(req.method ?? '')) {
      throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${req.method ?? '?'} is not allowed here; use ${ALLOWED[route].join(' or ')}.`);
    }
    // Liveness never asks Redis (a Redis outage must not get the API restarted); readiness does.
    if (route === 'healthz') return send(res, 200, { ok: true });
    if (route === 'readyz') {
      const ok = await readyz();
      return send(res, ok ? 200 : 503, { ok });
    }
    if (token && !bearerMatches(req.headers.authorization, token)) {
      throw new HttpError(401, 'UNAUTHORIZED', 'Missing or wrong API token; send "Authorization: Bearer <PRODUCER_API_TOKEN>".');
    }
    if (route === 'metrics') {
      const registry = producer.registry;
      return send(res, 200, await registry.metrics(), { 'content-type': registry.contentType });
    }
    if (route === 'health') {
      const report = await producer.checkHealth();
      const failing = [report.broker, report.backend].filter(h => !h.ok).map(h => ({ service: h.service, error: h.error, code: h.code }));
      return send(res, report.ok ? 200 : 503, { ok: report.ok, ...(failing.length ? { failing } : {}), broker: report.broker, backend: report.backend });
    }
    if (route === 'jobs') {
      assertJsonContentType(req);
      const job = toBulkJob(await readJsonBody(req, options.maxBodyBytes), 'The body', options.allowedQueues);
      return send(res, 202, await producer.enqueue(job.task, job.data, job.options));
    }
    if (route === 'jobs_bulk') {
      assertJsonContentType(req);
      const body = asObject(await readJsonBody(req, options.maxBodyBytes), 'The body');
      const jobs = body['jobs'];
      if (!Array.isArray(jobs) || jobs.length === 0 || jobs.length > MAX_BULK_JOBS) {
        throw new HttpError(400, 'INVALID_BODY', `The body must be {"jobs": [{task, data, options}, ...]} with 1 to ${MAX_BULK_JOBS.toLocaleString('en')} jobs.`);
      }
      const bulk = jobs.map((j, i) => toBulkJob(j, `jobs[${i}]`, options.allowedQueues));
      try {
        return send(res, 202, { jobs: await producer.enqueueBulk(bulk) });
      } catch (err) {
        // Part of the batch was added: say per job which, so a client resends only the rest.
        if (err instanceof EnqueueBulkError) return send(res, 207, { error: err.message, code: err.code, jobs: err.outcomes });
        throw err;
      }
    }
    // An id that is not a job id never reaches Redis: it could name a queue's own keys.
    const jobId = id ?? '';
    if (!isJobId(jobId)) {
      throw new HttpError(404, 'JOB_NOT_FOUND', `"${jobId.slice(0, 80)}" is not a job id (ids are UUIDs or repeat:beat:<schedule>:<ms>); check the id.`);
    }
    if (route === 'job_events') return streamEvents(req, res, jobId);
    if (req.method === 'DELETE') return send(res, 200, toPublicRecord(await producer.revoke(jobId, 'revoked through the HTTP API')));
    const record = await producer.getResult(jobId);
    if (!record) throw new JobNotFoundError(jobId);
    return send(res, 200, toPublicRecord(record));
  };

  let openStreams = 0;
  /**
   * Server-sent events of one job: its current state, then every state and progress change,
   * then `event: final` with the record, and the stream ends. Bounded in number and duration.
   */
  const streamEvents = async (req: IncomingMessage, res: ServerResponse, jobId: string): Promise<void> => {
    const asked = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('timeout') ?? MAX_STREAM_SECONDS);
    if (!Number.isInteger(asked) || asked < 1 || asked > MAX_STREAM_SECONDS) {
      throw new HttpError(400, 'INVALID_OPTION', `timeout must be a whole number of seconds from 1 to ${MAX_STREAM_SECONDS}.`);
    }
    if (openStreams >= MAX_EVENT_STREAMS) throw new HttpError(503, 'TOO_MANY_STREAMS', `${MAX_EVENT_STREAMS} event streams are open; try again later or poll GET /api/v1/jobs/:id.`);
    openStreams += 1;
    const stop = new AbortController();
    const onClose = (): void => stop.abort();
    res.once('close', onClose);
    try {
      const events = producer.watch(jobId, { timeoutMs: asked * 1000, signal: stop.signal });
      const first = await events.next();
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no', 'x-content-type-options': 'nosniff' });
      const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), STREAM_HEARTBEAT_MS);
      try {
        let next = first;
        let final = false;
        while (!next.done) {
          const event = next.value;
          final = event.final;
          const name = event.final ? 'final' : event.progress !== undefined && event.record === undefined ? 'progress' : 'state';
          const body = event.final && event.record ? toPublicRecord(event.record) : { state: event.state, ...(event.progress !== undefined ? { progress: event.progress } : {}) };
          res.write(`event: ${name}\ndata: ${JSON.stringify(body)}\n\n`);
          if (final || stop.signal.aborted) break;
          next = await events.next();
        }
        if (!final && !stop.signal.aborted) res.write(`event: timeout\ndata: ${JSON.stringify({ error: 'The stream reached its timeout before the job finished; open it again.' })}\n\n`);
      } finally {
        clearInterval(heartbeat);
        await events.return(undefined);
      }
      res.end();
    } finally {
      res.off('close', onClose);
      openStreams -= 1;
    }
  };

  const inFlight = new Set<Promise<void>>();
  let stopping = false;
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const started = performance.now();
    // Not URL-decoded: job ids need no escapes, so an escaped one is simply not a job id.
    const { route, id } = routeOf((req.url ?? '/').split('?')[0] ?? '/');
    const work = traceEnqueueRequest(req, res, route, () =>
      handle(req, res, route, id).catch((err: unknown) => {
        const http = toHttpError(err);
        if (http.status >= 500) logger.error('API request failed', { route, code: http.code, error: err });
        // A body we did not read (401, 413, 415, early 400) must not be parsed as the next request.
        const unread = !req.complete;
        if (!res.headersSent) send(res, http.status, { error: http.message, code: http.code, ...(http.field ? { field: http.field } : {}) }, unread || stopping ? { connection: 'close' } : {});
        if (unread) res.once('finish', () => req.socket.destroy());
      }),
    ).finally(() => {
      metrics.httpRequests.inc({ route, status: String(res.statusCode) });
      metrics.httpDuration.observe({ route }, (performance.now() - started) / 1000);
      logger.debug('API request', { method: req.method, route, status: res.statusCode, ms: Math.round(performance.now() - started) });
      inFlight.delete(work);
    });
    inFlight.add(work);
  };

  let server: Server;
  if (options.tls) {
    const files = new ApiTlsFiles(options.tls);
    const https = createHttpsServer(files.contextOptions(), onRequest);
    // Before the TLS layer takes the socket: new connections get the current files.
    https.prependListener('connection', () => files.refresh(https, logger));
    https.on('tlsClientError', (err: NodeJS.ErrnoException) => logger.debug('TLS handshake with an API client failed', { code: err.code, error: err.message }));
    server = https;
  } else {
    server = createHttpServer(onRequest);
  }
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
  return {
    port,
    protocol,
    stop: () =>
      (stopped ??= (async () => {
        stopping = true;
        const closed = new Promise<void>(resolve => server.close(() => resolve()));
        server.closeIdleConnections();
        let timer: NodeJS.Timeout | undefined;
        const grace = new Promise<void>(resolve => {
          timer = setTimeout(resolve, options.shutdownGraceMs);
        });
        await Promise.race([Promise.allSettled([...inFlight]), grace]);
        clearTimeout(timer);
        server.closeAllConnections();
        await closed;
      })()),
  };
}
