import {
  ProxyTracerProvider,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  createTraceState,
  isSpanContextValid,
  propagation,
  trace,
  type Attributes,
  type Context,
  type Link,
  type Span,
  type SpanContext,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api';
import { toJobErrorInfo } from '../job/index.js';
import { scrubSecrets } from '../process/index.js';

export type { Span } from '@opentelemetry/api';

/**
 * Taskline's OpenTelemetry spans, made with the OpenTelemetry API only: with no tracer provider
 * registered (the application brings its SDK and exporter) every call here is the API's no-op.
 * A trace travels in the job as a W3C `traceparent` (and `tracestate`, when there is one) in
 * taskline's job meta, so it does not depend on which propagator each process configured.
 */

/** The instrumentation scope of every taskline span. */
const TRACER_NAME = 'taskline';

/** Attribute names, following OpenTelemetry's messaging conventions where one exists. */
export const TRACE_ATTRIBUTES = {
  system: 'messaging.system',
  destination: 'messaging.destination.name',
  messageId: 'messaging.message.id',
  operation: 'messaging.operation.type',
  task: 'taskline.task',
  attempt: 'taskline.attempt',
  delivery: 'taskline.delivery',
  schedule: 'taskline.schedule',
  deduplicated: 'taskline.deduplicated',
} as const;

export const MESSAGING_SYSTEM = 'taskline';

let cached: { provider: TracerProvider; tracer: Tracer } | null = null;
let noop: TracerProvider | null = null;

/**
 * False while no tracer provider is registered (the default): the hot paths then skip their
 * spans entirely rather than make the API's no-op ones (see `pnpm bench:tracing`).
 */
export function isTracing(): boolean {
  const global = trace.getTracerProvider();
  // An unset proxy delegates to the API's no-op provider, the same one a fresh proxy returns.
  return !(global instanceof ProxyTracerProvider) || global.getDelegate() !== (noop ??= new ProxyTracerProvider().getDelegate());
}

/**
 * The tracer of the provider registered now. Looked up per use (a provider may be registered
 * after import, or replaced in tests); made once per provider.
 */
function tasklineTracer(): Tracer {
  const global = trace.getTracerProvider();
  const provider = global instanceof ProxyTracerProvider ? global.getDelegate() : global;
  if (cached?.provider !== provider) cached = { provider, tracer: provider.getTracer(TRACER_NAME) };
  return cached.tracer;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
/** W3C caps tracestate at 32 members; 512 characters keeps a job's meta small. */
const MAX_TRACESTATE = 512;

/** What a job carries of its trace: nothing unless the span is a valid one (a real trace). */
export interface CarriedTrace {
  traceparent?: string;
  tracestate?: string;
}

/** The span's context as W3C `traceparent`/`tracestate`, or `{}` when it is not in a trace. */
export function carryTrace(span: Span): CarriedTrace {
  const sc = span.spanContext();
  if (!isSpanContextValid(sc)) return {};
  const traceparent = `00-${sc.traceId}-${sc.spanId}-0${(sc.traceFlags & 1).toString(16)}`;
  const state = sc.traceState?.serialize();
  return state && state.length <= MAX_TRACESTATE ? { traceparent, tracestate: state } : { traceparent };
}

/** The remote span context a job carries, or `undefined` when it carries none (or a malformed one). */
function carriedSpanContext(traceparent: unknown, tracestate?: unknown): SpanContext | undefined {
  if (typeof traceparent !== 'string') return undefined;
  const m = TRACEPARENT.exec(traceparent);
  if (!m) return undefined;
  const sc: SpanContext = { traceId: m[1] as string, spanId: m[2] as string, traceFlags: parseInt(m[3] as string, 16) & 1, isRemote: true };
  if (typeof tracestate === 'string' && tracestate && tracestate.length <= MAX_TRACESTATE) sc.traceState = createTraceState(tracestate);
  return isSpanContextValid(sc) ? sc : undefined;
}

/** A context whose parent is the carried span (for the consumer's span), or the root one. */
function contextFromCarried(sc: SpanContext | undefined): Context {
  return sc ? trace.setSpanContext(ROOT_CONTEXT, sc) : ROOT_CONTEXT;
}

/**
 * Marks the span failed: status ERROR and the exception as an event, with the same scrubbing
 * as stored errors (no URL credentials, no values of a thrown non-Error).
 */
export function recordSpanFailure(span: Span, thrown: unknown): void {
  if (!span.isRecording()) return;
  const info = toJobErrorInfo(thrown);
  const message = scrubSecrets(info.message);
  span.recordException({ name: info.type, message, ...(info.stack ? { stack: scrubSecrets(info.stack) } : {}) });
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}

const KINDS = { producer: SpanKind.PRODUCER, consumer: SpanKind.CONSUMER, server: SpanKind.SERVER, internal: SpanKind.INTERNAL } as const;
type TasklineSpanKind = keyof typeof KINDS;

/** Starts one of taskline's spans, a child of `parent` (by default the active context). */
export function startSpan(name: string, kind: TasklineSpanKind, attributes: Attributes, parent: Context = context.active(), links?: Link[]): Span {
  return tasklineTracer().startSpan(name, { kind: KINDS[kind], attributes, ...(links ? { links } : {}) }, parent);
}

/** Runs `fn` with `span` active, so log lines and the spans of other libraries nest under it. */
export function inSpan<T>(span: Span, fn: () => T): T {
  return context.with(trace.setSpan(context.active(), span), fn);
}

/**
 * The parent of an HTTP request's span: the active one when an HTTP instrumentation already made
 * a server span for the request, else the caller's `traceparent` header (through the propagator
 * the application registered; none is registered without an SDK).
 */
export function incomingContext(headers: Record<string, string | string[] | undefined>): { parent: Context; instrumented: boolean } {
  const active = context.active();
  if (trace.getSpan(active)) return { parent: active, instrumented: true };
  return { parent: propagation.extract(ROOT_CONTEXT, headers), instrumented: false };
}

/**
 * The worker's parent for a job: the enqueue span it carries (a remote parent), else a new
 * trace, never whatever context the worker loop happens to run in. A tick carries instead the
 * beat span that declared its schedule, as a link: each tick is its own trace.
 */
export function consumerParent(meta: { traceparent?: string; tracestate?: string; traceLink?: string }): { parent: Context; links?: Link[] } {
  const parent = contextFromCarried(carriedSpanContext(meta.traceparent, meta.tracestate));
  const linked = meta.traceLink === undefined ? undefined : carriedSpanContext(meta.traceLink);
  return linked ? { parent, links: [{ context: linked }] } : { parent };
}

/** Status ERROR without an exception (e.g. an HTTP 5xx answer). */
export function markSpanError(span: Span, message: string): void {
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}
