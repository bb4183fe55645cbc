#!/usr/bin/env bash
# CI (issue 18): the four packages packed and installed, as another repository would, into fresh
# apps outside the workspace (one ESM, one CommonJS), with npm and never the registry for
# @taskline/*; each app type-checks with skipLibCheck: false (a misspelt task name must fail to
# compile), then runs a worker (bin), the beat (bin) and an enqueue-and-wait against two
# throwaway TLS Redis servers, and a worker runs a tasks file mounted outside any install tree.
# Everything it starts and every temporary directory is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
started=$SECONDS

log() { printf '\n== %s\n' "$*"; }
fail() { printf 'test-packages: %s\n' "$*" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/taskline-packages.XXXXXX")
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { node -e "const s=require('node:net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }

log "build and pack"
pnpm run --silent build
for pkg in shared producer worker scheduler; do
  (cd "$pkg" && pnpm pack --pack-destination "$work/packs" >/dev/null)
done
for tarball in "$work"/packs/*.tgz; do
  manifest=$(tar -xzOf "$tarball" package/package.json)
  if grep -q '"workspace:' <<<"$manifest"; then fail "$(basename "$tarball") still depends on workspace:*"; fi
  if grep -q '"private"' <<<"$manifest"; then fail "$(basename "$tarball") is private"; fi
done
ls "$work/packs"

log "two TLS Redis servers (broker, result backend) on free ports"
certs/generate-certs.sh --out "$work/certs" >/dev/null
redis_env=()
for role in broker backend; do
  port=$(free_port)
  mkdir -p "$work/redis-$role"
  redis-server --port 0 --tls-port "$port" --bind 127.0.0.1 --dir "$work/redis-$role" --save '' --appendonly no \
    --tls-cert-file "$work/certs/server.crt" --tls-key-file "$work/certs/server.key" --tls-ca-cert-file "$work/certs/ca.crt" \
    --tls-auth-clients no --tls-protocols 'TLSv1.2 TLSv1.3' >"$work/redis-$role.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do
    if [ "$(redis-cli --tls --cacert "$work/certs/ca.crt" -h 127.0.0.1 -p "$port" ping 2>/dev/null)" = PONG ]; then break; fi
    sleep 0.1
  done
  var=$([ "$role" = broker ] && echo REDIS || echo RESULT_REDIS)
  redis_env+=("${var}_HOST=127.0.0.1" "${var}_PORT=$port" "${var}_SSL=true" "${var}_CA_CERT=$work/certs/ca.crt")
done
export "${redis_env[@]}" TASKLINE_METRICS_PORT=0 REDIS_HEALTH_CHECK_INTERVAL=0 LOG_LEVEL=warn

typescript=$(node -p "require('./package.json').devDependencies.typescript")
types_node=$(node -p "require('./package.json').devDependencies['@types/node']")

# An app in its own directory: the four tarballs, a tasks module, a typed producer, a typo.
make_app() {
  local app=$1 type=$2
  mkdir -p "$app"
  cat >"$app/package.json" <<EOF
{
  "name": "taskline-consumer-$type",
  "private": true,
  "type": "$type",
  "dependencies": {
    "@taskline/shared": "file:$work/packs/taskline-shared-0.1.0.tgz",
    "@taskline/producer": "file:$work/packs/taskline-producer-0.1.0.tgz",
    "@taskline/worker": "file:$work/packs/taskline-worker-0.1.0.tgz",
    "@taskline/scheduler": "file:$work/packs/taskline-scheduler-0.1.0.tgz"
  },
  "overrides": { "@taskline/shared": "\$@taskline/shared" },
  "devDependencies": { "typescript": "$typescript", "@types/node": "$types_node" }
}
EOF
  # No registry serves @taskline/*: if npm asked one for them, the install would fail (or time out) here.
  echo "@taskline:registry=http://127.0.0.1:9/" >"$app/.npmrc"
  cat >"$app/tsconfig.json" <<'EOF'
{
  "compilerOptions": {
    "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext", "strict": true,
    "skipLibCheck": false, "types": ["node"], "outDir": "dist", "rootDir": "src"
  },
  "include": ["src/tasks.ts", "src/app.ts"]
}
EOF
  cat >"$app/tsconfig.typo.json" <<'EOF'
{ "extends": "./tsconfig.json", "compilerOptions": { "noEmit": true }, "include": ["src/tasks.ts", "src/typo.ts"] }
EOF
  mkdir -p "$app/src"
  cat >"$app/src/tasks.ts" <<'EOF'
import { appendFileSync } from 'node:fs';
import { defineTasks } from '@taskline/worker';

export const tasks = defineTasks({
  add: { run: (data: { a: number; b: number }) => ({ sum: data.a + data.b }) },
  tick: {
    run: (data: { from: string }) => {
      appendFileSync(process.env['TICK_LOG'] ?? 'ticks.log', `${data.from}\n`);
      return 'ticked';
    },
  },
});
export default tasks;
EOF
  cat >"$app/src/app.ts" <<'EOF'
import { createProducer } from '@taskline/producer';
import type { tasks } from './tasks.js';

async function main(): Promise<void> {
  const producer = createProducer<typeof tasks>();
  try {
    const job = await producer.enqueue('add', { a: 2, b: 3 });
    const record = await producer.waitForResult(job.id, { timeoutMs: 30_000 });
    const sum: number | undefined = record.result?.sum;
    if (record.state !== 'SUCCESS' || sum !== 5) throw new Error(`add(2, 3) ended ${JSON.stringify(record)}`);
    console.log(`enqueue-and-wait: add(2, 3) = ${sum}`);
  } finally {
    await producer.close();
  }
}
main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
EOF
  cat >"$app/src/typo.ts" <<'EOF'
import { createProducer } from '@taskline/producer';
import type { tasks } from './tasks.js';

export async function typos(): Promise<void> {
  const producer = createProducer<typeof tasks>();
  await producer.enqueue('ad', { a: 1, b: 2 });
  await producer.enqueue('add', { a: '1', b: 2 });
}
EOF
  (cd "$app" && timeout 300 npm install --no-audit --no-fund --prefer-offline --loglevel=error >"$app/npm.log" 2>&1) || { cat "$app/npm.log"; fail "npm install of the tarballs failed in the $type app"; }
}

check_app() {
  local app=$1 type=$2
  log "$type app: type-check with skipLibCheck false, a typo must not compile"
  (cd "$app" && npx tsc -p tsconfig.json) || fail "the $type app does not type-check"
  if (cd "$app" && npx tsc -p tsconfig.typo.json >"$app/typo.log" 2>&1); then fail "the $type app compiled a misspelt task name"; fi
  grep -q "src/typo.ts(6,.*\"ad\"" "$app/typo.log" || { cat "$app/typo.log"; fail "no compile error on the misspelt task name"; }
  grep -q "src/typo.ts(7," "$app/typo.log" || { cat "$app/typo.log"; fail "no compile error on the wrong data shape"; }
  echo "tsc: compiles; the typo and the wrong data shape are errors:"
  grep -o "typo.ts([0-9,]*): error TS[0-9]*" "$app/typo.log"
}

run_app() {
  local app=$1 type=$2
  log "$type app: a worker (bin) running the tasks, an enqueue-and-wait"
  (cd "$app" && TASKLINE_PREFIX="$type" exec node_modules/.bin/taskline-worker start --tasks dist/tasks.js >"$app/worker.log" 2>&1) &
  pids+=($!)
  (cd "$app" && TASKLINE_PREFIX="$type" timeout 60 node dist/app.js) || { cat "$app/worker.log"; fail "the $type app's enqueue-and-wait failed"; }
}

for type in module commonjs; do
  app="$work/app-$type"
  log "$type app: npm install of the four tarballs (no registry for @taskline/*)"
  make_app "$app" "$type"
  (cd "$app" && npm ls @taskline/shared --all)
  check_app "$app" "$type"
  run_app "$app" "$type"
done

log "the beat (bin) from the ESM app: a schedule every second, run by that app's worker"
app="$work/app-module"
export TICK_LOG="$work/ticks.log"
cat >"$work/schedule.json" <<'EOF'
{ "schedules": [{ "id": "tick", "task": "tick", "every": "1s", "data": { "from": "beat" } }] }
EOF
(cd "$app" && TASKLINE_PREFIX=beat exec node_modules/.bin/taskline-worker start --tasks dist/tasks.js >"$work/beat-worker.log" 2>&1) &
pids+=($!)
(cd "$app" && TASKLINE_PREFIX=beat exec node_modules/.bin/taskline-scheduler start --schedule "$work/schedule.json" >"$work/beat.log" 2>&1) &
pids+=($!)
for _ in $(seq 300); do [ -s "$TICK_LOG" ] && break; sleep 0.1; done
[ -s "$TICK_LOG" ] || { cat "$work/beat.log" "$work/beat-worker.log"; fail "no scheduled tick ran within 30 s"; }
echo "a scheduled job ran: $(head -1 "$TICK_LOG")"

log "a tasks file mounted outside any install tree (as in the container image)"
mkdir -p "$work/mounted"
cat >"$work/mounted/tasks.mjs" <<'EOF'
import { defineTasks } from '@taskline/worker';
export default defineTasks({ shout: { run: data => String(data.text).toUpperCase() } });
EOF
(cd "$app" && TASKLINE_PREFIX=mounted exec node_modules/.bin/taskline-worker start --tasks "$work/mounted/tasks.mjs" >"$work/mounted-worker.log" 2>&1) &
pids+=($!)
answer=$(cd "$app" && TASKLINE_PREFIX=mounted node_modules/.bin/taskline-producer enqueue shout --data '{"text": "mounted"}' --wait --timeout 30) ||
  { cat "$work/mounted-worker.log"; fail "the mounted tasks file did not run"; }
grep -q MOUNTED <<<"$answer" || { echo "$answer"; cat "$work/mounted-worker.log"; fail "the mounted task answered wrongly"; }
echo "taskline-producer enqueue shout --wait: $answer"

log "packages: ok in $((SECONDS - started)) s"
