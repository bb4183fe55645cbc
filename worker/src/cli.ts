import yargs from 'yargs';
import { RedisConnection } from 'bullmq';
import { createLogger, createMetricsRegistry } from '@taskline/shared';
import {
  connectionOptionsFromFlags,
  failUsage,
  healthCommand,
  resolveMetricsPort,
  scriptsCommand,
  startOpsServer,
  startWithRetry,
  withConnectionFlags,
  type CliContext,
  type OpsServer,
  type RunCliOptions,
} from '@taskline/shared/internal';
import { loadTaskModule } from './task-module.js';
import { createWorker, type CloseOutcome, type TasklineWorker } from './worker.js';

const DEFAULT_METRICS_PORT = 9464;

interface StartArgs {
  tasks: string;
  queues?: string | undefined;
  concurrency?: number | undefined;
  isolation?: string | undefined;
  'metrics-port'?: number | undefined;
  'celery-queues'?: string | undefined;
  'celery-fallback-queue'?: string | undefined;
  'redis-url'?: string | undefined;
  'result-redis-url'?: string | undefined;
}

/** Runs until the first signal, then drains; a second signal forces. Resolves with the exit code. */
async function start(argv: StartArgs, cli: CliContext, env: Record<string, string | undefined>): Promise<number> {
  const logger = createLogger({ component: 'worker', env });
  const metricsPort = resolveMetricsPort(argv['metrics-port'], env, DEFAULT_METRICS_PORT);
  const tasks = await loadTaskModule(argv.tasks);
  const queues = argv.queues?.split(',').map(q => q.trim()).filter(Boolean);
  const celeryQueues = argv['celery-queues']?.split(',').map(q => q.trim()).filter(Boolean);
  // One registry and one ops server for the process, up before the worker: while it cannot
  // start, /healthz answers and /readyz says why.
  const registry = createMetricsRegistry();
  let worker: TasklineWorker | null = null;
  let cause: string | null = 'starting';
  const ops: OpsServer = await startOpsServer({
    port: metricsPort,
    registry,
    ready: () => worker?.readiness() ?? { ok: false, state: 'starting', errors: [cause ?? 'starting'] },
  });
  logger.info('Serving /metrics, /healthz and /readyz', { port: ops.port });
  onAbort(cli.force, () => {
    logger.info('Second signal; forcing shutdown', { signal: cli.force.reason });
    void worker?.close({ force: true });
  });
  try {
    // Settings and files are read afresh at each attempt: a secret or certificate fixed on
    // disk, or a Redis that comes up, lets the worker start without a restart.
    worker = await startWithRetry({
      stop: cli.stop,
      logger,
      onCause: c => (cause = c),
      create: () =>
        createWorker({
          tasks,
          logger,
          env,
          registry,
          connection: connectionOptionsFromFlags(argv),
          ...(queues ? { queues } : {}),
          ...(argv.concurrency === undefined ? {} : { concurrency: argv.concurrency }),
          ...(argv.isolation === undefined ? {} : { isolation: argv.isolation as 'none' | 'process' | 'thread' }),
          ...(celeryQueues ? { celeryQueues } : {}),
          ...(argv['celery-fallback-queue'] === undefined ? {} : { celeryFallbackQueue: argv['celery-fallback-queue'] }),
        }),
      start: candidate => candidate.start(),
      discard: candidate => candidate.close({ force: true }),
    });
  } catch (err) {
    await ops.close();
    throw err;
  }
  if (!worker) {
    await ops.close();
    return 0;
  }
  const running = worker;
  const outcome = await new Promise<CloseOutcome>((resolve, reject) =>
    onAbort(cli.stop, () => {
      logger.info('Signal received; draining', { signal: cli.stop.reason });
      running.close().then(resolve, reject);
    }),
  );
  await ops.close();
  const exitCode = outcome === 'drained' ? 0 : 1;
  logger.info('Worker process exiting', { exitCode });
  return exitCode;
}

/** Runs `fn` when the signal aborts, or at once if it already has. */
function onAbort(signal: AbortSignal, fn: () => void): void {
  if (signal.aborted) fn();
  else signal.addEventListener('abort', fn, { once: true });
}

/** The `taskline-worker` command line; the bin runs it with `runCli(main, runOptions)`. */
export async function main(argv: string[], cli: CliContext, env: Record<string, string | undefined> = process.env): Promise<number | void> {
  let exitCode: number | undefined;
  await yargs(argv)
    .scriptName('taskline-worker')
    .command<StartArgs>(
      'start',
      'Run the tasks of a module, consuming their queues until SIGTERM/SIGINT (which drain in-flight jobs)',
      y =>
        withConnectionFlags(y)
          .option('tasks', { type: 'string', demandOption: true, describe: 'Module whose default export (or `tasks` export) is defineTasks({...}); .ts works' })
          .option('queues', { type: 'string', describe: 'Comma-separated queues to consume (default: every queue the tasks name)' })
          .option('concurrency', { type: 'number', describe: 'Jobs at once per queue (default TASKLINE_CONCURRENCY or 10)' })
          .option('isolation', { type: 'string', choices: ['none', 'process', 'thread'], describe: 'Run every handler in a pool of child processes or worker threads (default TASKLINE_ISOLATION or none: only tasks marked isolated)' })
          .option('celery-queues', { type: 'string', describe: 'Comma-separated Celery queues to also consume Celery messages from (default TASKLINE_CELERY_QUEUES or none)' })
          .option('celery-fallback-queue', { type: 'string', describe: 'Celery queue for Celery tasks this worker does not define (default TASKLINE_CELERY_FALLBACK_QUEUE or celery)' })
          .option('metrics-port', { type: 'number', describe: `Port of /metrics, /healthz, /readyz (default TASKLINE_METRICS_PORT or ${DEFAULT_METRICS_PORT}; 0 picks a free one)` }) as never,
      async args => {
        exitCode = await start(args, cli, env);
      },
    )
    .command(healthCommand(env))
    .command(scriptsCommand(RedisConnection))
    .demandCommand(1, 'Name a command: start, health or scripts.')
    .strict()
    .help()
    .fail(failUsage)
    .parseAsync();
  return exitCode;
}

/**
 * How the bin runs: a promise rejection a task handler leaves unhandled is logged and the worker
 * goes on (it must not end every other job in the process); an uncaught exception ends it.
 */
export const runOptions: RunCliOptions = { name: 'taskline-worker', unhandledRejection: 'log' };
