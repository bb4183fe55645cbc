import { createRequire } from 'node:module';
import { formatWithOptions, type InspectOptions } from 'node:util';
import type { Logger } from '../process/index.js';

/**
 * `DEBUG=ioredis:*` makes ioredis print every command it writes with its arguments
 * (`write command[…]: 0 -> auth([ 'user', 'password' ])`) through the `debug` package. This
 * wraps that package's output function so the arguments of commands that carry credentials, and
 * every password taskline was configured with, are blanked before a line is written.
 */

/** The part of the `debug` package this needs (ioredis' own copy, resolved from ioredis). */
interface DebugModule {
  enabled(namespace: string): boolean;
  log: (...args: unknown[]) => unknown;
  inspectOpts?: InspectOptions;
}

const REDACTED = '[redacted]';
/** ioredis prints `<name>(<args>)`; these commands carry passwords in their arguments. */
const CREDENTIAL_COMMAND = /(-> (?:auth|hello|acl|migrate|config)\()[^\n]*\)/gi;

const secrets = new Set<string>();
let installed = false;
let warned = false;

let debugModule: DebugModule | null | undefined;

function ioredisDebug(): DebugModule | null {
  if (debugModule === undefined) {
    try {
      const require = createRequire(import.meta.url);
      debugModule = createRequire(require.resolve('ioredis'))('debug') as DebugModule;
    } catch {
      debugModule = null; // ioredis without `debug`: it cannot print anything
    }
  }
  return debugModule;
}

export function redactDebugLine(line: string): string {
  let out = line.replace(CREDENTIAL_COMMAND, `$1${REDACTED})`);
  for (const secret of secrets) if (secret) out = out.split(secret).join(REDACTED);
  return out;
}

/**
 * Installs the redaction once per process (the first time connections are made, never at import)
 * and adds `passwords` to the values it blanks. Warns once when ioredis' debug output is on.
 */
export function redactRedisDebugOutput(passwords: string[], logger: Logger): void {
  for (const password of passwords) if (password) secrets.add(password);
  const debug = ioredisDebug();
  if (!debug) return;
  if (!installed) {
    installed = true;
    const write = debug.log;
    debug.log = function (this: unknown, ...args: unknown[]) {
      // `debug` leaves %s / %d for its output function to fill in: format the whole line first.
      return write.call(this, '%s', redactDebugLine(formatWithOptions(debug.inspectOpts ?? {}, ...args)));
    };
  }
  if (!warned && debug.enabled('ioredis:redis')) {
    warned = true;
    logger.warn(
      "DEBUG turns on ioredis' debug output, which prints every Redis command with its arguments (job payloads included) to stderr; taskline blanks credentials in it, but turn it off (unset DEBUG) outside a debugging session.",
    );
  }
}
