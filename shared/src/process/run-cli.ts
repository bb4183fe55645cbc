import { ConfigError, TasklineError } from '../errors.js';
import { createLogger, type Logger } from './logger.js';

/** What a bin's `main` is given besides its arguments. */
export interface CliContext {
  /** Aborts at the first SIGTERM or SIGINT (`reason`: the signal's name): finish in-flight work, close, return. */
  readonly stop: AbortSignal;
  /** Aborts at the second signal: stop now, without waiting for in-flight work. */
  readonly force: AbortSignal;
}

/** A bin's entry point: returns its exit code (or leaves `process.exitCode` as its commands set it). */
export type CliMain = (argv: string[], cli: CliContext) => Promise<number | void>;

export interface RunCliOptions {
  /** The bin's name, put before the message of an error `main` throws: `taskline-worker: …`. */
  name: string;
  /** @defaultValue `process.argv.slice(2)` */
  argv?: string[];
  /**
   * What a promise rejection nobody handled does. `'log'`: it is logged and the process goes on
   * (the worker: a task handler's stray promise must not end every other job in the process);
   * `'fatal'`: it is handled as an uncaught exception. @defaultValue `'fatal'`
   */
  unhandledRejection?: 'log' | 'fatal';
  /** The exit code for an error `main` throws. @defaultValue 2 for a configuration error, else 1 */
  exitCodeFor?: (err: unknown) => number;
  /** After the second signal, how long `main` has to return before the process exits anyway. @defaultValue `15000` */
  forceExitMs?: number;
}

/** Exit code 2: the command line or the configuration is wrong (nothing was started). */
export const EXIT_USAGE = 2;

/** The command line is wrong (unknown flag, missing argument, bad value): exit code 2. */
export class UsageError extends TasklineError {
  override name = 'UsageError';
  constructor(message: string) {
    super('USAGE', message);
  }
}

/**
 * For yargs' `.fail()`: a usage problem becomes a UsageError ("Run with --help"), an error a
 * command threw goes on to `runCli` unchanged, and nothing calls `process.exit` behind its back.
 */
export function failUsage(message: string | null | undefined, err: Error | undefined): never {
  if (err) throw err;
  throw new UsageError(`${message ?? 'Invalid command line.'}\nRun with --help for usage.`);
}

/** 2 for a usage or configuration error (a ConfigError, or any code starting with `CONFIG`), else 1. */
export function defaultExitCode(err: unknown): number {
  if (err instanceof UsageError || err instanceof ConfigError) return EXIT_USAGE;
  return err instanceof TasklineError && err.code.startsWith('CONFIG') ? EXIT_USAGE : 1;
}

/** The message an operator reads for an error: ours are one sentence; others keep their name. */
export function describeError(err: unknown): string {
  if (err instanceof TasklineError) return err.message;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}

/**
 * Runs a bin's `main` as a process: the first SIGTERM/SIGINT aborts `cli.stop` (graceful), the
 * second aborts `cli.force` (and, if `main` still has not returned `forceExitMs` later, the
 * process exits with 1). An error `main` throws is printed as one line (`<name>: <message>`) and
 * sets the exit code (`exitCodeFor`). An uncaught exception is logged with its stack and ends the
 * process at once with exit code 1: its state is unknown, so nothing more is run in it (jobs it
 * held are redelivered, as after a crash). Once `main` returns, the process exits with its code,
 * even if a library left a timer behind.
 */
export async function runCli(main: CliMain, options: RunCliOptions): Promise<void> {
  const stop = new AbortController();
  const force = new AbortController();
  let fatalLogger: Logger | null = null;
  const log = (message: string, err: unknown): void => {
    try {
      fatalLogger ??= createLogger({ component: options.name, level: 'error' });
      fatalLogger.error(message, { error: err, stack: err instanceof Error ? err.stack : undefined });
    } catch {
      console.error(`${options.name}: ${message}: ${describeError(err)}`);
    }
  };
  const fatal = (err: unknown): void => {
    log('Uncaught exception; exiting', err);
    process.exit(1);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', reason => {
    if (options.unhandledRejection === 'log') log('Unhandled promise rejection (ignored)', reason);
    else fatal(reason);
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    if (!stop.signal.aborted) {
      stop.abort(signal);
      return;
    }
    if (force.signal.aborted) return;
    force.abort(signal);
    setTimeout(() => {
      console.error(`${options.name}: did not stop within ${options.forceExitMs ?? 15_000} ms of the second signal; exiting`);
      process.exit(1);
    }, options.forceExitMs ?? 15_000).unref();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    const code = await main(options.argv ?? process.argv.slice(2), { stop: stop.signal, force: force.signal });
    if (typeof code === 'number') process.exitCode = code;
  } catch (err) {
    console.error(`${options.name}: ${describeError(err)}`);
    process.exitCode = (options.exitCodeFor ?? defaultExitCode)(err);
  }
  process.exitCode ??= 0;
  // Leave once the logger has flushed, even if a library left a timer or socket behind.
  setTimeout(() => process.exit(), 200).unref();
}

/** Resolves when `signal` aborts (at once if it already has). */
export function aborted(signal: AbortSignal): Promise<unknown> {
  return new Promise(resolve => {
    if (signal.aborted) resolve(signal.reason);
    else signal.addEventListener('abort', () => resolve(signal.reason), { once: true });
  });
}
