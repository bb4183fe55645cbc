import type { Redis } from 'ioredis';
import { LUA_JOB_STATES } from './job-states.js';
import { evalScript, luaScript, type LuaScript } from '../connection/index.js';

/** A Lua script with its SHA, run by EVALSHA (see ScriptPolicy for what happens on NOSCRIPT). */
export type RecordScript = LuaScript;

/**
 * A record script: the `#!lua` line first (it makes Redis refuse the whole call when it is out of
 * memory, before any write, so a batch is never half applied by an OOM), then the job states
 * (`FINAL`, `allowed`), then `body`.
 */
const script = (name: string, body: string): RecordScript => luaScript(name, `#!lua\n${LUA_JOB_STATES}${body}`);

/**
 * The job state machine (declared in job/job-states.ts), one compare-and-set per operation, many
 * operations per call.
 *
 * KEYS: per operation, the record key and the revoke-marker key.
 * ARGV[1]: record TTL in seconds; ARGV[2]: job-channel prefix; then per operation 7 values:
 *   kind ('write' | 'progress' | 'settle'), delivery, state, base JSON, outcome JSON or '',
 *   progress JSON or '', job id.
 * Answer per operation:
 *   'OK' written; 'REDELIVERED' written, and an older delivery had recorded STARTED without an end;
 *   'SUCCESS' | 'FAILURE' | 'REVOKED' the record is (now) final in that state, whoever wrote it
 *     (a revoke marker turns any write into REVOKED);
 *   'STALE' a newer delivery owns the record (nothing written); 'SKIP' progress for a job that is
 *   not STARTED by this delivery; 'REFUSED' the state table allows no move to that state from the
 *   stored one (a caller's bug; nothing written).
 * Rules: a final state is never overwritten; a write from a delivery older than the stored one is
 * refused; 'settle' (the broker failed the job on its own) writes FAILURE over any non-final state.
 */
export const TRANSITION_SCRIPT = script(
  'transition',
  `local ttl = ARGV[1]
local channel = ARGV[2]
local answers = {}
for i = 1, #KEYS / 2 do
  local rkey, mkey = KEYS[2 * i - 1], KEYS[2 * i]
  local j = 3 + (i - 1) * 7
  local kind, d, state, base, out, progress, id = ARGV[j], tonumber(ARGV[j + 1]), ARGV[j + 2], ARGV[j + 3], ARGV[j + 4], ARGV[j + 5], ARGV[j + 6]
  local cur = redis.call('HMGET', rkey, 'state', 'delivery')
  local cs, cd = cur[1], tonumber(cur[2]) or 0
  local answer
  if FINAL[cs] then
    answer = cs
  elseif kind ~= 'settle' and cd > d then
    answer = 'STALE'
  elseif kind ~= 'progress' and not allowed(cs, state) then
    answer = 'REFUSED'
  else
    if d < cd then d = cd end
    local marker = redis.call('GET', mkey)
    if marker then
      redis.call('HDEL', rkey, 'out')
      redis.call('HSET', rkey, 'state', 'REVOKED', 'delivery', d, 'base', base, 'reason', marker)
      answer = 'REVOKED'
      redis.call('PUBLISH', channel .. id, '{"s":"REVOKED"}')
    elseif kind == 'progress' then
      if cs == 'STARTED' and cd == d then
        redis.call('HSET', rkey, 'progress', progress)
        answer = 'OK'
        redis.call('PUBLISH', channel .. id, '{"s":"STARTED","p":' .. progress .. '}')
      else
        answer = 'SKIP'
      end
    else
      answer = 'OK'
      if state == 'STARTED' and cs == 'STARTED' and cd < d then
        answer = 'REDELIVERED'
        redis.call('HSET', rkey, 'redelivered', '1')
      end
      if out ~= '' and progress ~= '' then redis.call('HSET', rkey, 'state', state, 'delivery', d, 'base', base, 'out', out, 'progress', progress)
      elseif out ~= '' then redis.call('HSET', rkey, 'state', state, 'delivery', d, 'base', base, 'out', out)
      elseif progress ~= '' then redis.call('HSET', rkey, 'state', state, 'delivery', d, 'base', base, 'progress', progress)
      else redis.call('HSET', rkey, 'state', state, 'delivery', d, 'base', base) end
      redis.call('PUBLISH', channel .. id, '{"s":"' .. state .. '"}')
    end
    if answer ~= 'SKIP' then redis.call('EXPIRE', rkey, ttl) end
  end
  answers[i] = answer
end
return answers
`,
);

/**
 * A revoke as compare-and-set: if the record is final, answers its state (too late) and writes
 * nothing; otherwise sets the marker (idempotent) and tells running workers and waiters.
 * KEYS: record key, marker key. ARGV: marker JSON, TTL seconds, revoke channel, job channel, id.
 * Answer: 'REVOKED' (now or earlier) | 'SUCCESS' | 'FAILURE'.
 */
export const REVOKE_SCRIPT = script(
  'revoke',
  `local cs = redis.call('HGET', KEYS[1], 'state')
if FINAL[cs] then return cs end
if redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2], 'NX') then
  redis.call('PUBLISH', ARGV[3], ARGV[5])
  redis.call('PUBLISH', ARGV[4], '{"s":"REVOKED"}')
end
return 'REVOKED'
`,
);

/** Every script taskline runs on the result backend (for a deploy step that preloads them). */
export const RESULT_BACKEND_SCRIPTS: readonly RecordScript[] = [TRANSITION_SCRIPT, REVOKE_SCRIPT];

/** Runs a script by its SHA; on NOSCRIPT the client's script policy loads it or waits for the loader. */
export function runScript(client: Redis, s: RecordScript, keys: string[], args: Array<string | number>): Promise<unknown> {
  return evalScript(client, s, keys, args);
}
