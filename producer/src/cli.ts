import yargs, { type Argv } from 'yargs';
import { RedisConnection } from 'bullmq';
import { ResultTimeoutError, createLogger, type Logger } from '@taskline/shared';
import { addFlags, optionsFromFlags, PROCESS_SETTINGS } from '@taskline/shared/settings';
import { connectionOptionsFromFlags, healthCommand, scriptsCommand, withConnectionFlags } from '@taskline/shared/ops';
import { isJobId } from '@taskline/shared/job';
import { aborted, defaultExitCode, EXIT_USAGE, failUsage, packageVersion, UsageError, type CliContext, type RunCliOptions } from '@taskline/shared/process';
import { startWithRetry } from '@taskline/shared/ops';
import { readApiToken } from './api-options.js';
import { ValidationError } from './errors.js';
import { startApiServer } from './http-api.js';
import { createProducer, type Producer } from './producer.js';
import { API_SETTINGS } from './settings.js';
import type { EnqueueOptions } from './options.js';

/** Exit codes: 0 ok, 1 failure (job FAILURE/REVOKED, Redis down, not found), 2 bad input, 3 timeout. */
const EXIT_FAILED = 1;
const EXIT_TIMEOUT = 3;

/** The flags every command takes: the connection URLs and `--prefix` (read from argv by name). */
interface CommonArgs {
  'redis-url'?: string | undefined;
  'result-redis-url'?: string | undefined;
}

const COMMON_SETTINGS = { prefix: PROCESS_SETTINGS.prefix };

type Env = Record<string, string | undefined>;
type WithProducer = (argv: CommonArgs, command: string, run: (producer: Producer) => Promise<number | void>) => Promise<void>;

/** How the commands make their logger and producer: from the flags, layered over `env`. */
function commandKit(env: Env) {
  const loggerFor = (command: string, secrets: string[] = []): Logger =>
    createLogger({ component: `producer-${command}`, level: env['LOG_LEVEL'] ?? (command === 'serve' ? 'info' : 'warn'), secrets, env });
  const producerFrom = (argv: CommonArgs, logger: Logger): Producer =>
    createProducer({
      connection: connectionOptionsFromFlags(argv),
      ...optionsFromFlags(COMMON_SETTINGS, argv),
      logger,
      env,
    });
  /** Runs a command with a producer that is always closed, mapping errors to exit codes. */
  const withProducer: WithProducer = async (argv, command, run) => {
    const producer = producerFrom(argv, loggerFor(command));
    try {
      process.exitCode = (await run(producer)) ?? 0;
    } finally {
      await producer.close();
    }
  };
  return { loggerFor, producerFrom, withProducer };
}

function parseData(raw: string | undefined): unknown {
  if (raw === undefined) return {};
  try {
    return JSON.parse(raw) as unknown;
  } catch (err) {
    throw new UsageError(`--data is not valid JSON (${(err as Error).message}); pass a JSON value, e.g. --data '{"a": 1, "b": 2}'.`);
  }
}

/** An id that is not a job id never reaches Redis, where it could name a queue's own keys. */
function notAJobId(id: string): number {
  console.error(`"${id.slice(0, 80)}" is not a job id (ids are UUIDs or repeat:beat:<schedule>:<ms>); check the id.`);
  return EXIT_FAILED;
}

const print = (value: unknown): void => console.log(typeof value === 'string' ? value : JSON.stringify(value, null, 2));

function common<T>(y: Argv<T>) {
  return addFlags(withConnectionFlags(y), COMMON_SETTINGS);
}

