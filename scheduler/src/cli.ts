import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { RedisConnection } from 'bullmq';
import {
  connectionOptionsFromFlags,
  createConnections,
  createLogger,
  healthCommand,
  scriptsCommand,
  parseIntegerSetting,
  resolvePrefix,
  resolveRoutes,
  startOpsServer,
  TasklineError,
  withConnectionFlags,
  type OpsServer,
} from '@taskline/shared';
import { describeSchedules, formatScheduleStatus } from './list.js';
import { nextRuns, formatInZone } from './next-runs.js';
import { loadScheduleFile, ScheduleFileError } from './schedule-file.js';
import { createScheduler } from './scheduler.js';

/** Prints a user-facing error (never a stack for errors we explain) and sets the exit code. */
function fail(err: unknown): void {
  const message = err instanceof TasklineError ? err.message : err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  console.error(message);
  process.exitCode = err instanceof ScheduleFileError || (err instanceof TasklineError && err.code.startsWith('CONFIG')) ? 2 : 1;
}

async function start(argv: { schedule: string; 'metrics-port': number; 'metrics-host': string; 'redis-url'?: string; 'result-redis-url'?: string }): Promise<void> {
  const logger = createLogger({ component: 'scheduler' });
  const scheduler = createScheduler({ schedulePath: argv.schedule, connection: connectionOptionsFromFlags(argv), logger });
  let ops: OpsServer | null = null;
  let stopping: Promise<void> | null = null;
  const stop = (signal: string): void => {
    if (stopping) {
      logger.warn('second signal: exiting now', { signal });
      process.exit(1);
    }
    logger.info('stopping', { signal });
    stopping = (async () => {
      const force = setTimeout(() => {
        logger.error('shutdown took too long; exiting');
        process.exit(1);
      }, 10_000);
      force.unref();
      await scheduler.close();
      await ops?.close();
    })();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    logger.info('SIGHUP: reloading the schedule file');
    scheduler.reconcile('SIGHUP').catch(() => undefined);
  });
  try {
    await scheduler.start();
    ops = await startOpsServer({
      port: argv['metrics-port'],
      host: argv['metrics-host'],
      registry: scheduler.connections.registry,
      live: () => ({ ok: scheduler.state === 'running', state: scheduler.state }),
      ready: () => {
        const health = scheduler.connections.lastHealth;
        const connectionsOk = health?.ok ?? scheduler.connections.state === 'ready';
        return {
          ok: scheduler.state === 'running' && connectionsOk,
          state: scheduler.state,
          leader: scheduler.isLeader,
          fence: scheduler.fence,
          declared: scheduler.schedule?.entries.length ?? 0,
          connections: connectionsOk ? 'ok' : 'unhealthy',
        };
      },
    });
    logger.info('ops server listening', { port: ops.port, paths: ['/metrics', '/healthz', '/readyz'] });
  } catch (err) {
    fail(err);
    await scheduler.close();
    await ops?.close();
  }
}

async function list(argv: { schedule: string; json: boolean; 'redis-url'?: string; 'result-redis-url'?: string }): Promise<void> {
  const file = await loadScheduleFile(argv.schedule, resolveRoutes(undefined, process.env));
  const connections = createConnections({
    options: { ...connectionOptionsFromFlags(argv), healthCheckIntervalMs: 0 },
    role: 'cli',
    component: 'scheduler-list',
    logger: createLogger({ component: 'scheduler-list', level: process.env['LOG_LEVEL'] ?? 'error' }),
  });
  try {
    await connections.connect();
    const rows = await describeSchedules(file, await connections.broker.bullmqConnection(0), resolvePrefix());
    console.log(argv.json ? JSON.stringify(rows, null, 2) : formatScheduleStatus(rows));
  } finally {
    await connections.close();
  }
}

async function validate(argv: { schedule: string }): Promise<void> {
  const file = await loadScheduleFile(argv.schedule, resolveRoutes(undefined, process.env));
  console.log(`${argv.schedule}: ${file.entries.length} schedule${file.entries.length === 1 ? '' : 's'}, all valid.`);
  for (const entry of file.entries) {
    const next = nextRuns(entry, 1)[0];
    const timing = entry.cron !== null ? `cron "${entry.cron}" tz=${entry.tz}` : `every ${entry.everyMs} ms`;
    console.log(`  ${entry.id}: ${entry.task} on ${entry.queue}, ${timing}, next ${next ? `${formatInZone(next, entry.tz)} (${next.toISOString()})` : 'never'}`);
  }
}

const scheduleOption = { type: 'string', demandOption: true, describe: 'JSON schedule file (see docs/SCHEDULES.md)' } as const;

await yargs(hideBin(process.argv))
  .scriptName('taskline-scheduler')
  .command(
    'start',
    'Run a beat replica: reconcile the schedule file into Redis (at start, on file change, on SIGHUP) while leader',
    y =>
      withConnectionFlags(y)
        .option('schedule', scheduleOption)
        .option('metrics-port', {
          type: 'number',
          describe: 'Port for /metrics, /healthz, /readyz (0 picks a free one)',
          default: parseIntegerSetting('TASKLINE_METRICS_PORT', process.env['TASKLINE_METRICS_PORT'], { min: 0, max: 65535 }) ?? 9102,
        })
        .option('metrics-host', { type: 'string', describe: 'Address the ops server binds', default: '0.0.0.0' }),
    argv => start(argv),
  )
  .command(
    'list',
    'Show each schedule: next three runs (in its zone and UTC), last run, and whether Redis matches the file',
    y => withConnectionFlags(y).option('schedule', scheduleOption).option('json', { type: 'boolean', default: false, describe: 'Print JSON' }),
    argv => list(argv).catch(fail),
  )
  .command('validate', 'Check a schedule file and print each entry with its next run; exit 2 if invalid', y => y.option('schedule', scheduleOption), argv =>
    validate(argv).catch(fail),
  )
  .command(healthCommand())
  .command(scriptsCommand(RedisConnection))
  .demandCommand(1, 'Name a command: start, list, validate, health or scripts.')
  .strict()
  .help()
  .parseAsync();
