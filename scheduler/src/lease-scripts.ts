import { luaScript, type LuaScript } from '@taskline/shared/connection';

/**
 * The beat's leader lease as Lua, one compare-and-set each (leader-lease.ts drives them). The
 * script loader of every bin finds them through `@taskline/scheduler/scripts` (scripts.ts). Their
 * keys are the beat's own (lease, fence, owned schedules), which only the scheduler ACL user may touch.
 */

// KEYS[1] lease, KEYS[2] fence; ARGV[1] token, ARGV[2] ttl ms → fence number, or 0 when held by another.
export const LEASE_ACQUIRE = luaScript('beat:acquire', `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return redis.call('INCR', KEYS[2])
end
return 0`);

// KEYS[1] lease, KEYS[2] fence; ARGV[1] token, ARGV[2] ttl ms, ARGV[3] fence → 1 renewed, 0 lost.
export const LEASE_RENEW = luaScript('beat:renew', `
if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) == ARGV[3] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0`);

// KEYS[1] lease, KEYS[2] fence; ARGV[1] token, ARGV[2] fence, ARGV[3] min remaining ms → 1 ok, 0 not.
export const LEASE_CHECK = luaScript('beat:check', `
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then return 0 end
return 1`);

// KEYS[1] lease; ARGV[1] token → deletes the lease only if it is ours.
export const LEASE_RELEASE = luaScript('beat:release', `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`);

// KEYS[1] lease, KEYS[2] fence, KEYS[3] hash; ARGV[1] token, ARGV[2] fence, ARGV[3] min remaining ms,
// ARGV[4] 'set'|'del', ARGV[5] field, ARGV[6] value → 1 written, 0 refused (not the leader).
export const LEASE_FENCED_HASH_WRITE = luaScript('beat:fencedHashWrite', `
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('GET', KEYS[2]) ~= ARGV[2] then return 0 end
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then return 0 end
if ARGV[4] == 'set' then redis.call('HSET', KEYS[3], ARGV[5], ARGV[6]) else redis.call('HDEL', KEYS[3], ARGV[5]) end
return 1`);

/** Every script the beat runs on the broker (for the script loader). */
export const BEAT_LEASE_SCRIPTS: readonly LuaScript[] = [LEASE_ACQUIRE, LEASE_RENEW, LEASE_CHECK, LEASE_RELEASE, LEASE_FENCED_HASH_WRITE];