function inspectCommands(y: Argv<CommonArgs>, withProducer: WithProducer) {
  const queueArg = (a: Argv<CommonArgs>) => a.positional('queue', { type: 'string', demandOption: true, describe: 'Queue name' });
  const idArg = (a: Argv<CommonArgs & { queue: string }>) => a.positional('id', { type: 'string', demandOption: true, describe: 'A failed job id, or "all"' });
  return y
    .command('queues', 'List the queues under the prefix', a => a, argv => withProducer(argv, 'inspect', async p => print((await p.inspect.queues()).join('\n'))))
    .command(
      'counts [queue..]',
      'Jobs per queue and state (default: every known queue)',
      a => a.positional('queue', { type: 'string', array: true, describe: 'Queues to count' }),
      argv => withProducer(argv, 'inspect', async p => print(await p.inspect.counts(argv.queue?.length ? argv.queue : undefined))),
    )
    .command(
      'failed [queue]',
      'List failed jobs, newest first',
      a =>
        a
          .positional('queue', { type: 'string', default: 'default', describe: 'Queue name' })
          .option('start', { type: 'number', default: 0, describe: 'First index (0 = newest)' })
          .option('end', { type: 'number', default: 49, describe: 'Last index, inclusive' }),
      argv => withProducer(argv, 'inspect', async p => print(await p.inspect.listFailed(argv.queue, { start: argv.start, end: argv.end }))),
    )
    .command('retry <queue> <id>', 'Run a failed job (or all) again, as new jobs; prints the new ids', a => idArg(queueArg(a)), argv =>
      withProducer(argv, 'inspect', async p => print(await p.inspect.retryFailed(argv.queue, argv.id))),
    )
    .command('remove <queue> <id>', 'Delete a failed job (or all) from the broker', a => idArg(queueArg(a)), argv =>
      withProducer(argv, 'inspect', async p => print(`removed ${await p.inspect.removeFailed(argv.queue, argv.id)}`)),
    )
    .command('pause <queue>', 'Stop workers taking new jobs from a queue', queueArg, argv =>
      withProducer(argv, 'inspect', async p => {
        await p.inspect.pause(argv.queue);
        print(`paused ${argv.queue}`);
      }),
    )
    .command('resume <queue>', 'Let workers take jobs from a paused queue again', queueArg, argv =>
      withProducer(argv, 'inspect', async p => {
        await p.inspect.resume(argv.queue);
        print(`resumed ${argv.queue}`);
      }),
    )
    .demandCommand(1, 'Name an inspect subcommand: queues, counts, failed, retry, remove, pause or resume.');
}

