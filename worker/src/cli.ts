import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { RedisConnection } from 'bullmq';
import {
  ConfigError,
  connectionOptionsFromFlags,
  createLogger,
  healthCommand,
  scriptsCommand,
  parseIntegerSetting,
  startOpsServer,
  TasklineError,
  withConnectionFlags,
  type Logger,
  type OpsServer,
} from '@taskline/shared';
import { loadTaskModule } from './task-module.js';
import { createWorker, type TasklineWorker } from './worker.js';

const DEFAULT_METRICS_PORT = 9464;

interface StartArgs {
  tasks: string;
  queues?: string | undefined;
  concurrency?: number | undefined;
  isolation?: string | undefined;
  'metrics-port'?: number | undefined;
  'redis-url'?: string | undefined;
  'result-redis-url'?: string | undefined;
}

function describe(err: unknown): string {
  return err instanceof TasklineError || err instanceof Error ? err.message : String(err);
}

/** A handler's stray rejection or throw is logged, never allowed to end the process. */
function guardProcess(logger: Logger): void {
  process.on('unhandledRejection', reason => logger.error('Unhandled promise rejection (ignored)', { error: reason }));
  process.on('uncaughtException', err => logger.error('Uncaught exception (ignored)', { error: err }));
}

async function start(argv: StartArgs): Promise<void> {
  const logger = createLogger({ component: 'worker' });
  let worker: TasklineWorker;
  let metricsPort: number;
  try {
    metricsPort = parseIntegerSetting('--metrics-port', argv['metrics-port'], { min: 0, max: 65_535 })
      ?? parseIntegerSetting('TASKLINE_METRICS_PORT', process.env['TASKLINE_METRICS_PORT'], { min: 0, max: 65_535 })
      ?? DEFAULT_METRICS_PORT;
    const tasks = await loadTaskModule(argv.tasks);
    const queues = argv.queues?.split(',').map(q => q.trim()).filter(Boolean);
    worker = createWorker({
      tasks,
      logger,
      connection: connectionOptionsFromFlags(argv),
      ...(queues ? { queues } : {}),
      ...(argv.concurrency === undefined ? {} : { concurrency: argv.concurrency }),
      ...(argv.isolation === undefined ? {} : { isolation: argv.isolation as 'none' | 'process' | 'thread' }),
    });
  } catch (err) {
    console.error(`taskline-worker: ${describe(err)}`);
    process.exitCode = err instanceof ConfigError ? 2 : 1;
    return;
  }
  guardProcess(logger);

  let ops: OpsServer | null = null;
  let signals = 0;
  const shutdown = (signal: NodeJS.Signals): void => {
    signals += 1;
    logger.info(signals === 1 ? 'Signal received; draining' : 'Second signal; forcing shutdown', { signal });
    worker
      .close({ force: signals > 1 })
      .then(async outcome => {
        await ops?.close();
        process.exitCode = outcome === 'drained' ? 0 : 1;
        logger.info('Worker process exiting', { exitCode: process.exitCode });
        // Let the logger flush, then leave even if a library left a timer behind.
        setTimeout(() => process.exit(), 200).unref();
      })
      .catch((err: unknown) => {
        logger.error('Shutdown failed', { error: err });
        process.exit(1);
      });
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  try {
    ops = await startOpsServer({ port: metricsPort, registry: worker.registry, ready: () => worker.readiness() });
    logger.info('Serving /metrics, /healthz and /readyz', { port: ops.port });
    await worker.start();
  } catch (err) {
    console.error(`taskline-worker: ${describe(err)}`);
    await worker.close({ force: true }).catch(() => undefined);
    await ops?.close();
    process.exit(err instanceof ConfigError ? 2 : 1);
  }
}

await yargs(hideBin(process.argv))
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
        .option('metrics-port', { type: 'number', describe: `Port of /metrics, /healthz, /readyz (default TASKLINE_METRICS_PORT or ${DEFAULT_METRICS_PORT}; 0 picks a free one)` }) as never,
    start,
  )
  .command(healthCommand())
  .command(scriptsCommand(RedisConnection))
  .demandCommand(1, 'Name a command: start, health or scripts.')
  .strict()
  .help()
  .parseAsync();
