import { int, list, metricsPortSetting, oneOf, setting, text, type Table } from '@taskline/shared/settings';

/**
 * The worker's settings, as data: `resolveWorkerOptions` resolves them (options, then the
 * environment, then the default), `taskline-worker start` declares the flags from them, and
 * docs/CONFIGURATION.md is generated from them. Keys are `WorkerOptions` fields.
 */
export const WORKER_SETTINGS = {
  queues: setting({
    flag: 'queues',
    parser: list(),
    defaultDoc: 'every queue the tasks are routed to (their `queue`, else the routes, else `default`)',
    doc: 'Queues to consume.',
  }),
  concurrency: setting({ env: 'TASKLINE_CONCURRENCY', flag: 'concurrency', parser: int({ min: 1, max: 10_000 }), default: 10, doc: 'Jobs run at once per queue per process.' }),
  shutdownGraceMs: setting({
    env: 'TASKLINE_SHUTDOWN_GRACE_MS',
    parser: int({ min: 0, max: 86_400_000 }),
    default: 30_000,
    doc: 'How long SIGTERM (and `close()`) lets in-flight jobs finish before forcing.',
  }),
  lockDurationMs: setting({
    env: 'TASKLINE_LOCK_DURATION_MS',
    parser: int({ min: 1000, max: 86_400_000 }),
    default: 30_000,
    doc: "Job lock without renewal (renewed every half of it while the job runs). A killed worker's jobs are redelivered after it expires.",
  }),
  stalledIntervalMs: setting({
    env: 'TASKLINE_STALLED_INTERVAL_MS',
    parser: int({ min: 100, max: 86_400_000 }),
    default: 30_000,
    doc: 'How often lock-expired (stalled) jobs are looked for and redelivered.',
  }),
  maxStalledCount: setting({
    env: 'TASKLINE_MAX_STALLED_COUNT',
    parser: int({ min: 0, max: 1000 }),
    default: 3,
    doc: "Redeliveries after stalling before a job is failed (higher than BullMQ's 1, so a rolling restart that kills a job twice does not lose it). The job's record then becomes `FAILURE` (`WorkerLostError`) within `TASKLINE_SETTLE_INTERVAL_MS`.",
  }),
  resultWriteDeadlineMs: setting({
    env: 'RESULT_WRITE_DEADLINE_MS',
    parser: int({ min: 0, max: 3_600_000 }),
    default: 30_000,
    doc: 'How long a result write keeps retrying through a result-backend outage (or an out-of-memory backend).',
  }),
  startedDelayMs: setting({
    env: 'TASKLINE_STARTED_DELAY_MS',
    parser: int({ min: 0, max: 60_000 }),
    default: 0,
    doc: "How long a job's `STARTED` write is held back; a job that finishes sooner writes only its final record (one write per job instead of two). `0` sends `STARTED` with the next batch of writes. A redelivered job always writes `STARTED` first.",
  }),
  maxResultBytes: setting({
    env: 'TASKLINE_MAX_RESULT_BYTES',
    parser: int({ min: 1, max: 512 * 1024 * 1024 }),
    default: 1024 * 1024,
    doc: 'Largest handler result (JSON bytes); a larger one fails the attempt with `ResultTooLargeError` and is never stored.',
  }),
  progressIntervalMs: setting({
    env: 'TASKLINE_PROGRESS_INTERVAL_MS',
    parser: int({ min: 0, max: 600_000 }),
    default: 250,
    doc: '`ctx.progress()` is stored (and published) at most this often per job; the latest value always wins and is stored with the outcome.',
  }),
  settleIntervalMs: setting({
    env: 'TASKLINE_SETTLE_INTERVAL_MS',
    parser: int({ min: 100, max: 3_600_000 }),
    default: 5000,
    doc: "How often each queue's failed set is checked for jobs the broker failed on its own (stall limit, a result that could not be stored), whose record is then made `FAILURE`.",
  }),
  isolation: setting({
    env: 'TASKLINE_ISOLATION',
    flag: 'isolation',
    parser: oneOf(['none', 'process', 'thread'], { code: 'WORKER_BAD_ISOLATION' }),
    default: 'none',
    flagDoc: 'Run every handler in a pool of child processes or worker threads (none: only tasks marked isolated)',
    doc: '`process` or `thread` runs every handler in a pool of child processes or worker threads (unless the task says `isolated: false`); `none` isolates only tasks marked `isolated`. Isolated handlers never block the event loop and are killed at their hard limit (`hardTimeoutMs`, else `timeoutMs` + `TASKLINE_KILL_GRACE_MS`).',
  }),
  isolatedPoolSize: setting({
    env: 'TASKLINE_ISOLATED_POOL_SIZE',
    parser: int({ min: 1, max: 1024 }),
    defaultDoc: 'lower of the concurrency and the CPU count',
    doc: 'Isolated runners per kind in a worker process; started with the worker (it is ready once they loaded the tasks module).',
  }),
  killGraceMs: setting({
    env: 'TASKLINE_KILL_GRACE_MS',
    parser: int({ min: 0, max: 600_000 }),
    default: 5000,
    doc: 'After a soft time limit, a revoke or a forced shutdown aborts an isolated handler, how long it may take before its runner is killed and replaced.',
  }),
  celeryQueues: setting({
    env: 'TASKLINE_CELERY_QUEUES',
    flag: 'celery-queues',
    parser: list(),
    defaultDoc: 'none',
    doc: "Celery queues (kombu's Redis lists on the broker) whose Celery protocol-2 messages this worker also runs, as taskline jobs (docs/MIGRATION-FROM-CELERY.md).",
  }),
  celeryFallbackQueue: setting({
    env: 'TASKLINE_CELERY_FALLBACK_QUEUE',
    flag: 'celery-fallback-queue',
    parser: text(),
    default: 'celery',
    doc: 'The Celery queue a Celery message for a task this worker does not define goes back to, unchanged, for Celery workers to run; never one of `TASKLINE_CELERY_QUEUES`.',
  }),
} satisfies Table;

/** Settings only the `taskline-worker` bin reads. */
export const WORKER_BIN_SETTINGS = {
  metricsPort: metricsPortSetting(9464, 'worker'),
} satisfies Table;
