/**
 * Taskline's OpenTelemetry spans (the API only; applications bring their SDK): the trace context
 * a job carries from enqueue to handler, span starts, failures recorded without secrets.
 * The names taskline's other packages use; no compatibility promise beyond them.
 */
export { MESSAGING_SYSTEM, TRACE_ATTRIBUTES, carryTrace, consumerParent, inSpan, incomingContext, isTracing, markSpanError, recordSpanFailure, startSpan } from './spans.js';
export type { Span } from './spans.js';
