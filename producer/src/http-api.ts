import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ConfigError, ConnectionError, ResultTimeoutError, TasklineError, parseIntegerSetting, type JobResultRecord, type Logger, type Secret } from '@taskline/shared';
import { bearerMatches, readApiToken } from './api-token.js';
import { JobNotFoundError, JobStateError, PayloadTooLargeError, ValidationError } from './errors.js';
import { BodyError, readJsonBody } from './http-body.js';
import { EnqueueBulkError, type BulkJob } from './enqueue.js';
import type { Producer } from './producer.js';

export interface ApiServerOptions {
  producer: Producer;
  /** @defaultValue `8000` (env `PORT`) */
  port?: number;
  /** @defaultValue `0.0.0.0` */
  host?: string;
  /** The bearer token; when unset, `PRODUCER_API_TOKEN` / `PRODUCER_API_TOKEN_FILE` are read. */
  token?: Secret | null;
  /** Refuse to start without a token. @defaultValue `TASKLINE_ENV === 'production'` */
  production?: boolean;
  /** Largest request body. @defaultValue `PRODUCER_MAX_BODY_BYTES` or twice the producer's maxPayloadBytes */
  maxBodyBytes?: number;
  /** How long stop() waits for in-flight requests. @defaultValue `10000` */
  shutdownGraceMs?: number;
  logger: Logger;
  env?: Record<string, string | undefined>;
}

export interface ResolvedApiServerOptions {
  producer: Producer;
  port: number;
  host: string;
  token: Secret | null;
  production: boolean;
  maxBodyBytes: number;
  shutdownGraceMs: number;
  logger: Logger;
}

export interface ApiServer {
  readonly port: number;
  /** Stops accepting, lets in-flight requests finish (up to the grace), then closes. Idempotent. */
  stop(): Promise<void>;
}

export function resolveApiServerOptions(options: ApiServerOptions): ResolvedApiServerOptions {
  const env = options.env ?? process.env;
  const token = options.token !== undefined ? options.token : readApiToken(env);
  const production = options.production ?? env['TASKLINE_ENV'] === 'production';
  if (!token && production) {
    throw new ConfigError(
      'CONFIG_API_TOKEN_MISSING',
      'PRODUCER_API_TOKEN',
      'The producer API refuses to start in production without a token; set PRODUCER_API_TOKEN (or PRODUCER_API_TOKEN_FILE) to a long random value, e.g. `openssl rand -hex 32`.',
    );
  }
  return {
    producer: options.producer,
    port: options.port ?? parseIntegerSetting('PORT', env['PORT'], { min: 0, max: 65535 }) ?? 8000,
    host: options.host ?? '0.0.0.0',
    token,
    production,
    maxBodyBytes:
      options.maxBodyBytes ??
      parseIntegerSetting('PRODUCER_MAX_BODY_BYTES', env['PRODUCER_MAX_BODY_BYTES'], { min: 1024, max: 1024 * 1024 * 1024 }) ??
      options.producer.options.maxPayloadBytes * 2,
    shutdownGraceMs: options.shutdownGraceMs ?? 10_000,
    logger: options.logger,
  };
}

type Route = 'jobs' | 'jobs_bulk' | 'job' | 'job_events' | 'health' | 'metrics' | 'unknown';

/** Event streams open at once per API process; more get 503 (each holds a socket and a subscription). */
const MAX_EVENT_STREAMS = 200;
/** Longest an event stream stays open (`?timeout=` seconds may lower it). */
const MAX_STREAM_SECONDS = 3600;
const STREAM_HEARTBEAT_MS = 15_000;

