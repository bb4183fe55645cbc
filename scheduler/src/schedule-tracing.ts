import type { JobSchedulerTemplateOptions } from 'bullmq';
import { jobMeta, withJobMeta } from '@taskline/shared/job';
import { MESSAGING_SYSTEM, TRACE_ATTRIBUTES as A, carryTrace, inSpan, recordSpanFailure, startSpan } from '@taskline/shared/tracing';
import type { ScheduleEntry } from './schedule-file.js';

/**
 * Declares (adds or updates) a schedule in a `taskline.schedule <id>` span (kind PRODUCER). The
 * beat is not in the tick path (Redis makes each tick, see reconciler.ts), so no span of its can
 * be a tick's parent: the template carries this span as `traceLink`, and each tick's worker span
 * starts its own trace with a link to it. With no tracer provider nothing is added.
 */
export async function traceScheduleUpsert(
  entry: ScheduleEntry,
  schedulerId: string,
  opts: JobSchedulerTemplateOptions,
  upsert: (opts: JobSchedulerTemplateOptions) => Promise<unknown>,
): Promise<void> {
  const span = startSpan(`taskline.schedule ${entry.id}`, 'producer', {
    [A.system]: MESSAGING_SYSTEM,
    [A.operation]: 'create',
    [A.destination]: entry.queue,
    [A.task]: entry.task,
    [A.schedule]: schedulerId,
  });
  const { traceparent } = carryTrace(span);
  const template = traceparent ? withJobMeta(opts, { ...jobMeta(opts), traceLink: traceparent }) : opts;
  try {
    await inSpan(span, () => upsert(template));
  } catch (err) {
    recordSpanFailure(span, err);
    throw err;
  } finally {
    span.end();
  }
}
