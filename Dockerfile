# syntax=docker/dockerfile:1
# One image for the three taskline processes (taskline-producer, taskline-worker,
# taskline-scheduler); compose picks the command. Build from the repository root:
#   docker build -t taskline:latest .

# --- build: install everything, compile the workspace, then keep production deps only ---
FROM node:20-slim AS build
ENV PNPM_HOME=/pnpm CI=true
RUN npm i -g pnpm@12
WORKDIR /src

# Manifests first so the dependency layer is cached until a package.json or the lockfile changes.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc tsconfig.json tsconfig.base.json ./
COPY shared/package.json shared/
COPY producer/package.json producer/
COPY worker/package.json worker/
COPY scheduler/package.json scheduler/
RUN --mount=type=cache,id=pnpm-store,target=/pnpm/store \
    pnpm config set store-dir /pnpm/store && pnpm install --frozen-lockfile

COPY shared shared
COPY producer producer
COPY worker worker
COPY scheduler scheduler
RUN pnpm run build

# Drop dev dependencies (typescript, mocha, ...) from every node_modules, reusing the store.
RUN --mount=type=cache,id=pnpm-store,target=/pnpm/store \
    rm -rf node_modules shared/node_modules producer/node_modules worker/node_modules scheduler/node_modules \
 && pnpm install --frozen-lockfile --prod --offline

# A pruned copy: manifests, compiled output, bins and production node_modules; no sources, no tests.
RUN mkdir -p /out \
 && cp -a package.json node_modules /out/ \
 && for pkg in shared producer worker scheduler; do \
      mkdir -p /out/$pkg && cp -a $pkg/package.json $pkg/dist $pkg/node_modules /out/$pkg/ \
      && if [ -d $pkg/bin ]; then cp -a $pkg/bin /out/$pkg/; fi \
      && if [ -d $pkg/examples ]; then cp -a $pkg/examples /out/$pkg/; fi; \
    done \
 && find /out -name '*.tsbuildinfo' -delete

# --- runtime: node only, non-root ---
FROM node:20-slim AS runtime
ENV NODE_ENV=production TASKLINE_ENV=production LOG_FORMAT=json
WORKDIR /app
COPY --from=build --chown=root:root /out/ /app/
# The bins on PATH, so compose commands read `taskline-worker start ...`.
RUN for bin in /app/*/bin/*.js; do ln -s "$bin" "/usr/local/bin/$(basename "$bin" .js)"; done
USER node
# No EXPOSE of Redis; ours: producer HTTP API 8000, worker/scheduler metrics 9100.
EXPOSE 8000 9100
STOPSIGNAL SIGTERM
CMD ["taskline-worker", "--help"]
