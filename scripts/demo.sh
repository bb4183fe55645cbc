#!/usr/bin/env bash
# The demo, from a fresh clone: install, build, dev certificates, two TLS-only Redis servers
# (broker + result backend), two workers, the beat, the HTTP API, a batch of example jobs.
# Ctrl-C stops everything. Installs redis-server, redis-cli and openssl when missing if it can
# (root + apt-get), else stops with the command to run.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v pnpm >/dev/null 2>&1; then
  echo "Installing pnpm 12 with npm (corepack is not needed)..."
  npm install -g pnpm@12 >/dev/null
fi
# shellcheck source=scripts/ensure-redis.sh
source scripts/ensure-redis.sh
ensure_redis
pnpm install --frozen-lockfile --reporter=silent
pnpm run --silent build
if [ ! -f certs/dev/ca.crt ]; then
  certs/generate-certs.sh --out certs/dev >/dev/null
  echo "Generated development certificates in certs/dev (CA, server, client)."
fi
exec node scripts/demo.mjs "$@"
