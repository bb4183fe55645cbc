#!/usr/bin/env bash
# Rotates the TLS certificates of taskline's Redis servers and clients without downtime.
# Run with --help for usage. Needs bash, openssl and (to reload servers) redis-cli.
set -euo pipefail

PROG=$(basename "$0")
HERE=$(cd "$(dirname "$0")" && pwd)
GENERATE="$HERE/../certs/generate-certs.sh"

usage() {
  cat <<EOF
Usage: $PROG COMMAND [options]

Rotates the certificates in one live directory (ca.crt, server.crt/.key, client.crt/.key: the
files Redis' tls-*-file settings and taskline's REDIS_CA_CERT / REDIS_CLIENT_CERT / REDIS_CLIENT_KEY
(and RESULT_REDIS_*) name). Run the commands in this order, checking jobs still flow after each:

  issue        make the new files beside the live ones: NAME-ca.crt (new CA, its key in the CA
               directory, or a copy of the current CA with --same-ca), NAME-server.crt/.key,
               NAME-client.crt/.key
  trust-both   ca.crt := old CA + new CA (old one kept as previous-ca.crt); servers reload
               tls-ca-cert-file. taskline re-reads its CA file at every new connection and
               reconnect, so clients trust both CAs from then on, servers accept both.
  roll-server  server.crt/.key := the new pair (old kept as previous-server.*); servers reload
               tls-cert-file and tls-key-file. Refused unless ca.crt trusts the new certificate.
  roll-client  client.crt/.key := the new pair (old kept as previous-client.*). Processes use
               them from their next connection; nothing restarts.
  drop-old-ca  once every process has reconnected: ca.crt := new CA only, the CA directory's
               ca.key := the new key (the old one moves to CA-DIR/retired-<time>/); servers
               reload tls-ca-cert-file; previous-* files move to retired-<time>/.
               Refused unless server.crt and client.crt are both issued by the new CA.
  plan         print the whole procedure for these options; change nothing

Options:
  --dir DIR             the live certificate directory (default: certs/prod)
  --ca-dir DIR          where the CA's private key is kept, never mounted into servers or
                        containers (default: DIR/ca-private, as certs/generate-certs.sh writes it)
  --prefix NAME         name of the new files (default: next)
  --same-ca             issue: sign with the current CA (a renewal, no CA change)
  --days N              issue: validity of the new certificates (default: 365)
  --key-type rsa|ec     issue: key type (default: rsa)
  --san DNS:x|IP:a      issue: extra server SAN (repeatable); --no-default-sans, --server-cn NAME
                        and --client-cn NAME are passed to certs/generate-certs.sh too
  --redis HOST:PORT     a Redis server to reload (repeatable: broker and result backend). Without
                        it the redis-cli commands are printed for you to run.
  --server-tls-dir DIR  where the Redis servers see --dir (default: --dir as an absolute path;
                        /tls in compose/docker-compose.prod.yml)
  --user NAME           ACL user redis-cli logs in as (e.g. admin; CONFIG needs it)
  --password-file FILE  that user's password, given to redis-cli as REDISCLI_AUTH; never printed
  --sni NAME            TLS server name redis-cli sends and checks (e.g. localhost)
  --cacert FILE         CA redis-cli verifies the servers with (default: DIR/ca.crt)
  --cert FILE --key FILE  redis-cli's client certificate (default: DIR/client.crt and .key)
  --redis-cli CMD       how to run redis-cli (default: redis-cli), e.g. inside a container that
                        reaches the servers: "docker compose -f compose/docker-compose.prod.yml
                        exec -T -e REDISCLI_AUTH redis-broker redis-cli"; then --cacert, --cert
                        and --key default to the --server-tls-dir paths
  --dry-run             print what would be done; change nothing
  -h, --help            show this help

Example (compose; Redis is not published on the host, so redis-cli runs in the broker's container):
  $PROG issue --dir certs/prod
  $PROG trust-both --dir certs/prod --server-tls-dir /tls \\
      --redis-cli "docker compose -f compose/docker-compose.prod.yml exec -T -e REDISCLI_AUTH redis-broker redis-cli" \\
      --redis redis-broker:6379 --redis redis-backend:6379 \\
      --user admin --password-file compose/secrets/redis_admin_password
  ... roll-server, roll-client, drop-old-ca with the same options.
EOF
}

die() {
  echo "$PROG: error: $*" >&2
  exit 1
}

need_value() {
  [[ $# -ge 2 && -n "$2" ]] || die "option $1 needs a value (see --help)"
}

COMMAND=""
DIR=certs/prod
CA_DIR=""
NAME=next
SAME_CA=0
GEN_ARGS=()
SERVERS=()
SERVER_TLS_DIR=""
CLI_USER=""
PASSWORD_FILE=""
SNI=""
CLI_CACERT=""
CLI_CERT=""
CLI_KEY=""
REDIS_CLI="redis-cli"
DRY_RUN=0

while [[ $# -gt 0 ]]; do
  case "$1" in
    issue|trust-both|roll-server|roll-client|drop-old-ca|plan)
      [[ -z "$COMMAND" ]] || die "give one command, got '$COMMAND' and '$1'"
      COMMAND=$1; shift ;;
    --dir) need_value "$@"; DIR=$2; shift 2 ;;
    --ca-dir) need_value "$@"; CA_DIR=$2; shift 2 ;;
    --prefix) need_value "$@"; NAME=$2; shift 2 ;;
    --same-ca) SAME_CA=1; shift ;;
    --days|--key-type|--san|--server-cn|--client-cn) need_value "$@"; GEN_ARGS+=("$1" "$2"); shift 2 ;;
    --no-default-sans) GEN_ARGS+=("$1"); shift ;;
    --redis) need_value "$@"; SERVERS+=("$2"); shift 2 ;;
    --server-tls-dir) need_value "$@"; SERVER_TLS_DIR=$2; shift 2 ;;
    --user) need_value "$@"; CLI_USER=$2; shift 2 ;;
    --password-file) need_value "$@"; PASSWORD_FILE=$2; shift 2 ;;
    --sni) need_value "$@"; SNI=$2; shift 2 ;;
    --cacert) need_value "$@"; CLI_CACERT=$2; shift 2 ;;
    --cert) need_value "$@"; CLI_CERT=$2; shift 2 ;;
    --key) need_value "$@"; CLI_KEY=$2; shift 2 ;;
    --redis-cli) need_value "$@"; REDIS_CLI=$2; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

