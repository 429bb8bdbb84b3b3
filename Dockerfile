# syntax=docker/dockerfile:1
# Seseragi images. Two targets share one runtime stage:
#   docker build --target cpu  -t seseragi:cpu  .   (default: the last stage)
#   docker build --target cuda -t seseragi:cuda .   (run with --gpus all)
# The default model is converted at build time into /var/cache/seseragi, owned by the runtime
# user; mount a volume there (or set SESERAGI_MODEL to a mounted directory) to supply another.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# ---- base: Python, no caches, no bytecode written at run time ---------------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# ---- sources: the three distributions (contract, client, service) and the runtime lock ----------
FROM base AS sources
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/service.lock ./requirements/
COPY contract ./contract
COPY service ./service
COPY clients/python ./clients/python

# Each venv: every dependency from the hash lock (--require-hashes), then torch pinned by version
# and build from the PyTorch index (the lock leaves it out: see the README's setup notes), then the
# three distributions without dependencies or a build-time download, then `pip check`.
# ---- venv-cpu: the CPU build of torch, whose own dependencies are all in the lock -------------
FROM sources AS venv-cpu
ARG TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
RUN python -m venv /opt/venv \
 && pip install --require-hashes --no-deps -r requirements/service.lock \
 && pip install --no-deps --index-url "${TORCH_CPU_INDEX}" torch==2.13.0+cpu \
 && pip install --no-deps --no-build-isolation /src/contract /src/clients/python /src \
 && pip check

# ---- venv-cuda: a CUDA build of torch with its CUDA libraries; bitsandbytes carries its kernels --
FROM sources AS venv-cuda
ARG TORCH_CUDA_INDEX=https://download.pytorch.org/whl/cu128
RUN python -m venv /opt/venv \
 && pip install --require-hashes --no-deps -r requirements/service.lock \
 && pip install --index-url "${TORCH_CUDA_INDEX}" torch==2.13.0+cu128 \
 && pip install --no-deps --no-build-isolation /src/contract /src/clients/python /src \
 && pip check

# ---- model: convert the default model once (safetensors, device independent) -----------------
FROM venv-cpu AS model
ENV SESERAGI_CACHE_DIR=/var/cache/seseragi
RUN seseragi model pull

# ---- runtime: what both targets share ------------------------------------------------------------
FROM base AS runtime
RUN groupadd --system --gid 10001 seseragi \
 && useradd --system --uid 10001 --gid seseragi --create-home --home-dir /home/seseragi seseragi
COPY --from=model --chown=seseragi:seseragi /var/cache/seseragi /var/cache/seseragi
WORKDIR /home/seseragi
# A replica refuses to start without SESERAGI_EDGE_SECRET: without it the service could not tell
# callers apart, and one reachable without Envoy must not trust a client-named subject. (A flag,
# not a secret: DL3064 matches the word SECRET in its name.)
# hadolint ignore=DL3064
ENV SESERAGI_HOST=0.0.0.0 \
    SESERAGI_REQUIRE_EDGE_SECRET=true \
    SESERAGI_PORT=50051 \
    SESERAGI_HTTP_PORT=8000 \
    SESERAGI_CACHE_DIR=/var/cache/seseragi \
    SESERAGI_SHUTDOWN_GRACE_SECONDS=30 \
    SESERAGI_LOG_LEVEL=INFO
USER 10001:10001
EXPOSE 50051 8000
# SIGTERM reaches the server itself (exec form, no shell): it turns NOT_SERVING and drains.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
  CMD ["seseragi", "health", "--service", "seseragi.v1.GenerationService"]
ENTRYPOINT ["seseragi"]
CMD ["serve"]

# ---- cuda: NF4 weights on the GPU (needs the NVIDIA container toolkit: --gpus all) -------------
FROM runtime AS cuda
COPY --from=venv-cuda /opt/venv /opt/venv
ENV SESERAGI_DEVICE=cuda \
    SESERAGI_QUANTIZATION=nf4 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility

# ---- cpu: the default target ----------------------------------------------------------------------
FROM runtime AS cpu
# g++ builds the engine's native CPU kernels for the CPU the container runs on, once, at its first
# start (about 12 s; cached under SESERAGI_CACHE_DIR, keyed by the CPU's flags). Without it the
# engine runs PyTorch's slower kernels. Debian's current g++ of the base image's release.
USER 0:0
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends g++ \
 && rm -rf /var/lib/apt/lists/*
USER 10001:10001
COPY --from=venv-cpu /opt/venv /opt/venv
ENV SESERAGI_DEVICE=cpu
