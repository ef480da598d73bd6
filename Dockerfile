# syntax=docker/dockerfile:1
# appflow as a container: the daemon (`appflow serve`) and the hub controller
# (`appflow controller`), with helm, kustomize and sops.
# Stage 1 builds them from their Go modules with the same script and pinned
# versions as `make tools`; stage 2 is a slim Python runtime.
#
# The base images are build arguments. The defaults are the public images;
# `make image` (tools/build-image.sh) passes a Debian bookworm base built with
# debootstrap when those cannot be pulled. Any base works that has bash (tools
# stage) or python3 with the venv module and apt (runtime stage).
ARG GO_IMAGE=golang:1.26-bookworm
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${GO_IMAGE} AS tools
WORKDIR /src
COPY tools/ tools/
ENV APPFLOW_TOOLS_DIR=/opt/appflow-tools
RUN bash tools/build-tools.sh helm kustomize sops

FROM ${PYTHON_IMAGE} AS runtime
# git for git sources' SSH known_hosts tooling; ca-certificates for HTTPS sources.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.* ca-certificates=2023* \
    && rm -rf /var/lib/apt/lists/*
COPY --from=tools /opt/appflow-tools/bin/helm /opt/appflow-tools/bin/kustomize /opt/appflow-tools/bin/sops /usr/local/bin/
WORKDIR /app
COPY pyproject.toml README.md ./
COPY appflow/ appflow/
# A virtual environment: Debian's own python3 refuses system-wide pip installs
# (PEP 668), and it keeps appflow's dependencies apart from the base's.
ENV PATH=/opt/appflow/bin:$PATH
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -m venv /opt/appflow \
    && /opt/appflow/bin/pip install . \
    && useradd --create-home --uid 10001 appflow
USER 10001
ENV APPFLOW_HOME=/home/appflow/data
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"]
ENTRYPOINT ["appflow"]
CMD ["serve", "--listen", "0.0.0.0:8080"]