[[ -n "$COMMAND" ]] || die "no command given; run '$PROG --help' and start with 'issue'"
[[ "$NAME" =~ ^[A-Za-z0-9._-]+$ ]] || die "--prefix must be a plain file name prefix, got '$NAME'"
[[ "$NAME" != previous && "$NAME" != retired ]] || die "--prefix '$NAME' is reserved; pick another"
[[ -d "$DIR" ]] || die "--dir '$DIR' is not a directory; point it at the live certificate directory"
DIR=$(cd "$DIR" && pwd)
CA_DIR=${CA_DIR:-$DIR/ca-private}
SERVER_TLS_DIR=${SERVER_TLS_DIR:-$DIR}
# redis-cli sees the files where the servers do when it runs elsewhere (--redis-cli).
CLI_DIR=$DIR
[[ "$REDIS_CLI" == redis-cli ]] || CLI_DIR=$SERVER_TLS_DIR
CLI_CACERT=${CLI_CACERT:-$CLI_DIR/ca.crt}
if [[ -z "$CLI_CERT" && -z "$CLI_KEY" && -e "$DIR/client.crt" && -e "$DIR/client.key" ]]; then
  CLI_CERT=$CLI_DIR/client.crt
  CLI_KEY=$CLI_DIR/client.key
fi
read -r -a REDIS_CLI_WORDS <<<"$REDIS_CLI"
[[ ${#REDIS_CLI_WORDS[@]} -gt 0 ]] || die "--redis-cli is empty"
if [[ -n "$CLI_CERT" && -z "$CLI_KEY" ]] || [[ -z "$CLI_CERT" && -n "$CLI_KEY" ]]; then
  die "give --cert and --key together"
fi
if [[ -n "$PASSWORD_FILE" ]]; then
  [[ -r "$PASSWORD_FILE" ]] || die "cannot read --password-file '$PASSWORD_FILE'; fix the path or its permissions"
fi
for server in "${SERVERS[@]+"${SERVERS[@]}"}"; do
  [[ "$server" =~ ^.+:[0-9]+$ ]] || die "bad --redis '$server': use HOST:PORT"
done

NEW_CA="$DIR/$NAME-ca.crt"
NEW_CA_KEY="$CA_DIR/$NAME-ca.key"
NEW_SERVER="$DIR/$NAME-server"
NEW_CLIENT="$DIR/$NAME-client"

say() { echo "$PROG: $*"; }

run() {
  if [[ $DRY_RUN -eq 1 ]]; then
    echo "would run: $*"
  else
    "$@"
  fi
}

need_file() {
  [[ -r "$1" ]] || die "$1 is missing; $2"
}

# install SRC DEST: replace DEST atomically (copy beside it, keep its mode and group, rename).
# A key file is never readable by others: a new one is 600, a replaced one keeps its owner's and
# group's access (e.g. 640 for the containers' group, compose/README.md) without the others' bits.
install_file() {
  local src=$1 dest=$2 tmp
  if [[ $DRY_RUN -eq 1 ]]; then
    echo "would replace $dest with $src"
    return
  fi
  tmp=$(umask 077 && mktemp "$dest.XXXXXX")
  cat "$src" >"$tmp"
  if [[ -e "$dest" ]]; then
    chmod --reference="$dest" "$tmp" 2>/dev/null || chmod 600 "$tmp"
    chgrp --reference="$dest" "$tmp" 2>/dev/null || true
    [[ "$dest" != *.key ]] || chmod o-rwx "$tmp"
  elif [[ "$dest" == *.key ]]; then
    chmod 600 "$tmp"
  else
    chmod 644 "$tmp"
  fi
  mv -f "$tmp" "$dest"
}

# The CA key of the live CA: in the CA directory, or (layout before the CA directory) beside
# the certificates, where it must not stay.
live_ca_key() {
  if [[ -e "$CA_DIR/ca.key" ]]; then echo "$CA_DIR/ca.key"
  elif [[ -e "$DIR/ca.key" ]]; then echo "$DIR/ca.key"
  fi
}

warn_legacy_ca_key() {
  [[ -e "$DIR/ca.key" ]] || return 0
  say "WARNING: $DIR/ca.key is the CA's private key in the directory servers and containers mount; move it out: (umask 077 && mkdir -p $CA_DIR) && mv $DIR/ca.key $CA_DIR/ca.key"
}

# keep FILE NAME: copy FILE to previous-NAME once (a re-run keeps the first copy).
keep() {
  local src=$1 dest="$DIR/previous-$2"
  [[ -e "$src" && ! -e "$dest" ]] || return 0
  run cp -p "$src" "$dest"
  if [[ "$dest" == *.key ]]; then run chmod o-rwx "$dest"; fi
}

# The public key of a certificate and of a private key, to check that a pair belongs together.
cert_pubkey() { openssl x509 -in "$1" -noout -pubkey 2>/dev/null; }
key_pubkey() { openssl pkey -in "$1" -pubout 2>/dev/null; }

check_pair() {
  need_file "$1.crt" "run '$PROG issue' first"
  need_file "$1.key" "run '$PROG issue' first"
  [[ "$(cert_pubkey "$1.crt")" == "$(key_pubkey "$1.key")" && -n "$(cert_pubkey "$1.crt")" ]] \
    || die "$1.crt and $1.key do not belong together; issue them again"
}

verifies() {
  openssl verify -CAfile "$1" "$2" >/dev/null 2>&1
}

# reload CONFIG-SET-ARGS...: on every --redis server, or printed when none was given.
reload() {
  local printable="CONFIG SET $*"
  if [[ ${#SERVERS[@]} -eq 0 ]]; then
    say "now run on each Redis server (as a user allowed CONFIG, e.g. admin): $printable"
    return
  fi
  local flags=(--tls --cacert "$CLI_CACERT" --no-auth-warning)
  [[ -n "$CLI_CERT" ]] && flags+=(--cert "$CLI_CERT" --key "$CLI_KEY")
  [[ -n "$SNI" ]] && flags+=(--sni "$SNI")
  [[ -n "$CLI_USER" ]] && flags+=(--user "$CLI_USER")
  local server host port out
  for server in "${SERVERS[@]}"; do
    host=${server%:*}
    port=${server##*:}
    if [[ $DRY_RUN -eq 1 ]]; then
      echo "would run on $server: $printable"
      continue
    fi
    # The password goes through the environment, never the command line or the output.
    if ! out=$(
      if [[ -n "$PASSWORD_FILE" ]]; then REDISCLI_AUTH=$(head -n 1 "$PASSWORD_FILE" | tr -d '\r'); export REDISCLI_AUTH; fi
      "${REDIS_CLI_WORDS[@]}" -h "$host" -p "$port" "${flags[@]}" CONFIG SET "$@" 2>&1
    ) || [[ "$out" != "OK" ]]; then
      die "$server refused '$printable': ${out:-no answer}. Check --redis, --user/--password-file (CONFIG needs the admin user) and --server-tls-dir (the path as the server sees it)."
    fi
    say "$server: $printable -> OK"
  done
}

# probe CAFILE WHAT: every --redis server must answer PING over TLS verified with CAFILE.
probe() {
  [[ ${#SERVERS[@]} -gt 0 && $DRY_RUN -eq 0 ]] || return 0
  local flags=(--tls --cacert "$1" --no-auth-warning)
  [[ -n "$CLI_CERT" ]] && flags+=(--cert "$CLI_CERT" --key "$CLI_KEY")
  [[ -n "$SNI" ]] && flags+=(--sni "$SNI")
  [[ -n "$CLI_USER" ]] && flags+=(--user "$CLI_USER")
  local server out
  for server in "${SERVERS[@]}"; do
    out=$(
      if [[ -n "$PASSWORD_FILE" ]]; then REDISCLI_AUTH=$(head -n 1 "$PASSWORD_FILE" | tr -d '\r'); export REDISCLI_AUTH; fi
      "${REDIS_CLI_WORDS[@]}" -h "${server%:*}" -p "${server##*:}" "${flags[@]}" PING 2>&1
    ) || true
    [[ "$out" == PONG ]] || die "$server $2 (${out:-no answer}); nothing was changed"
  done
}

srv() { echo "$SERVER_TLS_DIR/$1"; }

cmd_issue() {
  for f in "$NEW_CA" "$NEW_SERVER.crt" "$NEW_CLIENT.crt" "$DIR/previous-ca.crt"; do
    [[ ! -e "$f" ]] || die "$f exists: a rotation is in progress; finish it (drop-old-ca) or remove the $NAME-* and previous-* files"
  done
  warn_legacy_ca_key
  if [[ $SAME_CA -eq 1 ]]; then
    need_file "$DIR/ca.crt" "--same-ca signs with the live CA"
    local key
    key=$(live_ca_key)
    need_file "${key:-$CA_DIR/ca.key}" "--same-ca needs the CA's private key (--ca-dir, default DIR/ca-private)"
    run "$GENERATE" --out "$DIR" --prefix "$NAME" --ca-cert "$DIR/ca.crt" --ca-key "$key" "${GEN_ARGS[@]+"${GEN_ARGS[@]}"}"
    # The same CA under the new name, so the later steps are the same for both kinds of rotation.
    run cp "$DIR/ca.crt" "$NEW_CA"
  else
    run "$GENERATE" --out "$DIR" --ca-dir "$CA_DIR" --prefix "$NAME" "${GEN_ARGS[@]+"${GEN_ARGS[@]}"}"
  fi
  say "issued $NAME-* in $DIR; next: $PROG trust-both"
}

cmd_trust_both() {
  need_file "$NEW_CA" "run '$PROG issue' first"
  need_file "$DIR/ca.crt" "the live CA file is needed to build the bundle"
  keep "$DIR/ca.crt" ca.crt
  local old="$DIR/previous-ca.crt"
  [[ $DRY_RUN -eq 1 && ! -e "$old" ]] && old="$DIR/ca.crt"
  if [[ $DRY_RUN -eq 0 ]]; then
    local bundle
    bundle=$(mktemp "$DIR/.ca-bundle.XXXXXX")
    if cmp -s "$old" "$NEW_CA"; then cat "$NEW_CA" >"$bundle"; else cat "$old" "$NEW_CA" >"$bundle"; fi
    install_file "$bundle" "$DIR/ca.crt"
    rm -f "$bundle"
  else
    echo "would write $DIR/ca.crt := $old + $NEW_CA"
  fi
  say "ca.crt now trusts the old and the new CA"
  reload tls-ca-cert-file "$(srv ca.crt)"
  say "next: $PROG roll-server"
}

cmd_roll_server() {
  check_pair "$NEW_SERVER"
  verifies "$DIR/ca.crt" "$NEW_SERVER.crt" \
    || die "ca.crt does not trust $NEW_SERVER.crt, so clients would reject it; run '$PROG trust-both' first"
  keep "$DIR/server.crt" server.crt
  keep "$DIR/server.key" server.key
  install_file "$NEW_SERVER.key" "$DIR/server.key"
  install_file "$NEW_SERVER.crt" "$DIR/server.crt"
  # One command, so the server never pairs the new certificate with the old key.
  reload tls-cert-file "$(srv server.crt)" tls-key-file "$(srv server.key)"
  run rm -f "$NEW_SERVER.crt" "$NEW_SERVER.key"
  say "servers present the new certificate to new connections; next: $PROG roll-client"
}

cmd_roll_client() {
  check_pair "$NEW_CLIENT"
  verifies "$DIR/ca.crt" "$NEW_CLIENT.crt" \
    || die "ca.crt does not trust $NEW_CLIENT.crt, so servers would reject it; run '$PROG trust-both' first"
  keep "$DIR/client.crt" client.crt
  keep "$DIR/client.key" client.key
  # Key, then certificate, back to back: only a connection set up in the instant between the two
  # renames could see a mismatched pair.
  install_file "$NEW_CLIENT.key" "$DIR/client.key"
  install_file "$NEW_CLIENT.crt" "$DIR/client.crt"
  run rm -f "$NEW_CLIENT.crt" "$NEW_CLIENT.key"
  say "processes use the new client certificate from their next connection"
  say "next, once every process has reconnected (docs/OPERATIONS.md, certificate rotation): $PROG drop-old-ca"
}

cmd_drop_old_ca() {
  need_file "$NEW_CA" "nothing to drop: no rotation is in progress"
  local f
  for f in server.crt client.crt; do
    [[ -e "$DIR/$f" ]] || continue
    verifies "$NEW_CA" "$DIR/$f" \
      || die "$DIR/$f is not issued by the new CA; run '$PROG roll-server' / 'roll-client' first, or connections would break"
  done
  # The servers must already present the new certificate, or clients would lose them now.
  probe "$CLI_DIR/$NAME-ca.crt" "does not present a certificate from the new CA yet; run '$PROG roll-server' (with its CONFIG SET) first"
  install_file "$NEW_CA" "$DIR/ca.crt"
  reload tls-ca-cert-file "$(srv ca.crt)"
  local retired stamp old_key
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  retired="$DIR/retired-$stamp"
  run mkdir -p "$retired"
  if [[ -e "$NEW_CA_KEY" ]]; then
    # The old CA key is retired inside the CA directory, never into the mounted one.
    old_key=$(live_ca_key)
    if [[ -n "$old_key" ]]; then
      run mkdir -p -m 700 "$CA_DIR/retired-$stamp"
      run mv "$old_key" "$CA_DIR/retired-$stamp/ca.key"
    fi
    run mv "$NEW_CA_KEY" "$CA_DIR/ca.key"
  fi
  run rm -f "$NEW_CA"
  for f in "$DIR"/previous-*; do
    [[ -e "$f" ]] || continue
    run mv "$f" "$retired/${f##*/previous-}"
  done
  say "the old CA is no longer trusted; the old files are in $retired (delete them when no longer needed)"
}

cmd_plan() {
  local target="--dir $DIR"
  [[ ${#SERVERS[@]} -gt 0 ]] && target+=" --redis ${SERVERS[*]}"
  cat <<EOF
Certificate rotation for $DIR (servers see it as $SERVER_TLS_DIR):
 1. $PROG issue $target$([[ $SAME_CA -eq 1 ]] && echo " --same-ca")
      new files $NAME-ca.crt, $NAME-server.*, $NAME-client.* beside the live ones
 2. $PROG trust-both ...
      ca.crt := old CA + new CA; CONFIG SET tls-ca-cert-file $(srv ca.crt)
 3. $PROG roll-server ...
      server.crt/.key := new pair; CONFIG SET tls-cert-file $(srv server.crt) tls-key-file $(srv server.key)
 4. $PROG roll-client ...
      client.crt/.key := new pair; processes use it from their next connection
 5. wait until every process has reconnected (taskline_redis_certificate_expiry_timestamp_seconds{certificate="client"}
    shows the new date on every process, or restart them at leisure), then
    $PROG drop-old-ca ...
      ca.crt := new CA only; CONFIG SET tls-ca-cert-file $(srv ca.crt)
Check after each step: taskline-worker health, and jobs still succeed.
EOF
}

case "$COMMAND" in
  issue) cmd_issue ;;
  trust-both) cmd_trust_both ;;
  roll-server) cmd_roll_server ;;
  roll-client) cmd_roll_client ;;
  drop-old-ca) cmd_drop_old_ca ;;
  plan) cmd_plan ;;
esac
