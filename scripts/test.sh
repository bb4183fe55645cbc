#!/usr/bin/env bash
# The README's test command, from a fresh clone: pnpm 12 (installed with npm if missing, never
# through corepack), the locked dependencies, then `pnpm test` (build, lint, mocha). Arguments go
# to mocha, e.g. scripts/test.sh test/shared/config.test.ts. Needs Node.js >= 20.19; installs
# redis-server 7 (with TLS), redis-cli and openssl when missing if it can (root + apt-get), else
# stops with the command to run.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v pnpm >/dev/null 2>&1 || ! pnpm --version 2>/dev/null | grep -q '^12\.'; then
  echo "Installing pnpm 12 with npm..."
  npm install -g pnpm@12 >/dev/null
fi
# shellcheck source=scripts/ensure-redis.sh
source scripts/ensure-redis.sh
ensure_redis
ensure_celery
pnpm install --frozen-lockfile
exec pnpm test "$@"
