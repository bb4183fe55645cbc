import yargs from 'yargs';
import { RedisConnection } from 'bullmq';
import { createConnections, createLogger, resolveRoutes } from '@taskline/shared';
import { aborted, defaultExitCode, EXIT_USAGE, failUsage, packageVersion, type CliContext, type RunCliOptions } from '@taskline/shared/process';
import { addFlags, resolvePrefix, resolveSettings } from '@taskline/shared/settings';
import { connectionOptionsFromFlags, healthCommand, scriptsCommand, startOpsServer, startWithRetry, withConnectionFlags, type OpsServer } from '@taskline/shared/ops';
import { describeSchedules, formatScheduleStatus } from './list.js';
import { nextRuns, formatInZone } from './next-runs.js';
import { loadScheduleFile, ScheduleFileError } from './schedule-file.js';
import { createScheduler } from './scheduler.js';
import { SCHEDULER_BIN_SETTINGS } from './settings.js';

/** Exit code 2 for a bad schedule file or configuration, 1 for anything else. */
function exitCodeFor(err: unknown): number {
  return err instanceof ScheduleFileError ? EXIT_USAGE : defaultExitCode(err);
}

/** `start`'s argv: `--schedule` and the connection URLs; the settings tables' flags are read from it by name. */
interface StartArgs {
  schedule: string;
  'redis-url'?: string | undefined;
  'result-redis-url'?: string | undefined;
}

/** Runs a beat replica until the first signal; a second one exits at once. Resolves with the exit code. */
async function start(argv: StartArgs, cli: CliContext, env: Record<string, string | undefined>): Promise<number> {
  const logger = createLogger({ component: 'scheduler', env });
  const { metricsPort, metricsHost } = resolveSettings(SCHEDULER_BIN_SETTINGS, { flags: argv, env });
  // Settings and files are read afresh at each attempt: a Redis that comes up, or a secret or
  // certificate file mounted late, lets the beat start; what waiting cannot fix exits.
  const started = await startWithRetry({
    stop: cli.stop,
    logger,
    env,
    create: () => createScheduler({ schedulePath: argv.schedule, connection: connectionOptionsFromFlags(argv), logger, env }),
    start: candidate => candidate.start(),
    discard: candidate => candidate.close(),
  });
  if (!started) return 0;
  const scheduler = started;
  const reload = (): void => {
    logger.info('SIGHUP: reloading the schedule file');
    scheduler.reconcile('SIGHUP').catch(() => undefined);
  };
  process.on('SIGHUP', reload);
  let ops: OpsServer | null = null;
  const stop = async (): Promise<void> => {
    await scheduler.close();
    await ops?.close();
  };
  try {
    try {
      ops = await startOpsServer({
        port: metricsPort,
        host: metricsHost,
        registry: scheduler.connections.registry,
        live: () => ({ ok: scheduler.state === 'ready', state: scheduler.state }),
        ready: () => {
          const health = scheduler.connections.lastHealth;
          const connectionsOk = health?.ok ?? scheduler.connections.state === 'ready';
          // A lease step Redis refuses (NOPERM, a script not loaded) means no replica can lead.
          const leaseError = scheduler.leaseError;
          return {
            ok: scheduler.state === 'ready' && connectionsOk && leaseError === null,
            state: scheduler.state,
            leader: scheduler.isLeader,
            fence: scheduler.fence,
            declared: scheduler.schedule?.entries.length ?? 0,
            connections: connectionsOk ? 'ok' : 'unhealthy',
            ...(leaseError ? { errors: [`the lease step fails: ${leaseError.message}`] } : {}),
          };
        },
      });
    } catch (err) {
      await stop();
      throw err;
    }
    logger.info('ops server listening', { port: ops.port, paths: ['/metrics', '/healthz', '/readyz'] });
    logger.info('stopping', { signal: await aborted(cli.stop) });
    // The beat's close is bounded (its steps share one grace); a second signal does not wait for it.
    const outcome = await Promise.race([stop().then(() => 0), aborted(cli.force).then(() => 1)]);
    if (outcome === 1) logger.warn('second signal: exiting now', { signal: cli.force.reason });
    return outcome;
  } finally {
    process.off('SIGHUP', reload);
  }
}

async function list(argv: { schedule: string; json: boolean; 'redis-url'?: string; 'result-redis-url'?: string }, env: Record<string, string | undefined>): Promise<void> {
  const file = await loadScheduleFile(argv.schedule, resolveRoutes(undefined, env));
  const connections = createConnections({
    options: { ...connectionOptionsFromFlags(argv), healthCheckIntervalMs: 0 },
    env,
    role: 'cli',
    component: 'scheduler-list',
    logger: createLogger({ component: 'scheduler-list', level: env['LOG_LEVEL'] ?? 'error', env }),
  });
  try {
    await connections.connect();
    const rows = await describeSchedules(file, await connections.broker.bullmqConnection(0), resolvePrefix(env));
    console.log(argv.json ? JSON.stringify(rows, null, 2) : formatScheduleStatus(rows));
  } finally {
    await connections.close();
  }
}

async function validate(argv: { schedule: string }, env: Record<string, string | undefined>): Promise<void> {
  const file = await loadScheduleFile(argv.schedule, resolveRoutes(undefined, env));
  console.log(`${argv.schedule}: ${file.entries.length} schedule${file.entries.length === 1 ? '' : 's'}, all valid.`);
  for (const entry of file.entries) {
    const next = nextRuns(entry, 1)[0];
    const timing = entry.cron !== null ? `cron "${entry.cron}" tz=${entry.tz}` : `every ${entry.everyMs} ms`;
    console.log(`  ${entry.id}: ${entry.task} on ${entry.queue}, ${timing}, next ${next ? `${formatInZone(next, entry.tz)} (${next.toISOString()})` : 'never'}`);
  }
}

const scheduleOption = { type: 'string', demandOption: true, describe: 'JSON schedule file (see docs/SCHEDULES.md)' } as const;

/** The `taskline-scheduler` command line; the bin runs it with `runCli(main, runOptions)`. */
export async function main(argv: string[], cli: CliContext, env: Record<string, string | undefined> = process.env): Promise<number | void> {
  let exitCode: number | undefined;
  await yargs(argv)
    .scriptName('taskline-scheduler')
    .command(
      'start',
      'Run a beat replica: reconcile the schedule file into Redis (at start, on file change, on SIGHUP) while leader',
      y =>
addFlags(withConnectionFlags(y), SCHEDULER_BIN_SETTINGS).option('schedule', scheduleOption),
      async args => {
        exitCode = await start(args, cli, env);
      },
    )
    .command(
      'list',
      'Show each schedule: next three runs (in its zone and UTC), last run, and whether Redis matches the file',
      y => withConnectionFlags(y).option('schedule', scheduleOption).option('json', { type: 'boolean', default: false, describe: 'Print JSON' }),
      args => list(args, env),
    )
    .command('validate', 'Check a schedule file and print each entry with its next run; exit 2 if invalid', y => y.option('schedule', scheduleOption), args => validate(args, env))
    .command(healthCommand(env))
    .command(scriptsCommand(RedisConnection))
    .demandCommand(1, 'Name a command: start, list, validate, health or scripts.')
    .strict()
    .help()
    .version(packageVersion(new URL('../package.json', import.meta.url)))
    .fail(failUsage)
    .parseAsync();
  return exitCode;
}

export const runOptions: RunCliOptions = { name: 'taskline-scheduler', exitCodeFor };
