#!/usr/bin/env bash
# Writes a least-privilege Redis ACL file (users.acl) for taskline's broker or result backend.
# Passwords are read from files (Docker secrets) and written only as SHA-256 hashes; nothing
# secret is ever printed. Run with --help for usage; docs/OPERATIONS.md explains each role.
set -euo pipefail

PROG=$(basename "$0")

usage() {
  cat <<USAGE
Usage: $PROG --service broker|backend --secrets-dir DIR [--prefix taskline] [--out FILE]

Users written (each password read from DIR/redis_<user>_password):
  producer, worker, scheduler  the taskline processes: commands BullMQ (broker) or the result
                               backend needs, on keys and channels under "<prefix>:" only
  metrics                      PING, INFO and read-only queue lengths (health checks, exporters)
  admin                        everything; for operators only (certificate reload, ACL LOAD, backups)
  default                      off (unauthenticated connections are refused)

Options:
  --service broker|backend   which Redis the file is for (required)
  --secrets-dir DIR          directory holding redis_{producer,worker,scheduler,metrics,admin}_password
  --prefix NAME              TASKLINE_PREFIX of the deployment (default: taskline)
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
while [[ $# -gt 0 ]]; do
  case "$1" in
    --service) [[ $# -ge 2 ]] || die "--service needs broker or backend"; SERVICE=$2; shift 2 ;;
    --secrets-dir) [[ $# -ge 2 ]] || die "--secrets-dir needs a directory"; SECRETS_DIR=$2; shift 2 ;;
    --prefix) [[ $# -ge 2 ]] || die "--prefix needs a value"; PREFIX=$2; shift 2 ;;
    --out) [[ $# -ge 2 ]] || die "--out needs a file"; OUT=$2; shift 2 ;;
    --redis-version) [[ $# -ge 2 ]] || die "--redis-version needs a value like 7.2"; REDIS_VERSION=$2; shift 2 ;;
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

USERS=(producer worker scheduler metrics admin)

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

# What BullMQ 6 runs: its Lua scripts (EVAL/EVALSHA; ACLs also check every redis.call inside them),
# the data commands those scripts and its JS call, blocking fetches and transactions.
BULLMQ="+eval +evalsha +script|load +script|exists +multi +exec +discard +watch +unwatch \
+bzpopmin +bzpopmax +blmove +brpoplpush +xread +xadd +xdel +xlen +xrange +xrevrange +xtrim \
+get +set +del +unlink +exists +type +rename +incr +incrby +expire +pexpire +pexpireat +persist +ttl +pttl +time \
+hget +hset +hsetnx +hmget +hmset +hgetall +hdel +hexists +hincrby +hlen +hscan \
+lpush +rpush +lpop +rpop +rpoplpush +lmove +lrange +llen +lindex +lpos +lrem +lset +ltrim \
+sadd +srem +scard +smembers +sismember +sscan \
+zadd +zrem +zcard +zcount +zscore +zrank +zrevrank +zincrby +zpopmin +zrange +zrangebyscore +zrangebylex \
+zrevrange +zrevrangebyscore +zlexcount +zremrangebyscore +zremrangebyrank +zscan"

# What the result backend needs: TTL'd records, a transaction to write + notify, pub/sub for waits and
# revokes, and the Lua guard that records STARTED without overwriting a final state.
RESULTS="+get +set +del +exists +expire +ttl +pttl +hget +hgetall +hmget +hset +hdel +zadd +zrangebyscore +zremrangebyscore +zscore +multi +exec +discard +publish +subscribe +unsubscribe +eval +evalsha +script|load +script|exists"

# Read-only: health checks and exporters see INFO, PING and queue lengths, never job data.
METRICS="+hello +auth +ping +quit +info +client|setname $SETINFO +llen +zcard +hlen +xlen +scard +type +exists +ttl +pttl"

if [[ "$SERVICE" == broker ]]; then APP=$BULLMQ; else APP=$RESULTS; fi
SCOPE="resetkeys resetchannels ~${PREFIX}:* &${PREFIX}:*"

# Hashed up front, outside any command substitution, so a missing file stops the script.
declare -A HASH
for user in "${USERS[@]}"; do
  HASH[$user]=$(password_hash "$SECRETS_DIR/redis_${user}_password")
done

render() {
  # Redis ACL files allow no comments: the header lives in docs/OPERATIONS.md.
  # default: off, no password and no nopass, so no client can be it. Its permissions stay whole
  # because Redis replays the AOF as the default user and re-checks its ACL at each EXEC: with
  # -@all every MULTI/EXEC in the AOF (all of BullMQ's script effects) is refused at load and
  # the jobs silently vanish on a restart (redis/redis#14541, fixed in later releases only).
  echo "user default off resetpass ~* &* +@all"
  for user in producer worker scheduler; do
    echo "user $user on resetpass #${HASH[$user]} $SCOPE -@all $CONNECTION $APP"
  done
  echo "user metrics on resetpass #${HASH[metrics]} resetkeys resetchannels %R~${PREFIX}:* -@all $METRICS"
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
