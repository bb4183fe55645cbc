import { DelayedError, UnrecoverableError, type Job } from 'bullmq';
import { jobMeta } from '@taskline/shared/job';
import { MESSAGING_SYSTEM, TRACE_ATTRIBUTES as A, consumerParent, inSpan, isTracing, recordSpanFailure, startSpan } from '@taskline/shared/tracing';

type Processor = (job: Job, token?: string) => Promise<null>;

/**
 * Runs each job in a `taskline.process <task>` span (kind CONSUMER), the child of the enqueue span
 * the job carries (see consumerParent for ticks and jobs that carry none). The handler runs with
 * it active, so its log lines carry its ids and its own spans nest under it. A failed attempt is
 * status ERROR with the handler's error recorded; a job handed back (rate limit, forced
 * shutdown) is not an error. With no tracer provider it only calls the processor.
 */
export function traceJobs(queue: string, processor: Processor): Processor {
  // Two parameters, as the processor's: BullMQ then makes no AbortController per job.
  return function processTracedJob(job: Job, token?: string): Promise<null> {
    if (!isTracing()) return processor(job, token);
    const { parent, links } = consumerParent(jobMeta(job.opts));
    const span = startSpan(
      `taskline.process ${job.name}`,
      'consumer',
      {
        [A.system]: MESSAGING_SYSTEM,
        [A.operation]: 'process',
        [A.destination]: queue,
        [A.messageId]: job.id ?? '',
        [A.task]: job.name,
        [A.attempt]: job.attemptsMade + 1,
        [A.delivery]: job.attemptsStarted > 0 ? job.attemptsStarted : 1,
        ...(job.repeatJobKey ? { [A.schedule]: job.repeatJobKey } : {}),
      },
      parent,
      links,
    );
    return inSpan(span, () => processor(job, token)).then(
      result => {
        span.end();
        return result;
      },
      (err: unknown) => {
        if (!(err instanceof DelayedError)) {
          // A final failure reaches BullMQ as an UnrecoverableError; the handler's own error is its cause.
          recordSpanFailure(span, err instanceof UnrecoverableError && err.cause !== undefined ? err.cause : err);
        }
        span.end();
        throw err;
      },
    );
  };
}