// eslint-disable-next-line max-lines-per-function -- the command tree as yargs declares it, one short handler per command
export function buildCli(args: string[], cli: CliContext, env: Env = process.env) {
  const { loggerFor, producerFrom, withProducer } = commandKit(env);
  return common(yargs(args))
    .scriptName('taskline-producer')
    .command(
      'serve',
      'Run the HTTP API (POST/GET/DELETE /api/v1/jobs, /api/v1/health, /metrics)',
      y => addFlags(y, API_SETTINGS),
      async argv => {
        // Settings and secret files are read afresh at each attempt: a Redis that comes up, or a
        // secret or certificate file mounted late, lets the API start; what waiting cannot fix exits.
        const started = await startWithRetry({
          stop: cli.stop,
          logger: loggerFor('serve'),
          env,
          create: () => {
            const token = readApiToken(env);
            const logger = loggerFor('serve', token ? [token.reveal()] : []);
            return { token, logger, producer: producerFrom(argv, logger) };
          },
          start: candidate => candidate.producer.connect(),
          discard: candidate => candidate.producer.close(),
        });
        if (!started) return;
        const { token, logger, producer } = started;
        try {
          const server = await startApiServer({
            producer,
            logger,
            token,
            env,
            ...optionsFromFlags(API_SETTINGS, argv),
          });
          logger.info('Stopping the producer API', { signal: await aborted(cli.stop) });
          await server.stop();
        } finally {
          await producer.close();
        }
      },
    )
    .command(
      'enqueue <task>',
      'Enqueue a job and print its id (with --wait, its result)',
      y =>
        y
          .positional('task', { type: 'string', demandOption: true, describe: 'Task name' })
          .option('data', { type: 'string', describe: 'Payload as JSON', default: undefined as string | undefined })
          .option('queue', { type: 'string', describe: 'Queue (default: "default")' })
          .option('delay', { type: 'number', describe: 'Milliseconds before it may run' })
          .option('eta', { type: 'string', describe: 'Earliest start, ISO 8601 (not with --delay)' })
          .option('priority', { type: 'number', describe: '1 (first) to 2097151' })
          .option('attempts', { type: 'number', describe: 'Attempts in all' })
          .option('idempotency-key', { type: 'string', describe: 'Repeats with this key return the first job' })
          .option('wait', { type: 'boolean', default: false, describe: 'Wait for the result and print it; exit 1 on FAILURE/REVOKED' })
          .option('timeout', { type: 'number', default: 30, describe: 'Seconds --wait waits; exit 3 when it runs out' }),
      async argv => {
        const data = parseData(argv.data);
        if (!(argv.timeout > 0)) throw new UsageError('--timeout must be a positive number of seconds.');
        const options: EnqueueOptions = {};
        if (argv.queue !== undefined) options.queue = argv.queue;
        if (argv.delay !== undefined) options.delay = argv.delay;
        if (argv.eta !== undefined) options.eta = argv.eta;
        if (argv.priority !== undefined) options.priority = argv.priority;
        if (argv.attempts !== undefined) options.attempts = argv.attempts;
        if (argv['idempotency-key'] !== undefined) options.idempotencyKey = argv['idempotency-key'];
        await withProducer(argv, 'enqueue', async producer => {
          const { id, deduplicated } = await producer.enqueue(argv.task, data, options);
          if (deduplicated) console.error(`deduplicated: returning the job already enqueued with this idempotency key`);
          if (!argv.wait) return print(id);
          console.error(id);
          try {
            const record = await producer.waitForResult(id, { timeoutMs: Math.round(argv.timeout * 1000) });
            print(record);
            return record.state === 'SUCCESS' ? 0 : EXIT_FAILED;
          } catch (err) {
            if (!(err instanceof ResultTimeoutError)) throw err;
            console.error(err.message);
            return EXIT_TIMEOUT;
          }
        });
      },
    )
    .command(
      'result <id>',
      "Print a job's state and result",
      y => y.positional('id', { type: 'string', demandOption: true, describe: 'Job id' }),
      argv =>
        withProducer(argv, 'result', async producer => {
          if (!isJobId(argv.id)) return notAJobId(argv.id);
          const record = await producer.getResult(argv.id);
          if (!record) {
            console.error(`No job with id "${argv.id}" in the result backend; check the id (results expire after RESULT_EXPIRES seconds).`);
            return EXIT_FAILED;
          }
          print(record);
        }),
    )
    .command(
      'revoke <id>',
      'Cancel a waiting or delayed job; signal a running one',
      y => y.positional('id', { type: 'string', demandOption: true, describe: 'Job id' }).option('reason', { type: 'string', default: 'revoked from the CLI' }),
      argv =>
        withProducer(argv, 'revoke', async producer => {
          if (!isJobId(argv.id)) return notAJobId(argv.id);
          print(await producer.revoke(argv.id, argv.reason));
        }),
    )
    .command('inspect', 'Queue counts, failed jobs, pause/resume', y => inspectCommands(y as Argv<CommonArgs>, withProducer))
    .command(healthCommand(env))
    .command(scriptsCommand(RedisConnection))
    .demandCommand(1, 'Name a command: serve, enqueue, result, revoke, inspect, health or scripts.')
    .strict()
    .help()
    .alias('h', 'help')
    .version(packageVersion(new URL('../package.json', import.meta.url)))
    .fail(failUsage);
}

/** The `taskline-producer` command line; the bin runs it with `runCli(main, runOptions)`. Commands set `process.exitCode`. */
export async function main(args: string[], cli: CliContext, env: Env = process.env): Promise<void> {
  await buildCli(args, cli, env).parseAsync();
}

/** Exit code 2 for bad input (command line, job options, configuration), 1 for anything else. */
function exitCodeFor(err: unknown): number {
  return err instanceof ValidationError ? EXIT_USAGE : defaultExitCode(err);
}

export const runOptions: RunCliOptions = { name: 'taskline-producer', exitCodeFor };
