# dcache-transfer-probe container image.
#
#   docker build -t dcache-transfer-probe .
#   docker run --rm -e DCACHE_PROBE_DB_URL=... -e DCACHE_PROBE_COLLECTOR_URL=... \
#              -e DCACHE_PROBE_SITE_NAME=... dcache-transfer-probe            # = dcache-probe run
#   docker run --rm -e DCACHE_PROBE_DB_URL=... dcache-transfer-probe migrate --grant-to dcache_probe
#
# The entrypoint is the dcache-probe command, so any command works as the container's
# arguments (run, poll --once, migrate, status, uninstall, simulate). See docs/DEPLOYING.md.

# --- build: compile TypeScript (needs the dev dependencies, and the optional embedded-postgres
#     for its types) ---------------------------------------------------------------------------
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build

# --- runtime: production dependencies and the compiled code only ------------------------------
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# embedded-postgres is optional and only used by `dcache-probe demo`, which this image does not
# need (the compose demo uses a real PostgreSQL container).
RUN npm ci --omit=dev --omit=optional --no-audit --no-fund && npm cache clean --force
# sql/ must sit beside dist/: the migrations are read from /app/sql at run time.
COPY sql ./sql
COPY --from=build /app/dist/src ./dist/src
# `dcache-probe` on the PATH, for `docker compose exec probe dcache-probe status`.
RUN chmod 0755 /app/dist/src/cli/bin.js && ln -s /app/dist/src/cli/bin.js /usr/local/bin/dcache-probe

# The files above belong to root; the probe runs as the unprivileged "node" user (uid 1000)
# of the base image and writes nothing to disk (logs go to stderr).
USER node

# The metrics/health server listens on all interfaces inside the container (the default,
# 127.0.0.1, would be unreachable from outside it). Publish the port deliberately. On 0.0.0.0 the
# dashboard and /api/ need credentials, or `run` exits 2 naming the settings: mount a users file
# (dcache-probe hash-password) or a token file, e.g. as a secret, and point
# DCACHE_PROBE_HTTP_USERS_FILE or DCACHE_PROBE_HTTP_TOKEN_FILE at it (docs/DEPLOYING.md). No
# credentials are baked into the image.
ENV DCACHE_PROBE_METRICS_HOST=0.0.0.0
EXPOSE 9464

# A 4 MB young generation (Node's default is 16): peak RSS about 35 MB lower in a catch-up, at no
# measurable CPU cost (docs/PERFORMANCE.md, bench/experiments/heap-flags.ts).
ENV NODE_OPTIONS=--max-semi-space-size=4

# /healthz answers 200 while the process serves requests. There is no curl in the slim image:
# node's built-in fetch does it. It follows DCACHE_PROBE_METRICS_PORT when that is set (keep the
# metrics server on, port > 0, in a container; a port set only in a config file is not seen).
# /healthz needs no credentials unless DCACHE_PROBE_HTTP_OPEN_PATHS closes it; then the check
# sends the token of DCACHE_PROBE_HTTP_TOKEN_FILE.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "const f=process.env.DCACHE_PROBE_HTTP_TOKEN_FILE,h={};if(f)h.authorization='Bearer '+require('fs').readFileSync(f,'utf8').trim();fetch('http://127.0.0.1:'+(process.env.DCACHE_PROBE_METRICS_PORT||9464)+'/healthz',{headers:h}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

# node is PID 1: the probe handles SIGTERM itself (stop claiming, finish the bundle in flight
# within --stop-deadline, default 10 s). Give `docker stop` more than that (-t 30).
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "/app/dist/src/cli/bin.js"]
CMD ["run"]
