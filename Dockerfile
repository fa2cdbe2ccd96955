# fraudflow image: `fraudflow run` as a non-root user, configured by FRAUDFLOW_* variables.
# Build:   docker build -t fraudflow:0.1.0 .
# The entrypoint (deploy/entrypoint.sh) derives the Bytewax process id and cluster
# addresses from the StatefulSet pod name; see docs/deploy.md.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# dependencies first (pinned, regenerated with `python deploy/lock.py > requirements.lock`)
# so that code changes do not rebuild this layer
COPY requirements.lock .
RUN pip install --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY fraudflow ./fraudflow
RUN pip install --no-deps /src && python -m compileall -q /opt/venv/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="fraudflow" \
      org.opencontainers.image.description="Real-time fraud detection on Bytewax" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FRAUDFLOW_METRICS_PORT=9100 \
    FRAUDFLOW_METRICS_HOST=0.0.0.0
# LightGBM (the trained model, docs/training.md) needs the OpenMP runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 fraudflow \
    && useradd --system --uid 10001 --gid fraudflow --home-dir /app --shell /usr/sbin/nologin fraudflow \
    && install -d -o 10001 -g 10001 /var/lib/fraudflow/recovery
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY --chmod=0755 deploy/entrypoint.sh /app/deploy/entrypoint.sh
USER 10001:10001
# 2101: Bytewax cluster traffic between processes, 9100: Prometheus /metrics
EXPOSE 2101 9100
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/metrics' % os.environ.get('FRAUDFLOW_METRICS_PORT', '9100'), timeout=4).read()"]
ENTRYPOINT ["/app/deploy/entrypoint.sh"]
