import type { IncomingMessage, ServerResponse } from 'node:http';
import { inSpan, incomingContext, markSpanError, startSpan } from '@taskline/shared/tracing';

const TRACED: Record<string, string> = { jobs: '/api/v1/jobs', jobs_bulk: '/api/v1/jobs/bulk' };

/**
 * Runs an enqueue request (`POST /api/v1/jobs`, `POST /api/v1/jobs/bulk`) in a server span, so
 * its jobs' enqueue spans are children of it; the caller's `traceparent` header is its parent.
 * Other routes (probes, reads, metrics) make no span. `work` answers the request, errors included.
 */
export function traceEnqueueRequest(req: IncomingMessage, res: ServerResponse, route: string, work: () => Promise<void>): Promise<void> {
  const path = TRACED[route];
  if (path === undefined || req.method !== 'POST') return work();
  const { parent, instrumented } = incomingContext(req.headers);
  // Under an HTTP instrumentation the request already has its server span: this one is inside it.
  const span = startSpan(`POST ${path}`, instrumented ? 'internal' : 'server', { 'http.request.method': 'POST', 'http.route': path, 'url.path': path }, parent);
  return inSpan(span, work).finally(() => {
    span.setAttribute('http.response.status_code', res.statusCode);
    // HTTP conventions: a server span is an error for 5xx only (4xx is the client's).
    if (res.statusCode >= 500) markSpanError(span, `HTTP ${res.statusCode}`);
    span.end();
  });
}
