import yargs from 'yargs';
import { RedisConnection } from 'bullmq';
import { createLogger, createMetricsRegistry } from '@taskline/shared';
import { addFlags, optionsFromFlags, resolveSettings } from '@taskline/shared/settings';
import { connectionOptionsFromFlags, healthCommand, scriptsCommand, startOpsServer, startWithRetry, withConnectionFlags, type OpsServer } from '@taskline/shared/ops';
import { failUsage, packageVersion, type CliContext, type RunCliOptions } from '@taskline/shared/process';
import { WORKER_BIN_SETTINGS, WORKER_SETTINGS } from './settings.js';
import { loadTaskModule } from './task-module.js';
import { createWorker, type CloseOutcome, type TasklineWorker } from './worker.js';

/** `start`'s argv: `--tasks` and the connection URLs; the settings tables' flags are read from it by name. */
interface StartArgs {
  tasks: string;
  'redis-url'?: string | undefined;
  'result-redis-url'?: string | undefined;
}

/** Runs until the first signal, then drains; a second signal forces. Resolves with the exit code. */
async function start(argv: StartArgs, cli: CliContext, env: Record<string, string | undefined>): Promise<number> {
  const logger = createLogger({ component: 'worker', env });
  const { metricsPort } = resolveSettings(WORKER_BIN_SETTINGS, { flags: argv, env });
  const fromFlags = optionsFromFlags(WORKER_SETTINGS, argv);
  const tasks = await loadTaskModule(argv.tasks);
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
    // Settings and files are read afresh at each attempt: a Redis that comes up, or a secret or
    // certificate file mounted late, lets the worker start; what waiting cannot fix exits.
    worker = await startWithRetry({
      stop: cli.stop,
      logger,
      env,
      onCause: c => (cause = c),
      create: () =>
        createWorker({
          tasks,
          logger,
          env,
          registry,
          connection: connectionOptionsFromFlags(argv),
          ...fromFlags,
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
    .command(
      'start',
      'Run the tasks of a module, consuming their queues until SIGTERM/SIGINT (which drain in-flight jobs)',
      y =>
        addFlags(addFlags(withConnectionFlags(y), WORKER_SETTINGS), WORKER_BIN_SETTINGS).option('tasks', {
          type: 'string',
          demandOption: true,
          describe: 'Module whose default export (or `tasks` export) is defineTasks({...}); .ts works',
        }),
      async args => {
        exitCode = await start(args, cli, env);
      },
    )
    .command(healthCommand(env))
    .command(scriptsCommand(RedisConnection))
    .demandCommand(1, 'Name a command: start, health or scripts.')
    .strict()
    .help()
    .version(packageVersion(new URL('../package.json', import.meta.url)))
    .fail(failUsage)
    .parseAsync();
  return exitCode;
}

/**
 * How the bin runs: a promise rejection a task handler leaves unhandled is logged and the worker
 * goes on (it must not end every other job in the process); an uncaught exception ends it.
 */
export const runOptions: RunCliOptions = { name: 'taskline-worker', unhandledRejection: 'log' };
