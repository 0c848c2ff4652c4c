# The shoal images, from one file:
#
#   docker build -t shoal:dev .                                   # runtime (workers), default
#   docker build --target operator -t shoal-operator:dev .        # the Kubernetes operator
#
# Your worker image is FROM the runtime image plus your tasks: see examples/Dockerfile.
# It needs BuildKit (`RUN --mount`): docker build's builder since Docker 23, DOCKER_BUILDKIT=1
# before. There is no `# syntax=` line on purpose: it would fetch the Dockerfile frontend from
# a registry, and the builder's own frontend reads everything here.
#
# Stages: `builder` builds every wheel (shoal's own and its dependencies') and installs them
# into venvs under /opt/shoal; the final stages copy only a venv onto the same slim Python, so
# pip caches, build tools and sources never reach an image that runs.
#
# The base is pinned to an exact tag (Python and Debian release). To pin it by digest as well,
# pass the digest of the day: `--build-arg PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:…`
# (`docker buildx imagetools inspect python:3.11.14-slim-bookworm` prints it). Any base with
# `python3` (with venv and pip) on PATH works: the official image has it in /usr/local/bin,
# Debian's own python3 packages in /usr/bin. Both stages use the same image, so the venvs'
# interpreter exists in both, wherever the base keeps it.
#
# Behind a TLS-intercepting proxy, give pip its CA bundle as a build secret (BuildKit):
#   docker build --secret id=ca-certificates,src=/etc/ssl/certs/ca-certificates.crt ...
# It is mounted for the one RUN that downloads and never written into a layer.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# -- builder ---------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY runtime/ runtime/
COPY operator/ operator/

# Every dependency (pydantic-core, asyncpg, hiredis...) ships manylinux wheels for amd64 and
# arm64, so no compiler is installed even here; on a platform without them, install
# build-essential in this stage only: the final stages never see it.
RUN --mount=type=secret,id=ca-certificates \
    if [ -f /run/secrets/ca-certificates ]; then export PIP_CERT=/run/secrets/ca-certificates; fi \
 && python3 -m pip wheel --wheel-dir /wheels ".[postgres,redis,board,operator]"

# One venv per image, each with only its extras; --no-index: exactly the wheels built above.
# The runtime image also serves `shoal board` (the chart's board Deployment runs it).
RUN python3 -m venv /opt/shoal \
 && /opt/shoal/bin/pip install --no-index --find-links /wheels "shoal[postgres,redis,board]" \
 && python3 -m venv /opt/shoal-operator \
 && /opt/shoal-operator/bin/pip install --no-index --find-links /wheels "shoal[operator]"

# -- base: what both images share ------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base

ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="shoal" \
      org.opencontainers.image.description="Background jobs for Python, laptop to Kubernetes." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# A numeric, unprivileged user: Kubernetes can only verify `runAsNonRoot` against a numeric
# USER. /app (the working directory, on sys.path for `shoal worker module:app`) is its own,
# so `docker run ... shoal demo` can write its SQLite file; pods run with a read-only root
# filesystem and a scratch emptyDir on /tmp instead.
RUN groupadd --system --gid 10001 shoal \
 && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
    --shell /usr/sbin/nologin shoal \
 && install -d -o 10001 -g 10001 /app

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /app

# -- operator: `--target operator` ------------------------------------------------------------
FROM base AS operator

LABEL org.opencontainers.image.title="shoal-operator" \
      org.opencontainers.image.description="The shoal Kubernetes operator: Queue and WorkerPool resources, depth-driven scaling."

COPY --from=builder /opt/shoal-operator /opt/shoal-operator
ENV PATH=/opt/shoal-operator/bin:$PATH
USER 10001:10001
# 8080: Prometheus metrics ($SHOAL_OPERATOR_METRICS_PORT); 8081: kopf's liveness endpoint.
EXPOSE 8080 8081
ENTRYPOINT ["shoal-operator"]
CMD ["--liveness", "http://0.0.0.0:8081/healthz"]

# -- runtime: the default target, the base of every worker image ------------------------------
FROM base AS runtime

COPY --from=builder /opt/shoal /opt/shoal
ENV PATH=/opt/shoal/bin:$PATH
USER 10001:10001
# 9090: the workers' Prometheus metrics (`--metrics-port 9090`, as the operator's pods run).
EXPOSE 9090

# SIGTERM, PID 1 and the drain. The exec form makes `shoal` itself PID 1: no shell in
# between to swallow the signal. PID 1 gets no default signal actions from the kernel, only
# the handlers it installs, and the worker installs its own for SIGTERM and SIGINT: it stops
# claiming, gives running tasks --shutdown-timeout seconds (default 30), releases what is
# left without charging an attempt, deregisters and exits 0. So no init process is needed
# for the drain (the operator's pods set `command: ["shoal"]`, which replaces ENTRYPOINT
# anyway). The one thing PID 1 does that the worker does not is reap orphaned grandchildren:
# if your tasks start processes that outlive their parents, run with `docker run --init`.
#
# Whoever stops the container must wait longer than the drain: Kubernetes sends SIGKILL
# terminationGracePeriodSeconds after SIGTERM, and the operator sets that to the pool's
# shutdownTimeoutSeconds + 15; with plain Docker, `docker stop --time 45` (its default is
# 10 s). A SIGKILL mid-task loses nothing (the lease expires and another worker runs the
# task again), but that task starts over.
STOPSIGNAL SIGTERM
ENTRYPOINT ["shoal"]
CMD ["--help"]
