# One image for the three taskline processes (taskline-producer, taskline-worker,
# taskline-scheduler); compose or Kubernetes picks the command. Build from the repository root:
#   docker build -t taskline:latest .
#   docker build --build-arg NODE_IMAGE=my-registry/node:20-slim -t taskline:latest .
# Builds with the legacy builder and with BuildKit alike (no `# syntax=` line, no RUN --mount).
# NODE_IMAGE must provide node and npm and a user `node` (uid 1000), as node:20-slim does.
ARG NODE_IMAGE=node:20-slim

# --- build: install everything, compile the workspace, then keep production deps only ---
FROM ${NODE_IMAGE} AS build
ENV PNPM_HOME=/pnpm CI=true
RUN npm i -g pnpm@12 && pnpm config set store-dir /pnpm/store
WORKDIR /src

# Manifests first so the dependency layer is cached until a package.json or the lockfile changes.
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc tsconfig.json tsconfig.base.json ./
COPY shared/package.json shared/
COPY producer/package.json producer/
COPY worker/package.json worker/
COPY scheduler/package.json scheduler/
RUN pnpm install --frozen-lockfile

COPY shared shared
COPY producer producer
COPY worker worker
COPY scheduler scheduler
RUN pnpm run build

# Drop dev dependencies (typescript, mocha, ...) from every node_modules, from the store above.
RUN rm -rf node_modules shared/node_modules producer/node_modules worker/node_modules scheduler/node_modules \
 && pnpm install --frozen-lockfile --prod --offline

# A pruned copy: manifests, compiled output, bins and production node_modules; no sources, no tests,
# no type declarations, source maps or READMEs. /links: the bins for PATH (`taskline-worker start ...`).
RUN mkdir -p /out \
 && cp -a package.json node_modules /out/ \
 && for pkg in shared producer worker scheduler; do \
      mkdir -p /out/$pkg && cp -a $pkg/package.json $pkg/dist $pkg/node_modules /out/$pkg/ \
      && if [ -d $pkg/bin ]; then cp -a $pkg/bin /out/$pkg/; fi \
      && if [ -d $pkg/examples ]; then cp -a $pkg/examples /out/$pkg/; fi; \
    done \
 && find /out -name '*.tsbuildinfo' -delete \
 && find /out/node_modules/.pnpm -type f \( -name '*.md' -o -name '*.map' -o -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' \) -delete \
 && mkdir -p /links \
 && for bin in /out/*/bin/*.js; do ln -s "/app/${bin#/out/}" "/links/$(basename "$bin" .js)"; done

# --- runtime: node only, non-root ---
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production TASKLINE_ENV=production LOG_FORMAT=json
WORKDIR /app
COPY --from=build --chown=root:root /links/ /usr/local/bin/
COPY --from=build --chown=root:root /out/ /app/
COPY --chown=root:root docker/healthcheck.mjs /app/healthcheck.mjs
USER node
# No EXPOSE of Redis; ours: producer HTTPS API 8000, worker/scheduler/loader metrics 9100 in compose.
EXPOSE 8000 9100
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 CMD ["node", "/app/healthcheck.mjs"]
CMD ["taskline-worker", "--help"]
