# The assistants-grpc service. Build from the repository root:
#
#   docker build -t assistants-grpc .
#   docker run -p 50051:50051 -v assistants-data:/data assistants-grpc
#
# The image listens on 0.0.0.0:50051 and keeps its SQLite file in the /data volume; set
# ASSISTANTS_DATABASE_URL=postgresql://... to use PostgreSQL instead. Beyond loopback the service
# refuses to start without an API key: create one first with
#   docker run --rm -v assistants-data:/data assistants-grpc keys create --project PROJECT
# or set ASSISTANTS_ALLOW_UNAUTHENTICATED=true on a private network. Every other setting is an
# ASSISTANTS_* environment variable (see the README) or a flag after `serve`.

# --- build: install the service and its generated client into a virtual environment --------
FROM python:3.11-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /src
RUN python -m venv /opt/venv

# The generated client first: it changes less often than the service, so its layer is reused.
COPY clients/python/ clients/python/
RUN /opt/venv/bin/pip install --no-cache-dir ./clients/python

COPY pyproject.toml README.md ./
COPY service/ service/
RUN /opt/venv/bin/pip install --no-cache-dir .

# --- runtime: the virtual environment alone, run by an unprivileged user --------------------
FROM python:3.11-slim-bookworm AS runtime

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    ASSISTANTS_HOST=0.0.0.0 \
    ASSISTANTS_PORT=50051 \
    ASSISTANTS_DATABASE_URL=sqlite:////data/assistants.db

RUN groupadd --system --gid 10001 assistants \
    && useradd --system --uid 10001 --gid assistants --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin assistants \
    && mkdir /data \
    && chown assistants:assistants /data

COPY --from=build /opt/venv /opt/venv

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 50051

# Healthy while the gRPC health service says SERVING; during a drain (SIGTERM) it says
# NOT_SERVING. The probe speaks plaintext on ASSISTANTS_PORT: with TLS switched on, replace it.
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2, health_pb2_grpc; channel = grpc.insecure_channel('127.0.0.1:' + os.environ.get('ASSISTANTS_PORT', '50051')); reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3); sys.exit(0 if reply.status == health_pb2.HealthCheckResponse.SERVING else 1)"]

# SIGTERM drains in-flight calls for ASSISTANTS_GRACE_PERIOD_SECONDS (10 by default): give
# `docker stop` a longer timeout than that.
STOPSIGNAL SIGTERM
ENTRYPOINT ["assistants-grpc"]
CMD ["serve"]
