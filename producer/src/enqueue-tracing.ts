import { jobMeta, withJobMeta } from '@taskline/shared/job';
import { MESSAGING_SYSTEM, TRACE_ATTRIBUTES as A, carryTrace, isTracing, recordSpanFailure, startSpan, type Span } from '@taskline/shared/tracing';
import { EnqueueBulkError, type EnqueueResult, type PreparedJob } from './enqueue.js';

/**
 * One `taskline.enqueue <task>` span (kind PRODUCER) per job, a child of the active context (the
 * HTTP request's span, or the application's own). A job in a trace carries the span's context in
 * its meta, so the worker's span becomes its child. With no tracer provider there are none, and
 * nothing is added to the job.
 */
export function startEnqueueSpans(prepared: PreparedJob[]): Span[] {
  if (!isTracing()) return [];
  return prepared.map(p => {
    const span = startSpan(`taskline.enqueue ${p.task}`, 'producer', {
      [A.system]: MESSAGING_SYSTEM,
      [A.operation]: 'send',
      [A.destination]: p.options.queue,
      [A.messageId]: p.id,
      [A.task]: p.task,
    });
    const carried = carryTrace(span);
    if (carried.traceparent) p.jobOptions = withJobMeta(p.jobOptions, { ...jobMeta(p.jobOptions), ...carried });
    return span;
  });
}

/** Ends the spans: a deduplicated job names the job that holds the key; a job that may not exist is an error. */
export function endEnqueueSpans(spans: Span[], results: EnqueueResult[] | null, error?: unknown): void {
  spans.forEach((span, i) => {
    const result = results?.[i];
    const outcome = error instanceof EnqueueBulkError ? error.outcomes[i] : undefined;
    const id = result?.id ?? outcome?.id;
    if (id !== undefined) span.setAttribute(A.messageId, id);
    if (result?.deduplicated || outcome?.status === 'deduplicated') span.setAttribute(A.deduplicated, true);
    if (error !== undefined && outcome?.status !== 'added' && outcome?.status !== 'deduplicated') recordSpanFailure(span, error);
    span.end();
  });
}
