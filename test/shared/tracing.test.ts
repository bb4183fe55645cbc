import { expect } from 'chai';
import { ROOT_CONTEXT, TraceFlags, createTraceState, trace } from '@opentelemetry/api';
import { jobMeta, withJobMeta } from '@taskline/shared/job';
import { carryTrace, consumerParent } from '@taskline/shared/tracing';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN_ID = '00f067aa0ba902b7';

/** The W3C context a job carries in its meta, and what the worker makes of it (pure units). */
describe('tracing: the trace context carried in a job', function () {
  const span = (flags: number, state?: string) =>
    trace.wrapSpanContext({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: flags, ...(state ? { traceState: createTraceState(state) } : {}) });

  it('carries a span as traceparent (+ tracestate) through the job meta, and the worker gets it back as a remote parent', () => {
    const carried = carryTrace(span(TraceFlags.SAMPLED, 'vendor=abc'));
    expect(carried).to.deep.equal({ traceparent: `00-${TRACE_ID}-${SPAN_ID}-01`, tracestate: 'vendor=abc' });
    const opts = withJobMeta({ jobId: 'x' }, { timeoutMs: 5, ...carried });
    const stored = JSON.parse(JSON.stringify(opts)) as object; // as BullMQ stores it
    const parent = trace.getSpanContext(consumerParent(jobMeta(stored)).parent);
    expect(parent).to.deep.include({ traceId: TRACE_ID, spanId: SPAN_ID, traceFlags: 1, isRemote: true });
    expect(parent?.traceState?.get('vendor')).to.equal('abc');
    expect(carryTrace(span(TraceFlags.NONE)).traceparent, 'an unsampled trace stays unsampled').to.match(/-00$/);
  });

  it('a span outside any trace adds nothing; a malformed or zero context is ignored (a new trace), never an error', () => {
    expect(carryTrace(trace.wrapSpanContext({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 }))).to.deep.equal({});
    expect(withJobMeta({ jobId: 'x' }, {})).to.deep.equal({ jobId: 'x' });
    for (const traceparent of ['garbage', `00-${'0'.repeat(32)}-${SPAN_ID}-01`, `00-${TRACE_ID.toUpperCase()}-${SPAN_ID}-01`, `01-${TRACE_ID}-${SPAN_ID}-01`, 42]) {
      const { parent, links } = consumerParent(jobMeta({ taskline: { traceparent, traceLink: 'nope' } }));
      expect(parent, String(traceparent)).to.equal(ROOT_CONTEXT);
      expect(links).to.equal(undefined);
    }
  });

  it('a schedule template carries a link, not a parent: each tick starts its own trace', () => {
    const { parent, links } = consumerParent(jobMeta({ taskline: { traceLink: `00-${TRACE_ID}-${SPAN_ID}-01` } }));
    expect(parent).to.equal(ROOT_CONTEXT);
    expect(links?.map(l => l.context.spanId)).to.deep.equal([SPAN_ID]);
  });
});
