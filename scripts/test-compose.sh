#!/usr/bin/env bash
# pnpm test:compose — build the image, run the production compose stack, scale it and break it.
#
#   1. a Docker engine: the running one, or docker.io installed with apt and dockerd started in the
#      background (stopped again at the end);
#   2. base images: node:20-slim / redis:7 when they can be pulled, otherwise made from Debian
#      packages and kept between runs (test/compose/base-images.sh);
#   3. the project's Dockerfile built with the legacy builder (host networking: the package
#      registries are reachable from the host only), base image as the NODE_IMAGE build argument;
#   4. certificates, ACL users and secrets in a temp dir; compose/docker-compose.prod.yml checked by
#      test/compose/checks.ts (one line per check, then "compose: N passed, N failed");
#   5. the connection suite against Redis containers (TASKLINE_TEST_REDIS=container).
# Everything it made is removed on exit (containers, networks, volumes, temp dirs); the base images
# and the built image stay, as caches. Needs root (apt, dockerd, debootstrap).
# Settings: TEST_COMPOSE_SKIP_CONTAINER_SUITE=1 skips step 5; TEST_COMPOSE_KEEP=1 keeps the stack up.
set -euo pipefail
cd "$(dirname "$0")/.."

T0=$SECONDS
say() { printf '[test:compose %4ss] %s\n' "$((SECONDS - T0))" "$*"; }
die() { say "error: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "needs root (apt-get, dockerd, debootstrap, files owned by the containers' group)"

RUN_DIR=$(mktemp -d /tmp/taskline-compose.XXXXXX)
chmod 755 "$RUN_DIR"
PROJECT="tlcompose$$"
COMPOSE_FILE_PATH=compose/docker-compose.prod.yml
STARTED_DOCKERD=""
COMPOSE=""

CHECKS_PID=""
cleanup() {
  local rc=$?
  set +e
  if [[ -n "$CHECKS_PID" ]]; then kill "$CHECKS_PID" 2>/dev/null; wait "$CHECKS_PID" 2>/dev/null; fi
  if [[ -n "$COMPOSE" && "${TEST_COMPOSE_KEEP:-}" != 1 ]]; then
    $COMPOSE -p "$PROJECT" -f "$COMPOSE_FILE_PATH" down -v --remove-orphans -t 10 >/dev/null 2>&1
    docker ps -aq --filter "label=taskline.test-compose=$PROJECT" | xargs -r docker rm -f -v >/dev/null 2>&1
    docker ps -aq --filter "label=org.testcontainers=true" --filter "ancestor=${REDIS_IMAGE:-none}" | xargs -r docker rm -f -v >/dev/null 2>&1
    docker image prune -f --filter "label=org.taskline.test-compose=1" >/dev/null 2>&1
  fi
  if [[ -n "$STARTED_DOCKERD" && "${TEST_COMPOSE_KEEP:-}" != 1 ]]; then
    say "stopping the dockerd this run started (pid $STARTED_DOCKERD)"
    kill "$STARTED_DOCKERD" 2>/dev/null
    for _ in $(seq 1 30); do kill -0 "$STARTED_DOCKERD" 2>/dev/null || break; sleep 1; done
  fi
  rm -rf "$RUN_DIR"
  say "done in $((SECONDS - T0)) s (exit $rc)"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

apt_updated=false
apt_install() {
  if [[ $apt_updated == false ]]; then apt-get update -qq; apt_updated=true; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# ---- 1. the engine ---------------------------------------------------------------------------
if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null 2>&1 || { say "installing docker.io"; apt_install docker.io; }
  say "starting dockerd (overlay2) in the background"
  dockerd --storage-driver overlay2 --pidfile "$RUN_DIR/dockerd.pid" >"$RUN_DIR/dockerd.log" 2>&1 &
  STARTED_DOCKERD=$!
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { tail -20 "$RUN_DIR/dockerd.log"; die "dockerd did not answer within 60 s (log above)"; }
fi
if docker compose version >/dev/null 2>&1; then COMPOSE="docker compose"
else
  command -v docker-compose >/dev/null 2>&1 || { say "installing docker-compose"; apt_install docker-compose; }
  COMPOSE=docker-compose
fi
command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap
say "engine $(docker version --format '{{.Server.Version}}'), compose: $COMPOSE $($COMPOSE version --short 2>/dev/null || true)"

# ---- 2. base images --------------------------------------------------------------------------
t=$SECONDS
eval "$(bash test/compose/base-images.sh)"
say "base images in $((SECONDS - t)) s: node=$NODE_IMAGE redis=$REDIS_IMAGE"

# ---- 3. the image ----------------------------------------------------------------------------
IMAGE=taskline:test-compose
t=$SECONDS
DOCKER_BUILDKIT=0 docker build --network host --build-arg "NODE_IMAGE=$NODE_IMAGE" \
  --label org.taskline.test-compose=1 -t "$IMAGE" . >"$RUN_DIR/build.log" 2>&1 \
  || { tail -40 "$RUN_DIR/build.log"; die "docker build failed (log above)"; }
say "built $IMAGE from $NODE_IMAGE in $((SECONDS - t)) s (legacy builder)"

# ---- 4. certificates, secrets, the stack's checks --------------------------------------------
certs/generate-certs.sh --out "$RUN_DIR/certs" >/dev/null
# The producer API's own certificate (HTTPS), from the same CA: the names clients reach it by.
certs/generate-certs.sh --out "$RUN_DIR/certs" --ca-cert "$RUN_DIR/certs/ca.crt" --ca-key "$RUN_DIR/certs/ca-private/ca.key" \
  --server-only --prefix api --server-cn producer --no-default-sans --san DNS:producer --san DNS:localhost --san IP:127.0.0.1 >/dev/null
certs/generate-certs.sh --out "$RUN_DIR/wrong-certs" >/dev/null   # another CA, for the refusal checks
redis_version=$(docker run --rm "$REDIS_IMAGE" redis-server --version | sed -E 's/.* v=([0-9]+\.[0-9]+).*/\1/')
ops/make-secrets.sh --redis-version "$redis_version" "$RUN_DIR/secrets" 2>/dev/null
# compose/README.md step 3: the containers' shared group may read the keys they mount and the secrets.
keys=("$RUN_DIR/certs/server.key" "$RUN_DIR/certs/client.key" "$RUN_DIR/certs/api-server.key")
chgrp "${TASKLINE_FILES_GID:-10001}" "${keys[@]}" "$RUN_DIR/secrets/"*
chmod 640 "${keys[@]}" "$RUN_DIR/secrets/"*
chmod 644 "$RUN_DIR/wrong-certs/"*.key   # a throwaway identity the probe reads from inside a container
cat >"$RUN_DIR/schedule.json" <<'EOF'
{ "schedules": [ { "id": "tick", "task": "echo", "every": "2s", "data": { "tick": true } } ] }
EOF
chmod 644 "$RUN_DIR/schedule.json"
port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")

export COMPOSE_PROJECT_NAME=$PROJECT TEST_COMPOSE_FILE=$COMPOSE_FILE_PATH TEST_COMPOSE_CMD=$COMPOSE \
  TEST_COMPOSE_DIR=$RUN_DIR TEST_COMPOSE_NODE_IMAGE=$NODE_IMAGE TEST_COMPOSE_WRONG_CERTS_DIR=$RUN_DIR/wrong-certs \
  TASKLINE_IMAGE=$IMAGE TASKLINE_REDIS_IMAGE=$REDIS_IMAGE \
  TASKLINE_CERTS_DIR=$RUN_DIR/certs TASKLINE_SECRETS_DIR=$RUN_DIR/secrets TASKLINE_SCHEDULE_FILE=$RUN_DIR/schedule.json \
  PRODUCER_PORT=127.0.0.1:$port \
  TASKLINE_LOCK_DURATION_MS=5000 TASKLINE_STALLED_INTERVAL_MS=5000 TASKLINE_SHUTDOWN_GRACE_MS=30000
say "checks against $COMPOSE_FILE_PATH (project $PROJECT)"
rc=0
# In the background and waited for, so a signal reaches the trap at once (and the trap ends it).
node --import tsx test/compose/checks.ts & CHECKS_PID=$!
wait "$CHECKS_PID" || rc=$?
CHECKS_PID=""

# ---- 5. the connection suite on Redis containers ---------------------------------------------
if [[ "${TEST_COMPOSE_SKIP_CONTAINER_SUITE:-}" != 1 ]]; then
  say "test/shared/tls-connections.test.ts with TASKLINE_TEST_REDIS=container ($REDIS_IMAGE)"
  # The reaper (testcontainers/ryuk) cannot be pulled where no registry answers; the harness
  # removes its containers itself, and the trap above removes any left.
  # The containers' ports are published on the host: reach them on loopback (testcontainers may
  # otherwise pick the bridge gateway, which the suite's certificates do not name).
  TASKLINE_TEST_REDIS=container TASKLINE_TEST_REDIS_IMAGE=$REDIS_IMAGE TESTCONTAINERS_RYUK_DISABLED=true \
    TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1 \
    npx mocha test/shared/tls-connections.test.ts || rc=1
fi
exit "$rc"
