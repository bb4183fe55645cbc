# Node.js 20 from Debian trixie's own packages, standing in for node:20-slim where no image
# registry can be reached. Made by test/compose/base-images.sh, never used by users.
# The same shape as node:20-slim where taskline relies on it: node and npm on PATH, user
# node = 1000:1000.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
RUN groupadd --gid 1000 node \
 && useradd --uid 1000 --gid node --shell /bin/bash --create-home node \
 && apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && node --version
# The host's trust store, copied over the one the ca-certificates package just wrote: the package
# registries' TLS chains to a CA this machine trusts and a bare container does not. Only these
# local base images get it, never taskline's Dockerfile.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
CMD ["node"]
