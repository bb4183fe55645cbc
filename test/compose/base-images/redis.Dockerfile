# redis-server (built with TLS) from Debian trixie's own packages, standing in for redis:7 where
# no image registry can be reached. Made by test/compose/base-images.sh, never used by users.
# The same shape as the official image where compose and the test harness rely on it:
# user redis = 999:999, /data its working directory, redis-server and redis-cli on PATH.
ARG DEBIAN_IMAGE
FROM ${DEBIAN_IMAGE}
RUN groupadd --system --gid 999 redis \
 && useradd --system --uid 999 --gid redis --home-dir /data --no-create-home redis \
 && apt-get update \
 && apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && mkdir -p /data && chown redis:redis /data \
 && redis-server --version
WORKDIR /data
VOLUME /data
EXPOSE 6379
CMD ["redis-server"]
