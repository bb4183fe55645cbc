import { createHash } from 'node:crypto';
import { Command, type Redis } from 'ioredis';
import { ConnectionError, AuthError } from '../errors.js';
import { scriptsNotLoadedSentence, type ConnectionTarget } from './error-mapping.js';
import type { Logger } from '../process/index.js';
import { backoffDelay, sleep } from '../process/index.js';

/**
 * How Lua scripts reach Redis:
 * - `eval`: EVALSHA, and on NOSCRIPT the client sends the source with EVAL (which loads it). The
 *   Redis user needs EVAL — and with it can run any Lua it likes.
 * - `preloaded`: EVALSHA only. A deploy step (`taskline-<bin> scripts load [--watch]`, as the
 *   `loader` ACL user) loads every script; app users get EVALSHA without EVAL or SCRIPT LOAD. On
 *   NOSCRIPT (Redis restarted and the loader has not reloaded yet) a call waits and retries.
 */
export type ScriptLoading = 'eval' | 'preloaded';

/** A Lua script run by its SHA-1. */
export interface LuaScript {
  readonly name: string;
  readonly source: string;
  readonly sha: string;
}

export function luaScript(name: string, source: string): LuaScript {
  return { name, source, sha: createHash('sha1').update(source).digest('hex') };
}

export interface ScriptPolicyOptions {
  loading: ScriptLoading;
  /** `preloaded`: how long a call waits for a missing script before SCRIPTS_NOT_LOADED. */
  waitMs: number;
  target: ConnectionTarget;
  logger: Logger;
}

type Encoding = 'utf8' | null;
type Callback = (err: Error | null, value?: unknown) => void;
/** ioredis' Pipeline, as far as a script command needs it. */
interface PipelineLike {
  isPipeline: true;
  redis: Redis;
  sendCommand(command: Command): unknown;
}
/** What BullMQ (and anyone) hands to ioredis' defineCommand. */
interface CommandDefinition {
  lua: string;
  numberOfKeys?: number | null;
}

const WARN_EVERY_MS = 10_000;
const runners = new WeakMap<Redis, ScriptPolicy>();

export function isNoScriptError(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOSCRIPT');
}

function isEvalRefused(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith('NOPERM') && /'eval(_ro)?'/i.test(err.message);
}

/**
 * The script policy of one Redis service, attached to every client it creates. Scripts always go
 * out as EVALSHA first (never the source on a connection's first use, as ioredis would): that is
 * what lets the ACL refuse EVAL.
 */
export class ScriptPolicy {
  readonly options: ScriptPolicyOptions;
  #lastWarnAt = 0;

  constructor(options: ScriptPolicyOptions) {
    this.options = options;
  }

  /**
   * Makes `client` run scripts under this policy: `runScript` on it, and every command defined
   * with ioredis' `defineCommand` (BullMQ defines its Lua scripts that way), directly or in a
   * pipeline.
   */
  attach(client: Redis): void {
    runners.set(client, this);
    const commands = client as unknown as Record<string, unknown> & { scriptsSet: Record<string, unknown> };
    Object.defineProperty(client, 'defineCommand', {
      configurable: true,
      writable: true,
      value: (name: string, definition: CommandDefinition) => {
        const script = luaScript(name, definition.lua);
        const keys = typeof definition.numberOfKeys === 'number' ? definition.numberOfKeys : null;
        // ioredis' Pipeline copies the commands named in scriptsSet (it reads `sha` from each).
        commands.scriptsSet[name] = { sha: script.sha, lua: script.source, numberOfKeys: keys };
        commands[name] = scriptCommand(script, keys, 'utf8');
        commands[`${name}Buffer`] = scriptCommand(script, keys, null);
      },
    });
  }

  /** After NOSCRIPT: EVAL the source (`eval`), or wait for the loader (`preloaded`). */
  async recover(client: Redis, script: LuaScript, args: unknown[], encoding: Encoding): Promise<unknown> {
    const send = (name: 'eval' | 'evalsha', first: string): Promise<unknown> =>
      encoding === null ? client.callBuffer(name, first, ...(args as string[])) : client.call(name, first, ...(args as string[]));
    if (this.options.loading === 'eval') {
      return send('eval', script.source).catch((err: unknown) => {
        throw isEvalRefused(err) ? this.#evalRefused(script, err) : err;
      });
    }
    const started = Date.now();
    this.#warn(script);
    for (let attempt = 1; ; attempt++) {
      const left = this.options.waitMs - (Date.now() - started);
      if (left <= 0) throw this.#notLoaded(script);
      await sleep(Math.min(backoffDelay(attempt, { baseMs: 100, capMs: 1000 }), left));
      try {
        return await send('evalsha', script.sha);
      } catch (err) {
        if (!isNoScriptError(err)) throw err;
      }
    }
  }

