# The worker image: `docker build -t etcd-ha-restore:0.1.0 .` on a host with a Docker engine.
# Not built in CI (its machines have none): test/unit/container.test.ts parses this file and
# checks its shape. Base images are pinned to exact versions; pin their digests when you
# push the image to your registry.

# etcdctl and etcdutl 3.5 and 3.6, built from the Go module proxy exactly as
# scripts/provision.sh builds them for the tests: our pinned modules in scripts/etcd/v*/.
FROM golang:1.26.8-bookworm AS etcd
WORKDIR /src
COPY scripts/etcd/ ./
RUN set -eu; \
    for line in v3.5 v3.6; do \
      (cd "$line" && CGO_ENABLED=0 GOWORK=off go build -mod=readonly -trimpath -buildvcs=false \
        -o "/out/$line/" ./cmd/etcdctl ./cmd/etcdutl); \
    done; \
    /out/v3.5/etcdctl version; /out/v3.6/etcdutl version

# The TypeScript compiled to dist/ (tsconfig.build.json), with every dependency.
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY workflows workflows
COPY activities activities
COPY worker worker
COPY client client
RUN npm run build

# The runtime dependencies only.
FROM node:20.20.2-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20.20.2-bookworm-slim AS runtime
# etcdctl 3.4 (Debian's etcd-client) is the worker's own: it checks snapshots in the
# repository (`etcdctl snapshot status`). 3.5 and 3.6 are beside it for the operator.
RUN apt-get update \
    && apt-get install -y --no-install-recommends etcd-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 etcd-ha-restore \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin etcd-ha-restore \
    && install -d -o 10001 -g 10001 -m 0700 /srv/etcd-backups /srv/etcd-import
COPY --from=etcd /out/v3.5/ /opt/etcd/v3.5/bin/
COPY --from=etcd /out/v3.6/ /opt/etcd/v3.6/bin/
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY --from=build /app/dist ./
# "type": "module": the compiled files are ES modules.
COPY package.json ./
ENV NODE_ENV=production
# Numeric, so Kubernetes can check runAsNonRoot (deploy/deployment.yaml runs it as 10001).
USER 10001:10001
# No health check: its only port, the optional Prometheus endpoint (WORKER_METRICS_ADDRESS),
# is served by the Temporal runtime whether or not the worker polls; the worker exits when
# it cannot go on, and the orchestrator restarts it (compose: restart; Kubernetes ignores
# HEALTHCHECK anyway).
HEALTHCHECK NONE
ENTRYPOINT ["node", "worker/main.js"]
