# syntax=docker/dockerfile:1
#
# The sessiond server image.
#
#   docker build -t sessiond:0.1.0 .            (or: buildah build / podman build)
#   docker run -e SESSIOND_ALLOW_INSECURE=true -p 127.0.0.1:50051:50051 -p 9464:9464 sessiond:0.1.0
#   (plaintext on 0.0.0.0 is refused unless allowed; see docs/security.md for TLS)
#
# Without flags it serves the embedded local-directory store in /var/lib/sessiond;
# point it at a bucket with SESSIOND_STORE=s3://bucket/prefix (every setting is a
# SESSIOND_* variable or a `serve` flag: `docker run sessiond:0.1.0 serve --help`).
# Kubernetes: helm/sessiond (docs/kubernetes.md).
#
# tests/image/test_image_recipe.py replays this recipe without a container
# engine: it runs the builder stage's RUN commands with the ENV paths moved into a
# temporary directory, then the final stage's ENTRYPOINT + CMD and HEALTHCHECK.
# So: builder RUN commands name paths only through ENV variables ($WHEELS, $VENV),
# and final-stage paths are the builder's ENV values.

# The same Python image in both stages: the venv built in the first one links
# to that image's interpreter.
ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: the wheel, and a venv with it and its dependencies -------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    WHEELS=/wheels \
    VENV=/opt/sessiond
WORKDIR /src
# Only what the wheel is built from (the generated protobuf code is committed
# in client/sessiond/v1, so no protoc is needed).
COPY pyproject.toml setup.py README.md ./
COPY client/sessiond/ client/sessiond/
COPY server/sessiond/ server/sessiond/
RUN python -m pip wheel --no-deps --wheel-dir "$WHEELS" .
# The venv gets no pip of its own: the builder's pip installs into it.
RUN python -m venv --without-pip "$VENV" \
    && python -m pip --python "$VENV/bin/python" install "$WHEELS"/sessiond-*.whl

# ---- final: interpreter + venv, non-root, no build tools ---------------------
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="sessiond" \
      org.opencontainers.image.description="Session service for AI agent runtimes (gRPC, sessions on S3)" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH="/opt/sessiond/bin:$PATH" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/home/sessiond \
    SESSIOND_LISTEN=0.0.0.0:50051 \
    SESSIOND_METRICS_LISTEN=0.0.0.0:9464 \
    SESSIOND_STORE=/var/lib/sessiond
# uid/gid 10001: the Helm chart's runAsUser / runAsGroup / fsGroup.
RUN groupadd --system --gid 10001 sessiond \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/sessiond --create-home \
       --shell /usr/sbin/nologin sessiond \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/sessiond
COPY --from=builder /opt/sessiond /opt/sessiond
COPY scripts/grpc_health_check.py /usr/local/lib/sessiond/grpc_health_check.py
USER 10001:10001
WORKDIR /home/sessiond
# gRPC, Prometheus metrics (/metrics)
EXPOSE 50051 9464
# The whole server's gRPC health ("" stays SERVING through a storage outage).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/opt/sessiond/bin/python", "/usr/local/lib/sessiond/grpc_health_check.py"]
ENTRYPOINT ["sessiond"]
CMD ["serve"]
