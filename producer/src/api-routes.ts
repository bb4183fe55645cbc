import type { IncomingMessage, ServerResponse } from 'node:http';
import { type HealthReport } from '@taskline/shared';
import { isJobId } from '@taskline/shared/job';
import type { ResolvedApiServerOptions } from './api-options.js';
import { createEventStreams } from './api-events.js';
import { HttpError, toPublicRecord } from './api-responses.js';
import { bearerMatches } from './api-token.js';
import { EnqueueBulkError, type BulkJob } from './enqueue.js';
import { JobNotFoundError } from './errors.js';
import { assertJsonContentType, readJsonBody } from './http-body.js';

/** The HTTP API's routes: which path is which, what each allows, and what each answers. */

export type Route = 'jobs' | 'jobs_bulk' | 'job' | 'job_events' | 'healthz' | 'readyz' | 'health' | 'metrics' | 'unknown';


export function routeOf(path: string): { route: Route; id?: string } {
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

export function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
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
export function cachedHealth(check: () => Promise<HealthReport>): () => Promise<boolean> {
  let last: { at: number; ok: Promise<boolean> } | null = null;
  return () => {
    if (!last || performance.now() - last.at > HEALTHZ_CACHE_MS) {
      last = { at: performance.now(), ok: check().then(r => r.ok, () => false) };
    }
    return last.ok;
  };
}

type Handler = (req: IncomingMessage, res: ServerResponse, route: Route, id: string | undefined) => Promise<void>;

/** Answers one request on its route; an error it throws becomes the JSON error answer (http-api.ts). */
export function createRouteHandler(options: ResolvedApiServerOptions): Handler {
  const { producer, token } = options;
  const readyz = cachedHealth(() => producer.checkHealth());
  const jobs = jobRoutes(options);
  return async (req, res, route, id) => {
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
    return jobs(req, res, route, id);
  };
}

/** Enqueue (one, bulk), read, revoke and stream one job: the token was checked. */
function jobRoutes(options: ResolvedApiServerOptions): Handler {
  const { producer } = options;
  const streamEvents = createEventStreams(producer);
  return async (req, res, route, id) => {
    if (route === 'jobs') {
      assertJsonContentType(req);
      const job = toBulkJob(await readJsonBody(req, options.maxBodyBytes), 'The body', options.allowedQueues);
      return send(res, 202, await producer.enqueue(job.task, job.data, job.options));
    }
    if (route === 'jobs_bulk') return enqueueBulk(req, res, options);
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
}

async function enqueueBulk(req: IncomingMessage, res: ServerResponse, options: ResolvedApiServerOptions): Promise<void> {
  assertJsonContentType(req);
  const body = asObject(await readJsonBody(req, options.maxBodyBytes), 'The body');
  const jobs = body['jobs'];
  if (!Array.isArray(jobs) || jobs.length === 0 || jobs.length > MAX_BULK_JOBS) {
    throw new HttpError(400, 'INVALID_BODY', `The body must be {"jobs": [{task, data, options}, ...]} with 1 to ${MAX_BULK_JOBS.toLocaleString('en')} jobs.`);
  }
  const bulk = jobs.map((j, i) => toBulkJob(j, `jobs[${i}]`, options.allowedQueues));
  try {
    return send(res, 202, { jobs: await options.producer.enqueueBulk(bulk) });
  } catch (err) {
    // Part of the batch was added: say per job which, so a client resends only the rest.
    if (err instanceof EnqueueBulkError) return send(res, 207, { error: err.message, code: err.code, jobs: err.outcomes });
    throw err;
  }
}
