#!/usr/bin/env bash
# Creates the Docker secrets compose/docker-compose.*.yml mount: one Redis password per ACL user,
# the producer API token, and the broker and result-backend ACL files hashed from them.
# Existing files are kept (re-run it after adding a user); nothing secret is printed.
set -euo pipefail

PROG=$(basename "$0")
HERE=$(cd "$(dirname "$0")" && pwd)

usage() {
  cat <<USAGE
Usage: $PROG [--prefix taskline] [--redis-version 7.2] [--celery-queues celery] [DIR]

Writes into DIR (default: compose/secrets), mode 600 for passwords, 640 for ACL files:
  redis_{producer,worker,scheduler,metrics,loader,admin,celery-client}_password   random, 64 hex characters
  producer_api_token                                         random, 64 hex characters
  redis_broker.acl, redis_backend.acl                        ops/acl/generate-acl.sh output
Then give the containers' shared group read access (see compose/README.md):
  chgrp -R \${TASKLINE_FILES_GID:-10001} DIR && chmod 640 DIR/*
USAGE
}

DIR=""
PREFIX=taskline
REDIS_VERSION=7.2
CELERY_QUEUES=celery
while [[ $# -gt 0 ]]; do
  case "$1" in
    --prefix) PREFIX=${2:?--prefix needs a value}; shift 2 ;;
    --redis-version) REDIS_VERSION=${2:?--redis-version needs a value}; shift 2 ;;
    --celery-queues) CELERY_QUEUES=${2:?--celery-queues needs a list like celery,reports}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "$PROG: error: unknown option '$1' (see --help)" >&2; exit 1 ;;
    *) DIR=$1; shift ;;
  esac
done
DIR=${DIR:-$HERE/../compose/secrets}

mkdir -p "$DIR"
if [[ ! -e "$DIR/producer_api_token" ]]; then
  (umask 077 && openssl rand -hex 32 > "$DIR/producer_api_token")
fi
for service in broker backend; do
  "$HERE/acl/generate-acl.sh" --service "$service" --secrets-dir "$DIR" --init-secrets \
    --prefix "$PREFIX" --redis-version "$REDIS_VERSION" --celery-queues "$CELERY_QUEUES" --out "$DIR/redis_$service.acl"
done
echo "$PROG: secrets ready in $DIR" >&2