  #warn(script: LuaScript): void {
    const now = Date.now();
    if (now - this.#lastWarnAt < WARN_EVERY_MS) return;
    this.#lastWarnAt = now;
    const { target } = this.options;
    this.options.logger.warn('A script is not loaded in Redis (restarted?); waiting for the loader (taskline-<bin> scripts load --watch)', {
      service: target.service,
      script: script.name,
      sha: script.sha,
      waitMs: this.options.waitMs,
    });
  }

  #notLoaded(script: LuaScript): ConnectionError {
    const { target } = this.options;
    return new ConnectionError(scriptsNotLoadedSentence(target, `"${script.name}" (sha ${script.sha.slice(0, 12)}) within ${this.options.waitMs} ms`), {
      code: 'SCRIPTS_NOT_LOADED',
      kind: 'protocol',
      retryable: true,
      service: target.service,
      host: target.host,
      port: target.port,
    });
  }

  #evalRefused(script: LuaScript, cause: unknown): AuthError {
    const { target } = this.options;
    return new AuthError(
      `Cannot use the ${target.service === 'broker' ? 'broker' : 'result backend'} at ${target.host}:${target.port}: its Redis user may not run EVAL, so taskline cannot load the script "${script.name}" itself; set REDIS_SCRIPTS=preloaded and load the scripts with \`taskline-worker scripts load --watch\` as the loader user (docs/OPERATIONS.md).`,
      { code: 'AUTH_NO_PERMISSION', kind: 'auth', retryable: false, service: target.service, host: target.host, port: target.port, cause },
    );
  }
}

/** The policy attached to a client; clients taskline did not create fall back to EVAL on NOSCRIPT. */
function policyOf(client: Redis): ScriptPolicy | undefined {
  return runners.get(client);
}

function isPipeline(container: unknown): container is PipelineLike {
  return (container as { isPipeline?: unknown }).isPipeline === true;
}

/** The function ioredis would install for a defined command, but EVALSHA-only until NOSCRIPT. */
function scriptCommand(script: LuaScript, numberOfKeys: number | null, encoding: Encoding) {
  return function (this: Redis | PipelineLike, ...input: unknown[]): unknown {
    const callback = typeof input[input.length - 1] === 'function' ? (input.pop() as Callback) : undefined;
    const args = numberOfKeys === null ? input : [numberOfKeys, ...input];
    const command = new Command('evalsha', [script.sha, ...(args as string[])], { replyEncoding: encoding });
    // A pipeline's failed script is retried on its client, outside the pipeline (as ioredis does).
    const client = isPipeline(this) ? this.redis : this;
    command.promise = command.promise.catch((err: unknown) => {
      if (!isNoScriptError(err)) throw err;
      const policy = policyOf(client);
      if (policy) return policy.recover(client, script, args.flat(), encoding);
      return encoding === null ? client.callBuffer('eval', script.source, ...(args.flat() as string[])) : client.call('eval', script.source, ...(args.flat() as string[]));
    });
    if (callback) command.promise.then(value => callback(null, value), (err: Error) => callback(err));
    return this.sendCommand(command);
  };
}

/**
 * Runs a script by its SHA; on NOSCRIPT the client's policy decides (EVAL the source, or wait
 * for the loader). `args` are the script's ARGV.
 */
export async function evalScript(client: Redis, script: LuaScript, keys: string[], args: Array<string | number>): Promise<unknown> {
  const all: Array<string | number> = [keys.length, ...keys, ...args];
  try {
    return await client.call('evalsha', script.sha, ...all);
  } catch (err) {
    if (!isNoScriptError(err)) throw err;
    const policy = policyOf(client);
    if (policy) return policy.recover(client, script, all, 'utf8');
    return client.call('eval', script.source, ...all);
  }
}
