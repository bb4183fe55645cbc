import type { IncomingMessage, ServerResponse } from 'node:http';
import { HttpError, toPublicRecord } from './api-responses.js';
import type { AnyProducer } from './producer.js';

/** Event streams open at once per API process; more get 503 (each holds a socket and a subscription). */
const MAX_EVENT_STREAMS = 200;
/** Longest an event stream stays open (`?timeout=` seconds may lower it). */
const MAX_STREAM_SECONDS = 3600;
const STREAM_HEARTBEAT_MS = 15_000;

type Watch = ReturnType<AnyProducer['watch']>;

/**
 * `GET /api/v1/jobs/:id/events`: server-sent events of one job — its current state, then every
 * state and progress change, then `event: final` with the record, and the stream ends. Bounded in
 * number ({@link MAX_EVENT_STREAMS}) and duration ({@link MAX_STREAM_SECONDS}).
 */
export function createEventStreams(producer: AnyProducer): (req: IncomingMessage, res: ServerResponse, jobId: string) => Promise<void> {
  let open = 0;
  return async (req, res, jobId) => {
    const asked = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('timeout') ?? MAX_STREAM_SECONDS);
    if (!Number.isInteger(asked) || asked < 1 || asked > MAX_STREAM_SECONDS) {
      throw new HttpError(400, 'INVALID_OPTION', `timeout must be a whole number of seconds from 1 to ${MAX_STREAM_SECONDS}.`);
    }
    if (open >= MAX_EVENT_STREAMS) throw new HttpError(503, 'TOO_MANY_STREAMS', `${MAX_EVENT_STREAMS} event streams are open; try again later or poll GET /api/v1/jobs/:id.`);
    open += 1;
    const stop = new AbortController();
    const onClose = (): void => stop.abort();
    res.once('close', onClose);
    try {
      const events = producer.watch(jobId, { timeoutMs: asked * 1000, signal: stop.signal });
      const first = await events.next();
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no', 'x-content-type-options': 'nosniff' });
      const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), STREAM_HEARTBEAT_MS);
      try {
        await writeEvents(res, events, first, stop.signal);
      } finally {
        clearInterval(heartbeat);
        await events.return(undefined);
      }
      res.end();
    } finally {
      res.off('close', onClose);
      open -= 1;
    }
  };
}

async function writeEvents(res: ServerResponse, events: Watch, first: Awaited<ReturnType<Watch['next']>>, signal: AbortSignal): Promise<void> {
  let next = first;
  let final = false;
  while (!next.done) {
    const event = next.value;
    final = event.final;
    const name = event.final ? 'final' : event.progress !== undefined && event.record === undefined ? 'progress' : 'state';
    const body = event.final && event.record ? toPublicRecord(event.record) : { state: event.state, ...(event.progress !== undefined ? { progress: event.progress } : {}) };
    res.write(`event: ${name}\ndata: ${JSON.stringify(body)}\n\n`);
    if (final || signal.aborted) break;
    next = await events.next();
  }
  if (!final && !signal.aborted) res.write(`event: timeout\ndata: ${JSON.stringify({ error: 'The stream reached its timeout before the job finished; open it again.' })}\n\n`);
}
