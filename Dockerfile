# syntax=docker/dockerfile:1
# The serving image: `flightdelay serve` with one verified model baked in, run as a non-root
# user. It holds the package and its core dependencies only (pyproject.toml [project]
# dependencies, pinned by constraints.txt): no DVC, Great Expectations or MLflow.
#
#   docker build --build-arg MODEL_DIR=outputs/release/model --build-arg MODEL_VERSION=v1.2.0 \
#     --tag flight-delay:v1.2.0 .
#   docker run --rm -p 127.0.0.1:8000:8000 [-e FLIGHTDELAY_API_TOKEN=...] flight-delay:v1.2.0
#
# MODEL_DIR must lie inside the build context and be allowed by .dockerignore (outputs/model,
# outputs/release/model). The service verifies the model directory's SHA256SUMS manifest and
# model.json at start-up and exits 1, naming the file, if anything differs. It also requires the
# model to verify against its signature
# (SIGNATURE_DIR/model.sig, what `flightdelay release` wrote) by the Sigstore identity MODEL_IDENTITY
# (the release workflow passes promote.yml's) or by a public key mounted at run time
# (-e FLIGHTDELAY_MODEL_PUBKEY=/path/in/container); without either it exits 1. Keyless
# verification fetches Sigstore's trust root (tuf-repo-cdn.sigstore.dev) into /tmp unless
# FLIGHTDELAY_SIGSTORE_TRUST_CONFIG names a trust config. Settings: FLIGHTDELAY_* (see
# `pydoc flightdelay.serving.settings`); the root filesystem may be read-only (with several
# workers, metrics go to a directory under /tmp).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml constraints.txt README.md ./
COPY src ./src
RUN /opt/venv/bin/pip install -c constraints.txt . \
    && /opt/venv/bin/pip uninstall --yes pip

# The scorer's library, compiled here once (this stage has gcc; the image does not) from the model
# baked in below and checked against the pipeline as the service does at start-up. The service
# loads it only if its recorded sha256 and its model's match (flightdelay.serving.compiled), else
# it interprets the trees with GTIL. Why: compiled, 1,000 rows score in 3.6 ms instead of GTIL's
# 15.1 ms (in process, 1 thread), and no start pays the 2-11 s compile.
FROM build AS scorer
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
ARG MODEL_DIR=outputs/model
COPY ${MODEL_DIR} /opt/model
RUN /opt/venv/bin/flightdelay compile-scorer --model-dir /opt/model --cache /opt/scorer \
    && rm -f /opt/scorer/.lock \
    && chmod -R go=rX /opt/scorer

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin flightdelay
COPY --from=build /opt/venv /opt/venv
ARG MODEL_DIR=outputs/model
# Owned by root: the service reads the model, it can never rewrite it.
COPY ${MODEL_DIR} /opt/model
# Owned by root too: compiled from that model by the scorer stage, read-only to the service.
COPY --from=scorer /opt/scorer /opt/scorer
# Its provenance sidecar (run id, commit: /version), beside the directory as flightdelay.core.model_io
# keeps it, outside what the manifest and the signature cover.
COPY ${MODEL_DIR}.provenance.json /opt/model.provenance.json
# A directory, empty only for a release overridden as unsigned (which then must be run with
# -e FLIGHTDELAY_REQUIRE_SIGNATURE=false: the override stays explicit at every step).
ARG SIGNATURE_DIR=outputs/release/signature
COPY ${SIGNATURE_DIR} /opt/signature
ARG MODEL_IDENTITY=
ARG MODEL_OIDC_ISSUER=https://token.actions.githubusercontent.com
ARG MODEL_VERSION=dev
ENV PATH=/opt/venv/bin:${PATH} \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    FLIGHTDELAY_MODEL_DIR=/opt/model \
    FLIGHTDELAY_MODEL_VERSION=${MODEL_VERSION} \
    FLIGHTDELAY_MODEL_SIGNATURE=/opt/signature/model.sig \
    FLIGHTDELAY_MODEL_IDENTITY=${MODEL_IDENTITY} \
    FLIGHTDELAY_MODEL_OIDC_ISSUER=${MODEL_OIDC_ISSUER} \
    FLIGHTDELAY_REQUIRE_SIGNATURE=true \
    FLIGHTDELAY_SCORER_CACHE=/opt/scorer \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_DATA_HOME=/tmp/.local/share \
    FLIGHTDELAY_WORKERS=1
USER 10001
WORKDIR /tmp
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=2).status != 200)"]
CMD ["flightdelay", "serve", "--host", "0.0.0.0", "--port", "8000"]
