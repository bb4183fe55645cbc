import { context, isSpanContextValid, trace } from '@opentelemetry/api';

/** The active span's ids for a log line, or `null` outside a trace (the logger's format asks). */
export function activeTraceIds(): { trace_id: string; span_id: string } | null {
  const sc = trace.getSpanContext(context.active());
  return sc && isSpanContextValid(sc) ? { trace_id: sc.traceId, span_id: sc.spanId } : null;
}
