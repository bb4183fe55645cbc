#!/usr/bin/env bash
# Writes a least-privilege Redis ACL file (users.acl) for taskline's broker or result backend.
# Passwords are read from files (Docker secrets) and written only as SHA-256 hashes; nothing
# secret is ever printed. Run with --help for usage; docs/OPERATIONS.md explains each role.
set -euo pipefail

PROG=$(basename "$0")

usage() {
  cat <<USAGE
Usage: $PROG --service broker|backend --secrets-dir DIR [--prefix taskline] [--celery-queues celery] [--out FILE]

Users written (each password read from DIR/redis_<user>_password); P is the prefix:
  producer   broker: BullMQ queue keys P:<queue>:*, adds to P::queues; backend: reads job records,
             writes revoke markers, publishes revokes, subscribes to job channels
  worker     broker: BullMQ queue keys, P::queues, its rate-limit counters P::ratelimit:*;
             backend: writes job records (the transition script), reads revokes, subscribes to them
  scheduler  broker: BullMQ queue keys, P::queues, the beat's lease/fence/schedules P::beat:*;
             backend: nothing but connecting
  metrics    PING, INFO and queue lengths; never job payloads or results
  celery-client  the Python (Celery) app of the Celery bridge: broker: LPUSH onto its Celery queues'
             kombu lists and SADD to kombu's _kombu.binding.* sets; backend: reads and subscribes
             to celery-task-meta-* (it cannot write a result); nothing else
  loader     SCRIPT LOAD / SCRIPT EXISTS only: \`taskline-<bin> scripts load --watch\` (REDIS_SCRIPTS=preloaded)
  admin      everything; for operators only (certificate reload, ACL LOAD, backups)
  default    off, no password (unauthenticated connections are refused; see docs/SECURITY.md
             for why it still holds every right: AOF replay runs as it)
App users (producer, worker, scheduler) run Lua only by EVALSHA: no EVAL, SCRIPT or FUNCTION.
The broker and the result backend must be separate Redis servers (their rules differ per user).

Options:
  --service broker|backend   which Redis the file is for (required)
  --secrets-dir DIR          directory holding redis_{producer,worker,scheduler,metrics,loader,admin}_password
  --prefix NAME              TASKLINE_PREFIX of the deployment (default: taskline)
  --celery-queues LIST       the Celery queues (comma-separated) Python apps send to and the bridge
                             consumes or falls back to (default: celery); the worker user may
                             consume them, celery-client push to them
  --out FILE                 where to write (default: stdout); written atomically with mode 640
  --redis-version X.Y        Redis version of the server (default: 7.2); before 7.2 CLIENT SETINFO
                             does not exist and must not be named
  --init-secrets             first create any missing password file in DIR (32 random bytes, hex)
  -h, --help                 show this help

Load a changed file into a running server with: redis-cli --user admin ... ACL LOAD
USAGE
}

die() {
  echo "$PROG: error: $*" >&2
  exit 1
}

SERVICE=""
SECRETS_DIR=""
PREFIX="taskline"
OUT=""
INIT=0
REDIS_VERSION=7.2
CELERY_QUEUES=celery
while [[ $# -gt 0 ]]; do
  case "$1" in
    --service) [[ $# -ge 2 ]] || die "--service needs broker or backend"; SERVICE=$2; shift 2 ;;
    --secrets-dir) [[ $# -ge 2 ]] || die "--secrets-dir needs a directory"; SECRETS_DIR=$2; shift 2 ;;
    --prefix) [[ $# -ge 2 ]] || die "--prefix needs a value"; PREFIX=$2; shift 2 ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a file"; OUT=$2; shift 2 ;;
    --redis-version) [[ $# -ge 2 ]] || die "--redis-version needs a value like 7.2"; REDIS_VERSION=$2; shift 2 ;;
    --celery-queues) [[ $# -ge 2 ]] || die "--celery-queues needs a list like celery,reports"; CELERY_QUEUES=$2; shift 2 ;;
    --init-secrets) INIT=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

[[ "$SERVICE" == broker || "$SERVICE" == backend ]] || die "--service must be broker or backend, got '${SERVICE}'"
[[ -n "$SECRETS_DIR" ]] || die "--secrets-dir is required: the directory holding redis_<user>_password files"
[[ "$PREFIX" =~ ^[A-Za-z0-9_.-]{1,64}$ ]] || die "--prefix must be 1-64 letters, digits, '_', '.' or '-' (as TASKLINE_PREFIX), got '$PREFIX'"

[[ "$REDIS_VERSION" =~ ^([0-9]+)\.([0-9]+) ]] || die "--redis-version must look like 7.2, got '$REDIS_VERSION'"
(( BASH_REMATCH[1] >= 7 )) || die "taskline needs Redis 7 or newer (ACL selectors, TLS reload), got $REDIS_VERSION"
SETINFO=""
if (( BASH_REMATCH[1] > 7 || BASH_REMATCH[2] >= 2 )); then SETINFO="+client|setinfo"; fi

[[ "$CELERY_QUEUES" =~ ^[-.0-9A-Z_a-z]{1,128}(,[-.0-9A-Z_a-z]{1,128})*$ ]] || die "--celery-queues must be comma-separated queue names (letters, digits, '_', '.' or '-'), got '$CELERY_QUEUES'"

USERS=(producer worker scheduler metrics loader admin celery-client)

if [[ $INIT -eq 1 ]]; then
  mkdir -p "$SECRETS_DIR"
  for user in "${USERS[@]}"; do
    file="$SECRETS_DIR/redis_${user}_password"
    if [[ ! -e "$file" ]]; then
      (umask 077 && openssl rand -hex 32 > "$file")
    fi
  done
fi

# sha256 of the password exactly as taskline reads it (one trailing \n or \r\n dropped).
password_hash() {
  local file=$1 pw
  [[ -r "$file" ]] || die "cannot read $file; create it (or pass --init-secrets) and fix its permissions"
  pw=$(cat "$file"; printf x)
  pw=${pw%x}
  pw=${pw%$'\n'}
  [[ "$pw" == *$'\n' ]] || pw=${pw%$'\r'}
  [[ -n "$pw" ]] || die "$file is empty; put a password in it"
  printf '%s' "$pw" | sha256sum | cut -d' ' -f1
}

# Connection set-up every client needs: RESP3 HELLO, AUTH, CLIENT SETNAME/SETINFO, the ready check (INFO).
CONNECTION="+hello +auth +ping +echo +select +quit +reset +info +client|setname +client|getname $SETINFO +client|id +client|info"

# The data commands BullMQ 6's Lua scripts and its JS run (ACLs judge every redis.call inside a
# script too), blocking fetches and transactions. Lua runs only as EVALSHA of a loaded script.
BULLMQ="+evalsha +multi +exec +discard +watch +unwatch \
+bzpopmin +bzpopmax +blmove +brpoplpush +xread +xadd +xdel +xlen +xrange +xrevrange +xtrim \
+get +set +del +unlink +exists +type +rename +incr +incrby +expire +pexpire +pexpireat +persist +ttl +pttl +time \
+hget +hset +hsetnx +hmget +hmset +hgetall +hdel +hexists +hincrby +hlen +hscan \
+lpush +rpush +lpop +rpop +rpoplpush +lmove +lrange +llen +lindex +lpos +lrem +lset +ltrim \
+sadd +srem +scard +smembers +sismember +sscan \
+zadd +zrem +zcard +zcount +zscore +zrank +zrevrank +zincrby +zpopmin +zrange +zrangebyscore +zrangebylex \
+zrevrange +zrevrangebyscore +zlexcount +zremrangebyscore +zremrangebyrank +zscan"

# Read-only counts: health checks and exporters see INFO, PING and queue lengths, never job data.
METRICS_CONNECTION="+hello +auth +ping +quit +info +client|setname $SETINFO"
COUNTS="+llen +zcard +hlen +xlen +scard +type +exists +ttl +pttl"

# BullMQ queue keys are P:<queue>:... and a queue name never starts with ':' (nor is empty), so this
# glob never matches taskline's own P::... keys. ('-' first: inside [...] "a-b" is a range.)
QUEUES="${PREFIX}:[-.0-9A-Z_a-z]*"
# The queue registry: every app user may add to it and list it, nothing else (a selector).
REGISTRY="(~${PREFIX}::queues +sadd +smembers)"

# Result backend. EVALSHA declares every key it names read-write, whatever the script does with it;
# this selector lets the declared keys pass, while each command the script runs is still judged by
# the user's other rules (a producer running the transition script gets its HSET refused).
SCRIPT_KEYS="(+evalsha ~${PREFIX}:result:* ~${PREFIX}:revoke:*)"
RECORD="${PREFIX}:result:*"
MARKER="${PREFIX}:revoke:*"
REVOKED="${PREFIX}:revoked"
JOB_CHANNELS="&${PREFIX}:job:*"
REVOKE_CHANNEL="&${PREFIX}:revoke"

# Celery bridge. kombu keeps a queue's messages in the list <queue> and, for priorities 3, 6 and 9,
# in <queue>\x06\x16<step> (kombu/transport/redis.py): '??[369]' is those two separator bytes and the step.
CELERY_LISTS=""
IFS=',' read -r -a _celery_queues <<< "$CELERY_QUEUES"
for q in "${_celery_queues[@]}"; do CELERY_LISTS+=" ~$q ~$q??[369]"; done
CELERY_BRIDGE_KEYS="~${PREFIX}::celery:*"
CELERY_META="celery-task-meta-*"

user_line() {
  local user=$1; shift
  echo "user $user on resetpass #${HASH[$user]} resetkeys resetchannels $*"
}

render_broker() {
  user_line producer "~$QUEUES -@all $CONNECTION $BULLMQ $REGISTRY"
  # The Celery intake: moves from the Celery lists into its processing list (P::celery:*), pushes
  # unknown tasks back to the fallback queue and chain/link messages onward.
  user_line worker "~$QUEUES -@all $CONNECTION $BULLMQ $REGISTRY (~${PREFIX}::ratelimit:* +incr +pexpire) ($CELERY_LISTS $CELERY_BRIDGE_KEYS $BULLMQ)"
  user_line celery-client "$CELERY_LISTS ~_kombu.binding.* -@all $CONNECTION +multi +exec +discard +lpush +sadd +llen"
  # hkeys/renamenx: a leader adopts the owned-schedules hash of earlier versions (P:beat:schedules).
  user_line scheduler "~$QUEUES ~${PREFIX}::beat:* -@all $CONNECTION $BULLMQ +hkeys +renamenx $REGISTRY"
  user_line metrics "%R~$QUEUES -@all $METRICS_CONNECTION $COUNTS (%R~${PREFIX}::queues +smembers)"
}

render_backend() {
  # Reads records; writes revoke markers and the revoked index; publishes revokes (and the REVOKED
  # wake-up on the job's channel, from the revoke script); subscribes to job channels only.
  user_line producer "%R~$RECORD ~$MARKER ~$REVOKED $JOB_CHANNELS $REVOKE_CHANNEL -@all $CONNECTION \
+hgetall +hget +get +set +zadd +zremrangebyscore +publish +unsubscribe +evalsha $SCRIPT_KEYS (+subscribe $JOB_CHANNELS)"
  # Writes records (the transition script) and publishes their changes; reads revoke markers and
  # the index; subscribes to the revoke channel only (it cannot publish a revoke).
  user_line worker "~$RECORD %R~$MARKER %R~$REVOKED $JOB_CHANNELS -@all $CONNECTION \
+hmget +hgetall +hget +get +hset +hdel +expire +zrangebyscore +publish +unsubscribe +evalsha $SCRIPT_KEYS (+subscribe $REVOKE_CHANNEL) \
(~$CELERY_META &$CELERY_META +multi +exec +setex +publish)"
  user_line scheduler "-@all $CONNECTION"
  user_line metrics "-@all $METRICS_CONNECTION"
  # Celery's result records: the worker writes them (SETEX + PUBLISH in MULTI), the Python app
  # only reads them and waits on their channels.
  user_line celery-client "%R~$CELERY_META &$CELERY_META -@all $CONNECTION +get +mget +subscribe +unsubscribe"
}

# Hashed up front, outside any command substitution, so a missing file stops the script.
declare -A HASH
for user in "${USERS[@]}"; do
  HASH[$user]=$(password_hash "$SECRETS_DIR/redis_${user}_password")
done

render() {
  # Redis ACL files allow no comments: the header lives in docs/OPERATIONS.md.
  # The default user is off and has no password (no nopass either): nobody can log in as it, not
  # even if it is turned on. It holds every right because Redis replays an AOF's MULTI/EXEC blocks
  # (every script's writes: all of BullMQ's) as the default user and re-checks its ACL at EXEC
  # (redis/redis#14541, fixed upstream in late 2025): with no rights, a restart drops them silently.
  echo "user default off resetpass resetkeys resetchannels ~* &* +@all"
  if [[ "$SERVICE" == broker ]]; then render_broker; else render_backend; fi
  user_line loader "-@all $CONNECTION +script|load +script|exists"
  echo "user admin on resetpass #${HASH[admin]} ~* &* +@all"
}

if [[ -z "$OUT" ]]; then
  render
else
  tmp=$(mktemp "$(dirname "$OUT")/.users.acl.XXXXXX")
  trap 'rm -f "$tmp"' EXIT
  render > "$tmp"
  chmod 640 "$tmp"
  mv "$tmp" "$OUT"
  trap - EXIT
  echo "$PROG: wrote $OUT ($SERVICE, prefix '$PREFIX')" >&2
fi