function routeOf(path: string): { route: Route; id?: string } {
  if (path === '/api/v1/jobs') return { route: 'jobs' };
  if (path === '/api/v1/jobs/bulk') return { route: 'jobs_bulk' };
  const job = /^\/api\/v1\/jobs\/([A-Za-z0-9_.:-]{1,200})$/.exec(path);
  if (job?.[1]) return { route: 'job', id: job[1] };
  const events = /^\/api\/v1\/jobs\/([A-Za-z0-9_.:-]{1,200})\/events$/.exec(path);
  if (events?.[1]) return { route: 'job_events', id: events[1] };
  if (path === '/api/v1/health') return { route: 'health' };
  if (path === '/metrics') return { route: 'metrics' };
  return { route: 'unknown' };
}

const ALLOWED: Record<Route, string[]> = {
  jobs: ['POST'],
  jobs_bulk: ['POST'],
  job: ['GET', 'DELETE'],
  job_events: ['GET'],
  health: ['GET'],
  metrics: ['GET'],
  unknown: [],
};

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof BodyError) return new HttpError(err.status, err.code, err.message);
  if (err instanceof PayloadTooLargeError) return new HttpError(413, err.code, err.message);
  if (err instanceof ValidationError) return new HttpError(400, err.code, err.message);
  if (err instanceof JobNotFoundError) return new HttpError(404, err.code, err.message);
  if (err instanceof JobStateError) return new HttpError(409, err.code, err.message);
  if (err instanceof ResultTimeoutError) return new HttpError(504, err.code, err.message);
  if (err instanceof ConnectionError) return new HttpError(503, err.code, err.message);
  if (err instanceof TasklineError) return new HttpError(500, err.code, err.message);
  return new HttpError(500, 'INTERNAL', 'Internal error; see the producer log.');
}

/** A record as API clients see it: stacks and worker host:pid are for operators (logs), not clients. */
function publicRecord(record: JobResultRecord): Omit<JobResultRecord, 'worker'> {
  const { worker: _worker, ...rest } = record;
  return rest.error ? { ...rest, error: { ...rest.error, stack: null } } : rest;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(text);
}

function asObject(body: unknown, what: string): Record<string, unknown> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new HttpError(400, 'INVALID_BODY', `${what} must be a JSON object.`);
  }
  return body as Record<string, unknown>;
}

function toBulkJob(value: unknown, where: string): BulkJob {
  const body = asObject(value, where);
  if (typeof body['task'] !== 'string' || body['task'] === '') {
    throw new HttpError(400, 'INVALID_TASK', `${where} needs "task", the name of a task (a non-empty string).`);
  }
  if (body['options'] !== undefined && (body['options'] === null || typeof body['options'] !== 'object' || Array.isArray(body['options']))) {
    throw new HttpError(400, 'INVALID_OPTION', `${where}.options must be an object.`);
  }
  return { task: body['task'], data: body['data'] ?? null, ...(body['options'] ? { options: body['options'] as BulkJob['options'] } : {}) };
}

