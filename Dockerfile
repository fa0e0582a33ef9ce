# syntax=docker/dockerfile:1
#
# pilot-agent-ts: a drop-in replacement for the istio/proxyv2 image (the istio-proxy sidecar and
# the istio-init container). Envoy, with Istio's extensions, comes from the official proxyv2
# image of the pinned Istio release; this image replaces its Go pilot-agent with ours.
#
#   docker build -t ghcr.io/your-org/pilot-agent-ts:0.1.0 .
#
# ISTIO_VERSION must stay equal to ISTIO_COMPAT_VERSION in src/version.ts (the agent reports it
# to istiod as ISTIO_VERSION; test/package checks that they match). For reproducible builds,
# pin both base images by digest as well (`…:1.28.0@sha256:…`).
ARG NODE_VERSION=24
ARG ISTIO_VERSION=1.28.0

# --- Node.js (Debian bookworm, glibc) --------------------------------------------------------
FROM docker.io/library/node:${NODE_VERSION}-bookworm-slim AS node

# --- build: full install (no install scripts: tsc needs none), compile TypeScript into dist/ ---
FROM node AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# --- production dependencies only (no dev dependencies, no install scripts) -------------------
FROM node AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# --- runtime: istio/proxyv2 (Envoy at /usr/local/bin/envoy, user istio-proxy 1337) -----------
FROM docker.io/istio/proxyv2:${ISTIO_VERSION} AS runtime

# The Node.js runtime only (no npm). The official Linux binary needs glibc >= 2.28 and
# libstdc++ (GLIBCXX_3.4.25 or later); proxyv2's Ubuntu base provides both.
COPY --from=node /usr/local/bin/node /usr/local/bin/node

# The package, laid out as npm would install it: the agent finds its package root (and the
# built-in bootstrap template under config/) from the nearest package.json above its modules.
COPY package.json /usr/local/lib/pilot-agent/package.json
COPY bin/pilot-agent.js /usr/local/lib/pilot-agent/bin/pilot-agent.js
COPY config/envoy_bootstrap.json /usr/local/lib/pilot-agent/config/envoy_bootstrap.json
COPY --from=build /app/dist/src /usr/local/lib/pilot-agent/dist/src
COPY --from=prod-deps /app/node_modules /usr/local/lib/pilot-agent/node_modules

# Replace Istio's Go pilot-agent by ours (a relative symlink, as `npm install -g` makes; the
# launcher runs with `node` from PATH). The build fails unless the image has user istio-proxy
# with uid/gid 1337 (istio-iptables' default -u, the pod's runAsUser) and the agent starts.
RUN chmod 0755 /usr/local/lib/pilot-agent/bin/pilot-agent.js \
 && ln -sf ../lib/pilot-agent/bin/pilot-agent.js /usr/local/bin/pilot-agent \
 && grep -Eq '^istio-proxy:[^:]*:1337:1337:' /etc/passwd \
 && test -x /usr/local/bin/envoy \
 && node --version \
 && pilot-agent version

ENV NODE_ENV=production

# Relative paths of the agent (./etc/istio/proxy, ./etc/istio/pod, ./var/run/secrets/…) resolve
# against /. With readOnlyRootFilesystem the agent writes only under the mounted emptyDirs:
# /etc/istio/proxy (bootstrap, SDS and XDS sockets) and, if mounted,
# /var/run/secrets/workload-spiffe-uds (SDS socket).
WORKDIR /
ENTRYPOINT ["/usr/local/bin/pilot-agent"]
