#!/usr/bin/env bash
# Picks the base images the compose test runs on, making them from Debian packages when no image
# registry answers. Prints two lines for the caller to eval:
#   NODE_IMAGE=<image for taskline's Dockerfile>
#   REDIS_IMAGE=<image for the Redis servers>
# The official node:20-slim / redis:7 are used when present or pullable (a short timeout each);
# otherwise taskline-local/* images, made once and kept (tagged by a hash of their recipe, so a
# changed recipe makes a new image and an unchanged one is never rebuilt):
#   debian  debootstrap --variant=minbase trixie, docker import
#   node    + nodejs + npm (Node 20.19 in trixie) + user node 1000:1000 + the host's CA bundle
#   redis   + redis-server (TLS) + user redis 999:999
# Everything else goes to stderr. Needs a running Docker engine and root (debootstrap).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=${TASKLINE_DEBIAN_SUITE:-trixie}
MIRROR=${TASKLINE_DEBIAN_MIRROR:-http://deb.debian.org/debian}
PULL_TIMEOUT=${TASKLINE_PULL_TIMEOUT:-20}
OFFICIAL_NODE=${TASKLINE_OFFICIAL_NODE_IMAGE:-node:20-slim}
OFFICIAL_REDIS=${TASKLINE_OFFICIAL_REDIS_IMAGE:-redis:7}

say() { echo "base-images: $*" >&2; }
die() { say "error: $*"; exit 1; }

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# The official image when it is here or can be pulled within PULL_TIMEOUT seconds.
official() {
  local image=$1
  have_image "$image" && return 0
  if timeout "$PULL_TIMEOUT" docker pull -q "$image" >/dev/null 2>&1; then return 0; fi
  say "cannot pull $image (no registry reachable within ${PULL_TIMEOUT}s); using a Debian-made image"
  return 1
}

# The contents only (sha256sum of the files would name their paths: another checkout, another tag).
recipe_tag() { cat "$@" | sha256sum | cut -c1-12; }

WORK=""
cleanup() { if [[ -n "$WORK" ]]; then rm -rf "$WORK"; fi; }
trap cleanup EXIT

# Sets DEBIAN_IMAGE (functions set globals, not $(...) output, so the EXIT trap sees WORK).
debian_image() {
  local image="taskline-local/debian:$SUITE-$(printf '%s' "$SUITE $MIRROR minbase" | sha256sum | cut -c1-12)"
  DEBIAN_IMAGE=$image
  if have_image "$image"; then return; fi
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap is missing (apt-get install debootstrap)"
  [[ -e "/usr/share/debootstrap/scripts/$SUITE" ]] || die "this debootstrap does not know '$SUITE'; upgrade it"
  WORK=$(mktemp -d /var/tmp/taskline-rootfs.XXXXXX)
  local started=$SECONDS
  say "debootstrap --variant=minbase $SUITE (once; cached as $image)"
  debootstrap --variant=minbase "$SUITE" "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; die "debootstrap of $SUITE failed (log above)"; }
  # No init runs in a container: package scripts must not try to start services.
  printf '#!/bin/sh\nexit 101\n' >"$WORK/rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$WORK/rootfs/usr/sbin/policy-rc.d"
  rm -rf "$WORK/rootfs/var/lib/apt/lists/"* "$WORK/rootfs/var/cache/apt/archives/"*.deb
  tar -C "$WORK/rootfs" --numeric-owner -c . \
    | docker import --change 'CMD ["bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        - "$image" >/dev/null
  rm -rf "$WORK"; WORK=""
  say "made $image in $((SECONDS - started)) s"
}

# derived NAME DOCKERFILE: sets DERIVED to an image FROM the Debian base, built with host networking.
derived() {
  local name=$1 dockerfile=$2 image started
  debian_image
  image="taskline-local/$name:$SUITE-$(recipe_tag "$dockerfile" <(echo "$DEBIAN_IMAGE"))"
  DERIVED=$image
  if have_image "$image"; then return; fi
  WORK=$(mktemp -d /var/tmp/taskline-image.XXXXXX)
  cp "$dockerfile" "$WORK/Dockerfile"
  cp /etc/ssl/certs/ca-certificates.crt "$WORK/" 2>/dev/null \
    || die "the host has no /etc/ssl/certs/ca-certificates.crt to trust the package registries with"
  started=$SECONDS
  say "building $image from $DEBIAN_IMAGE (once)"
  docker build -q --network host --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" -t "$image" "$WORK" >"$WORK/build.log" 2>&1 \
    || { tail -30 "$WORK/build.log" >&2; die "building $image failed (log above)"; }
  rm -rf "$WORK"; WORK=""
  say "made $image in $((SECONDS - started)) s"
  # Older recipes' images are of no further use.
  docker images --format '{{.Repository}}:{{.Tag}}' "taskline-local/$name" | grep -vxF "$image" | xargs -r docker rmi >/dev/null 2>&1 || true
}

docker info >/dev/null 2>&1 || die "no Docker engine answers"

if official "$OFFICIAL_NODE"; then node_image=$OFFICIAL_NODE; else derived node "$HERE/base-images/node.Dockerfile"; node_image=$DERIVED; fi
if official "$OFFICIAL_REDIS"; then redis_image=$OFFICIAL_REDIS; else derived redis "$HERE/base-images/redis.Dockerfile"; redis_image=$DERIVED; fi
echo "NODE_IMAGE=$node_image"
echo "REDIS_IMAGE=$redis_image"
