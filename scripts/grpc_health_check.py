#!/usr/bin/env python3
"""Exits 0 when a sessiond server's gRPC health service reports SERVING.

The container image's HEALTHCHECK runs this with the image's own Python (the
``grpcio-health-checking`` package is a sessiond dependency). Kubernetes does
not use it: the Helm chart uses native ``grpc:`` probes.

    grpc_health_check.py [--address HOST:PORT] [--service NAME] [--timeout SECONDS]

The address defaults to 127.0.0.1 and the port of ``SESSIOND_HEALTH_LISTEN``
(the plaintext health-only listener, used when TLS is on) or else of
``SESSIOND_LISTEN`` (the server's own listen setting; 50051 when unset). The
service defaults to ``""``: the whole server, which stays SERVING through a storage outage; pass
``--service sessiond.v1.SessionService`` for readiness (follows the store).
Exit status: 0 SERVING, 1 anything else (not serving, unreachable, timeout).
"""

from __future__ import annotations

import argparse
import os
import sys


def default_address() -> str:
    """127.0.0.1 and the port of the health listener, else of ``SESSIOND_LISTEN``."""
    listen = (
        os.environ.get("SESSIOND_HEALTH_LISTEN", "")
        or os.environ.get("SESSIOND_LISTEN", "")
        or "0.0.0.0:50051"
    )
    _, _, port = listen.rpartition(":")
    return f"127.0.0.1:{port}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default=default_address(), help="host:port to check")
    parser.add_argument("--service", default="", help='service name ("" is the whole server)')
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds")
    args = parser.parse_args(argv)

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(args.address) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
    except grpc.RpcError as exc:
        print(f"unhealthy: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"unhealthy: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
