"""The chart's TLS, mutual TLS and authentication wiring, rendered and on a real server.

The chart is rendered with TLS (client certificates required), a token file
and a JWKS, its Secret mounts pointed at directories of the test (what the
kubelet would project); the real ``sessiond serve`` runs with exactly the
rendered environment and arguments. The probes, asked as the kubelet asks
them (plaintext, the rendered port and service), see SERVING; the API
accepts an mTLS client with a token or a JWT from the JWKS, and refuses
plaintext, a client without a certificate and a call without a token.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sessiond.client.aio import AsyncClient
from sessiond.errors import Unauthenticated, Unavailable
from support.helm import render, server_container, server_deployment, server_environment
from support.processes import free_port
from support.security import KeyPair, Pki, write_jwks, write_tokens

SESSIOND = Path(sys.executable).with_name("sessiond")
TOKEN = "chart-token-of-tenant-acme-01"


def test_plaintext_and_open_access_are_explicit(newest, helm_path: Path) -> None:
    default = server_environment(newest["default-values"])
    assert default["SESSIOND_ALLOW_INSECURE"] == "true"
    assert not any(key.startswith(("SESSIOND_TLS_", "SESSIOND_AUTH_")) for key in default)
    assert "SESSIOND_HEALTH_LISTEN" not in default
    # Health behind tokens without TLS: the probes move to the health port too.
    values = {
        "store": {"bucket": "bkt"},
        "auth": {"enabled": True, "existingSecret": "tokens", "exemptHealth": False},
    }
    docs = render(values=values)
    env = server_environment(docs)
    assert env["SESSIOND_HEALTH_LISTEN"] == "0.0.0.0:8081"
    assert env["SESSIOND_AUTH_EXEMPT_HEALTH"] == "false"
    assert server_container(docs)["readinessProbe"]["grpc"]["port"] == 8081
    assert "SESSIOND_AUTH_JWT_AUDIENCE" not in env  # no JWT key: no JWT settings


def test_separate_client_ca_secret_is_mounted(helm_path: Path) -> None:
    values = {
        "store": {"bucket": "bkt"},
        "tls": {
            "enabled": True,
            "existingSecret": "server-tls",
            "clientAuth": {"enabled": True, "existingSecret": "agents-ca"},
        },
    }
    docs = render(values=values)
    volumes = {v["name"]: v for v in server_deployment(docs)["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["name"]: m for m in server_container(docs)["volumeMounts"]}
    assert volumes["tls-client-ca"]["secret"]["secretName"] == "agents-ca"
    assert mounts["tls-client-ca"]["mountPath"] == "/etc/sessiond/client-ca"
    assert mounts["tls-client-ca"]["readOnly"] is True
    env = server_environment(docs)
    assert env["SESSIOND_TLS_CLIENT_CA_FILE"] == "/etc/sessiond/client-ca/ca.crt"


def probe(spec: dict) -> int | None:
    """What a kubelet gRPC probe sees (plaintext): the status, or None when the call fails."""
    try:
        with grpc.insecure_channel(f"127.0.0.1:{spec['grpc']['port']}") as channel:
            request = health_pb2.HealthCheckRequest(service=spec["grpc"].get("service", ""))
            return health_pb2_grpc.HealthStub(channel).Check(request, timeout=2).status
    except grpc.RpcError:
        return None


@pytest.mark.slow
def test_tls_and_auth_from_the_chart_on_a_real_server(
    tmp_path: Path, moto_endpoint: str, moto_s3_client
) -> None:
    bucket = "chart-security"
    moto_s3_client.create_bucket(Bucket=bucket)
    certs, auth = tmp_path / "certs", tmp_path / "auth"
    pki = Pki(tmp_path / "pki")
    server_cert = pki.issue("sessiond.agents.svc", server=True)
    certs.mkdir()
    # A kubernetes.io/tls Secret as cert-manager writes it.
    (certs / "tls.crt").write_bytes(server_cert.cert.read_bytes())
    (certs / "tls.key").write_bytes(server_cert.key.read_bytes())
    (certs / "ca.crt").write_bytes(pki.ca_file.read_bytes())
    auth.mkdir()
    write_tokens(auth / "tokens", {"acme": [TOKEN]})
    key = KeyPair.ec()
    write_jwks(auth / "jwks.json", [(key, "k1")])
    grpc_port, health_port = free_port(), free_port()
    values = {
        "store": {"bucket": bucket, "endpoint": moto_endpoint, "region": "us-east-1"},
        "server": {"grpcPort": grpc_port, "healthPort": health_port, "listenHost": "127.0.0.1"},
        "metrics": {"enabled": False},
        "pageTokens": {"existingSecret": "page-tokens"},
        "tls": {
            "enabled": True,
            "existingSecret": "tls",
            "mountPath": str(certs),
            "clientAuth": {"enabled": True},
        },
        "auth": {
            "enabled": True,
            "existingSecret": "auth",
            "mountPath": str(auth),
            "jwt": {"jwksFileKey": "jwks.json", "audience": "sessiond", "tenantClaim": "org"},
        },
    }
    docs = render(values=values)
    container = server_container(docs)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIOND_", "AWS_"))}
    for name, value in server_environment(docs).items():
        if isinstance(value, dict):  # what Kubernetes would resolve
            value = "pod-0" if "fieldRef" in value else "secret-value-of-the-page-token-key"
        env[name] = value
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    log = tmp_path / "sessiond.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(SESSIOND), *container["args"]], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while probe(container["startupProbe"]) != health_pb2.HealthCheckResponse.SERVING:
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        for name in ("livenessProbe", "readinessProbe"):
            assert container[name]["grpc"]["port"] == health_port
            assert probe(container[name]) == health_pb2.HealthCheckResponse.SERVING
        asyncio.run(use_the_api(f"127.0.0.1:{grpc_port}", pki, key))
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(30)
    assert code == 0, log.read_text()


async def use_the_api(target: str, pki: Pki, key: KeyPair) -> None:
    agent = pki.issue("agent")
    tls = {
        "ca_file": pki.ca_file,
        "cert_file": agent.cert,
        "key_file": agent.key,
        "server_name": "sessiond.agents.svc",
        "retries": False,
        "timeout": 10,
    }
    async with AsyncClient(target, token=TOKEN, **tls) as client:
        await client.start("from-the-chart")
    jwt = key.sign(None, kid="k1", aud="sessiond", org="acme")
    async with AsyncClient(target, token=jwt, **tls) as client:
        assert (await client.get("from-the-chart")).session_id == "from-the-chart"
    async with AsyncClient(target, **tls) as client:
        with pytest.raises(Unauthenticated):
            await client.get("from-the-chart")
    without_cert = {k: v for k, v in tls.items() if k not in {"cert_file", "key_file"}}
    for refused in (
        AsyncClient(target, token=TOKEN, **without_cert),
        AsyncClient(target, token=TOKEN, retries=False, timeout=5),  # plaintext
    ):
        async with refused:  # the handshake fails: no call reaches the server
            with pytest.raises(Unavailable):
                await refused.get("from-the-chart")