/** The producer's HTTP API: enqueue, read, revoke, health and metrics. node:http, no framework. */
export async function startApiServer(input: ApiServerOptions): Promise<ApiServer> {
  const options = resolveApiServerOptions(input);
  const { producer, logger, token } = options;
  const metrics = producer.metrics;
  if (!token) {
    logger.warn(
      'THE PRODUCER API IS OPEN: no PRODUCER_API_TOKEN is set, so anyone who can reach this port can enqueue and revoke jobs. Set PRODUCER_API_TOKEN (production refuses to start without it).',
    );
  }

  const handle = async (req: IncomingMessage, res: ServerResponse, route: Route, id: string | undefined): Promise<void> => {
    if (route === 'unknown') throw new HttpError(404, 'NOT_FOUND', 'No such route; the API has /api/v1/jobs, /api/v1/jobs/:id, /api/v1/health and /metrics.');
    if (!ALLOWED[route].includes(req.method ?? '')) {
      throw new HttpError(405, 'METHOD_NOT_ALLOWED', `${req.method ?? '?'} is not allowed here; use ${ALLOWED[route].join(' or ')}.`);
    }
    if (route === 'metrics') {
      const registry = producer.connections.registry;
      return send(res, 200, await registry.metrics(), { 'content-type': registry.contentType });
    }
    if (route === 'health') {
      const report = await producer.checkHealth();
      const failing = [report.broker, report.backend].filter(h => !h.ok).map(h => ({ service: h.service, error: h.error, code: h.code }));
      return send(res, report.ok ? 200 : 503, { ok: report.ok, ...(failing.length ? { failing } : {}), broker: report.broker, backend: report.backend });
    }
    if (token && !bearerMatches(req.headers.authorization, token)) {
      throw new HttpError(401, 'UNAUTHORIZED', 'Missing or wrong API token; send "Authorization: Bearer <PRODUCER_API_TOKEN>".');
    }
    if (route === 'jobs') {
      const job = toBulkJob(await readJsonBody(req, options.maxBodyBytes), 'The body');
      return send(res, 202, await producer.enqueue(job.task, job.data, job.options));
    }
    if (route === 'jobs_bulk') {
      const body = asObject(await readJsonBody(req, options.maxBodyBytes), 'The body');
      const jobs = body['jobs'];
      if (!Array.isArray(jobs) || jobs.length === 0 || jobs.length > 10_000) {
        throw new HttpError(400, 'INVALID_BODY', 'The body must be {"jobs": [{task, data, options}, ...]} with 1 to 10,000 jobs.');
      }
      const bulk = jobs.map((j, i) => toBulkJob(j, `jobs[${i}]`));
      try {
        return send(res, 202, { jobs: await producer.enqueueBulk(bulk) });
      } catch (err) {
        // Part of the batch was added: say per job which, so a client resends only the rest.
        if (err instanceof EnqueueBulkError) return send(res, 207, { error: err.message, code: err.code, jobs: err.outcomes });
        throw err;
      }
    }
    const jobId = id as string;
    if (route === 'job_events') return streamEvents(req, res, jobId);
    if (req.method === 'DELETE') return send(res, 200, publicRecord(await producer.revoke(jobId, 'revoked through the HTTP API')));
    const record = await producer.getResult(jobId);
    if (!record) throw new JobNotFoundError(jobId);
    return send(res, 200, publicRecord(record));
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
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
      const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), STREAM_HEARTBEAT_MS);
      try {
        let next = first;
        let final = false;
        while (!next.done) {
          const event = next.value;
          final = event.final;
          const name = event.final ? 'final' : event.progress !== undefined && event.record === undefined ? 'progress' : 'state';
          const body = event.final && event.record ? publicRecord(event.record) : { state: event.state, ...(event.progress !== undefined ? { progress: event.progress } : {}) };
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
  const server: Server = createServer((req, res) => {
    const started = performance.now();
    const { route, id } = routeOf((req.url ?? '/').split('?')[0] ?? '/');
    const work = handle(req, res, route, id)
      .catch((err: unknown) => {
        const http = toHttpError(err);
        if (http.status >= 500) logger.error('API request failed', { route, error: err });
        // A body we did not read (401, 413, early 400) must not be parsed as the next request.
        const unread = !req.complete;
        if (!res.headersSent) send(res, http.status, { error: http.message, code: http.code }, unread || stopping ? { connection: 'close' } : {});
        if (unread) res.once('finish', () => req.socket.destroy());
      })
      .finally(() => {
        metrics.httpRequests.inc({ route, status: String(res.statusCode) });
        metrics.httpDuration.observe({ route }, (performance.now() - started) / 1000);
        logger.debug('API request', { method: req.method, route, status: res.statusCode, ms: Math.round(performance.now() - started) });
        inFlight.delete(work);
      });
    inFlight.add(work);
  });
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
  logger.info('Producer API listening', { host: options.host, port, auth: token ? 'bearer token' : 'NONE' });

  let stopped: Promise<void> | null = null;
  return {
    port,
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
