/**
 * `pnpm bench:tracing` — what the tracing code adds per job when no tracer provider is registered
 * (the default: taskline forces no SDK), and, for scale, with one recording every span. A
 * micro-measurement of the added code paths only (no Redis), so it means something on a busy
 * machine where `pnpm bench` does not. Prints one JSON line per mode: ns added per job (worker,
 * enqueue) and per log line, median of rounds.
 */
import type { Job } from 'bullmq';
import { context, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { activeTraceIds } from '../../shared/dist/process/trace-ids.js';
import { endEnqueueSpans, startEnqueueSpans } from '../../producer/dist/enqueue-tracing.js';
import type { PreparedJob } from '../../producer/dist/enqueue.js';
import { traceJobs } from '../../worker/dist/job-tracing.js';

const JOBS = Number(process.env['BENCH_JOBS'] ?? 20_000);
const ROUNDS = 7;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function nsPerJob(run: (i: number) => unknown): Promise<number> {
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const started = process.hrtime.bigint();
    for (let i = 0; i < JOBS; i++) await run(i);
    rounds.push(Number(process.hrtime.bigint() - started) / JOBS);
  }
  return Math.round(median(rounds));
}

const prepared = (i: number): PreparedJob =>
  ({ task: 'add', data: null, id: `id-${i}`, options: { queue: 'default' }, jobOptions: { jobId: `id-${i}` }, dedupId: undefined }) as unknown as PreparedJob;
const job = { name: 'add', id: 'id-1', opts: {}, attemptsMade: 0, attemptsStarted: 1 } as unknown as Job;
const processor = (): Promise<null> => Promise.resolve(null);
const traced = traceJobs('default', processor);
/** Exports nothing, keeps nothing: the cost of recording spans, not of storing them. */
const discard: SpanExporter = { export: (_spans, done) => done({ code: 0 }), shutdown: () => Promise.resolve() };

async function measure(mode: string): Promise<void> {
  const baseline = await nsPerJob(() => processor());
  const worker = await nsPerJob(() => traced(job));
  const jobOnly = await nsPerJob(i => [prepared(i)]);
  const enqueue = await nsPerJob(i => {
    const p = [prepared(i)];
    endEnqueueSpans(startEnqueueSpans(p), [{ id: `id-${i}`, deduplicated: false }]);
  });
  const logIds = await nsPerJob(() => activeTraceIds());
  console.log(JSON.stringify({ mode, jobs: JOBS, worker_added_ns: worker - baseline, enqueue_added_ns: enqueue - jobOnly, log_line_added_ns: logIds }));
}

await measure('no provider (default)');
trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(discard)] }));
context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
await measure('recording provider (spans discarded)');
