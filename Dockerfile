# syntax=docker/dockerfile:1
#
# One image definition for every service of the monorepo.
#   docker build --build-arg APP=normalizer -t iot-platform/normalizer:dev .
# The build stage transpiles the whole repo (swc) into dist/; the runtime
# stage only carries production node_modules + dist and starts
# dist/apps/$APP/src/main.js.

ARG NODE_IMAGE=node:24-bookworm-slim

############################ build ############################
FROM ${NODE_IMAGE} AS build
WORKDIR /app
ENV CI=true \
    NX_DAEMON=false \
    NX_NO_CLOUD=true

# npm workspaces (apps/*, libs/*, tools/*) need their package.json files for
# `npm ci`, so the whole context is copied; the npm cache mount keeps
# re-installs cheap.
COPY . .
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

########################### runtime ###########################
FROM ${NODE_IMAGE} AS runtime
ARG APP
RUN test -n "$APP" || (echo "build arg APP is required (e.g. --build-arg APP=demux)" >&2; exit 1)

WORKDIR /app
# Heap sized for the pods' 256 MiB limit (see libs/testing SERVICE_NODE_OPTIONS and
# docs/performance.md): V8 otherwise lets garbage pile up to the container limit. The
# ENTRYPOINT adds --heap-growing-percent=100 (SERVICE_NODE_FLAGS; Node refuses it here): with
# this small a heap V8 would otherwise collect in full every 100 ms under load (ADR 0012).
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-old-space-size=128 --max-semi-space-size=16" \
    HTTP_PORT=3000 \
    LOG_LEVEL=info \
    APP=${APP}

COPY --from=build --chown=node:node /app/package.json ./package.json
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist

# Fail the build early if the selected app does not exist.
RUN test -f "dist/apps/${APP}/src/main.js" || (echo "dist/apps/${APP}/src/main.js not found" >&2; exit 1)

USER node
EXPOSE 3000

# No curl in the slim image: use node's global fetch.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.HTTP_PORT||3000)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"

# exec so node is PID 1's replacement and receives SIGTERM directly (drain).
ENTRYPOINT ["sh", "-c", "exec node --heap-growing-percent=100 dist/apps/$APP/src/main.js \"$@\"", "--"]
