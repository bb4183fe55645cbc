#!/usr/bin/env bash
# Sourced by scripts/demo.sh and scripts/test.sh: makes sure redis-server 7 (built with TLS),
# redis-cli and openssl are on the PATH. As root with apt-get (a fresh Debian/Ubuntu machine or
# container, as .ci/run does) it installs what is missing; otherwise it stops with one sentence
# naming the command to run.
ensure_redis() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
  command -v openssl >/dev/null 2>&1 || missing+=(openssl)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing ${missing[*]} with apt-get..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    return 0
  fi
  local how="sudo apt-get install -y ${missing[*]}"
  if ! command -v apt-get >/dev/null 2>&1; then
    how="sudo apt-get install -y ${missing[*]} (Debian/Ubuntu), brew install redis openssl (macOS), or your system's Redis 7 package with TLS"
  fi
  echo "$(basename "$0"): ${missing[*]} not found and not installable from here (needs root and apt-get); run: ${how} — then run $0 again." >&2
  exit 1
}

# Sourced by scripts/test.sh: the Celery bridge's suites run a real Python Celery (Debian's
# python3-celery 5.2 with python3-redis). As root with apt-get it installs them when missing;
# otherwise those suites skip, each saying why and naming the command.
ensure_celery() {
  if python3 -c 'import celery, redis' >/dev/null 2>&1 || /usr/bin/python3 -c 'import celery, redis' >/dev/null 2>&1; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing python3-celery and python3-redis with apt-get (the Celery bridge's tests)..."
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-celery python3-redis >/dev/null || echo "Could not install python3-celery; the Celery bridge's suites will skip." >&2
    return 0
  fi
  echo "$(basename "$0"): Python Celery not found; the Celery bridge's suites will skip (install: sudo apt-get install -y python3-celery python3-redis)." >&2
}
