"""TLS and mutual TLS of the gRPC port, certificate reload, the plaintext health port.

Certificates come from a CA generated in the test (``support.security.Pki``);
clients are the real ``AsyncClient`` with ``tls=True``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError

from sessiond.client.aio import AsyncClient
from sessiond.server.app import build_server
from sessiond.server.ops.files import ConfigurationError
from sessiond.server.ops.security_checks import is_loopback
from sessiond.server.ops.settings import Settings
from sessiond.server.storage.memory import MemoryStore
from sessiond.v1 import session_service_pb2 as pb
from support.security import TOKEN_A, Pki, replace_file

SERVICE = "sessiond.v1.SessionService"
SERVING = health_pb2.HealthCheckResponse.SERVING


def tls_settings(pki: Pki, *, mutual: bool = False, **extra) -> dict:
    server = pki.issue("sessiond.test", server=True)
    settings = {"tls_cert_file": str(server.cert), "tls_key_file": str(server.key), **extra}
    if mutual:  # a copy: rotating it must not change what the test's clients trust
        client_ca = pki.directory / "client-ca.pem"
        client_ca.write_bytes(pki.ca_file.read_bytes())
        settings["tls_client_ca_file"] = str(client_ca)
    return settings


def fresh_channel(
    target: str, ca: Path, *, cert=None, server_name: str = "sessiond.test"
) -> grpc.aio.Channel:
    """A TLS channel with its own subchannel pool: it always makes a new connection."""
    credentials = grpc.ssl_channel_credentials(
        ca.read_bytes(),
        cert.key.read_bytes() if cert else None,
        cert.cert.read_bytes() if cert else None,
    )
    options = [
        ("grpc.ssl_target_name_override", server_name),
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.enable_retries", 0),
    ]
    return grpc.aio.secure_channel(target, credentials, options=options)


async def check(channel: grpc.aio.Channel) -> int:
    """A health check over ``channel`` (raises AioRpcError when the handshake fails)."""
    async with channel:
        request = health_pb2.HealthCheckRequest(service=SERVICE)
        return (await health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)).status


async def test_tls_serves_the_api_and_refuses_plaintext_and_strangers(
    serve, pki: Pki, tmp_path: Path, clients
) -> None:
    served = await serve(**tls_settings(pki))
    client = clients(served.target, tls=True, ca_file=pki.ca_file, server_name="sessiond.test")
    await client.start("over-tls")
    assert (await client.get("over-tls")).session_id == "over-tls"
    # The IP SAN verifies without a name override too.
    await clients(served.target, ca_file=pki.ca_file).get("over-tls")

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async with grpc.aio.insecure_channel(served.target) as channel:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=3
            )
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    stranger = Pki(tmp_path / "other", name="another CA")
    with pytest.raises(grpc.aio.AioRpcError):
        await check(fresh_channel(served.target, stranger.ca_file))
    with pytest.raises(grpc.aio.AioRpcError):
        await check(fresh_channel(served.target, pki.ca_file, server_name="wrong.name"))


async def test_mutual_tls_needs_a_client_certificate_of_the_ca(
    serve, pki: Pki, tmp_path: Path, clients, token_file: Path
) -> None:
    served = await serve(**tls_settings(pki, mutual=True), auth_tokens_file=str(token_file))
    assert served.server.tls is not None and served.server.tls.mutual
    client_cert = pki.issue("agent-1")
    client = clients(
        served.target,
        ca_file=pki.ca_file,
        cert_file=client_cert.cert,
        key_file=client_cert.key,
        server_name="sessiond.test",
        token=TOKEN_A,
    )
    await client.start("mtls")
    assert await check(fresh_channel(served.target, pki.ca_file, cert=client_cert)) == SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await check(fresh_channel(served.target, pki.ca_file))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    impostor = Pki(tmp_path / "other", name="impostor CA").issue("agent-1")
    with pytest.raises(grpc.aio.AioRpcError):
        await check(fresh_channel(served.target, pki.ca_file, cert=impostor))
    # mTLS does not replace the token: a certified client still needs one.
    no_token = clients(
        served.target,
        ca_file=pki.ca_file,
        cert_file=client_cert.cert,
        key_file=client_cert.key,
        server_name="sessiond.test",
    )
    with pytest.raises(Exception) as refused:
        await no_token.get("mtls")
    assert type(refused.value).__name__ == "Unauthenticated"


async def test_rotated_certificates_reach_new_connections(
    serve, pki: Pki, tmp_path: Path, caplog
) -> None:
    caplog.set_level(logging.INFO)
    settings = tls_settings(pki, mutual=True, tls_reload_seconds=0.05)
    served = await serve(**settings)
    cert, key = Path(settings["tls_cert_file"]), Path(settings["tls_key_file"])
    client_cert = pki.issue("agent")
    assert await check(fresh_channel(served.target, pki.ca_file, cert=client_cert)) == SERVING
    with pytest.raises(grpc.aio.AioRpcError):
        await check(
            fresh_channel(served.target, pki.ca_file, cert=client_cert, server_name="next.test")
        )

    # A half-finished rotation (new certificate, old key) is refused: the old one stays.
    renewed = pki.issue("next.test", server=True)
    replace_file(cert, renewed.cert.read_bytes())
    await asyncio.sleep(0.1)
    assert await check(fresh_channel(served.target, pki.ca_file, cert=client_cert)) == SERVING
    assert "not the key of tls_cert_file" in caplog.text
    # The key arrives: new connections get the new certificate.
    replace_file(key, renewed.key.read_bytes())
    await eventually_serving(served.target, pki.ca_file, client_cert, "next.test")
    with pytest.raises(grpc.aio.AioRpcError):
        await check(fresh_channel(served.target, pki.ca_file, cert=client_cert))

    # The client CA rotates too: certificates of the old CA stop working.
    new_ca = Pki(tmp_path / "ca2", name="second CA")
    replace_file(Path(settings["tls_client_ca_file"]), new_ca.ca_file.read_bytes())
    new_client = new_ca.issue("agent-2")
    await eventually_serving(served.target, pki.ca_file, new_client, "next.test")
    with pytest.raises(grpc.aio.AioRpcError):
        await check(
            fresh_channel(served.target, pki.ca_file, cert=client_cert, server_name="next.test")
        )


async def eventually_serving(target: str, ca: Path, cert, name: str) -> None:
    for attempt in range(100):
        try:
            assert await check(fresh_channel(target, ca, cert=cert, server_name=name)) == SERVING
            return
        except grpc.aio.AioRpcError:
            if attempt == 99:
                raise
            await asyncio.sleep(0.05)


async def test_the_health_port_is_plaintext_and_health_only(
    serve, pki: Pki, token_file: Path
) -> None:
    served = await serve(
        **tls_settings(pki, mutual=True),
        health_listen="127.0.0.1:0",
        auth_tokens_file=str(token_file),
        auth_exempt_health=False,
    )
    port = served.server.health_port
    assert port and port != served.server.port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", SERVICE):
            request = health_pb2.HealthCheckRequest(service=service)
            assert (await stub.Check(request, timeout=5)).status == SERVING
        api = AsyncClient(f"127.0.0.1:{port}", channel=channel, timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await api.stub.Get(pb.GetRequest(session_id="anything"))
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    # Shutdown: the health port says NOT_SERVING during the drain, like the API port.
    stopping = asyncio.create_task(served.server.stop(0, drain=0.5))
    await asyncio.sleep(0.2)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = health_pb2.HealthCheckRequest(service="")
        status = (await health_pb2_grpc.HealthStub(channel).Check(request, timeout=5)).status
    assert status == health_pb2.HealthCheckResponse.NOT_SERVING
    await stopping


def test_plaintext_is_refused_on_network_addresses(pki: Pki) -> None:
    for listen in ("0.0.0.0:50051", "[::]:50051", "10.1.2.3:50051", "sessiond.internal:1"):
        with pytest.raises(ValidationError, match="refusing to serve plaintext"):
            Settings(listen=listen)
        assert Settings(listen=listen, allow_insecure=True).allow_insecure
        Settings(listen=listen, **tls_settings(pki))
    for listen in ("127.0.0.1:1", "127.9.9.9:1", "localhost:1", "[::1]:1"):
        Settings(listen=listen)
    assert is_loopback("::1") and not is_loopback("::") and not is_loopback("")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"tls_cert_file": "/c.pem"}, "both tls_cert_file and tls_key_file"),
        ({"tls_key_file": "/k.pem"}, "both tls_cert_file and tls_key_file"),
        ({"tls_client_ca_file": "/ca.pem"}, "needs tls_cert_file"),
        ({"health_listen": "nonsense"}, "health_listen must be host:port"),
        ({"health_listen": "127.0.0.1:50051"}, "must differ from listen"),
    ],
)
def test_inconsistent_tls_settings(settings: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(listen="127.0.0.1:50051", **settings)


def test_unusable_tls_files_refuse_the_start(pki: Pki, tmp_path: Path) -> None:
    good = pki.issue("sessiond.test", server=True)
    other = pki.issue("other.test", server=True)
    (tmp_path / "junk.pem").write_text("not a certificate")
    encrypted = tmp_path / "encrypted.key"
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(good.key.read_bytes(), None)
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"pass"),
        )
    )
    cases = [
        ((good.cert, other.key, None), "not the key of tls_cert_file"),
        ((tmp_path / "junk.pem", good.key, None), "no valid PEM certificate"),
        ((good.cert, encrypted, None), "no valid unencrypted PEM private key"),
        ((good.cert, good.key, tmp_path / "junk.pem"), "tls_client_ca_file holds no valid"),
        ((good.cert, tmp_path / "absent.key", None), "cannot read the TLS certificate"),
    ]
    for (cert, key_file, ca), message in cases:
        settings = Settings(
            listen="127.0.0.1:0",
            metrics_listen="",
            tls_cert_file=str(cert),
            tls_key_file=str(key_file),
            tls_client_ca_file=str(ca) if ca else None,
        )
        with pytest.raises(ConfigurationError, match=message) as caught:
            build_server(settings, store=MemoryStore())
        assert "PRIVATE KEY" not in str(caught.value)


async def test_the_cli_over_mutual_tls_with_a_token(
    serve, pki: Pki, tmp_path: Path, token_file: Path
) -> None:
    """The ``sessiond`` command against the real server, mTLS and a token file."""
    served = await serve(**tls_settings(pki, mutual=True), auth_tokens_file=str(token_file))
    client_cert = pki.issue("operator")
    (tmp_path / "token").write_text(TOKEN_A + "\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
    environment |= {
        "SESSIOND_TARGET": served.target,
        "SESSIOND_CA_FILE": str(pki.ca_file),  # implies TLS
        "SESSIOND_CERT_FILE": str(client_cert.cert),
        "SESSIOND_KEY_FILE": str(client_cert.key),
        "SESSIOND_TLS_SERVER_NAME": "sessiond.test",
    }

    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("sessiond")),
            *args,
            env=environment,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        return process.returncode or 0, out.decode(), err.decode()

    token = ("--token-file", str(tmp_path / "token"))
    code, out, err = await cli("show", "cli-tls", *token)
    assert code == 4, err  # NOT_FOUND: the call went through, TLS and token accepted
    a_client = AsyncClient(
        served.target,
        ca_file=pki.ca_file,
        cert_file=client_cert.cert,
        key_file=client_cert.key,
        server_name="sessiond.test",
        token=TOKEN_A,
    )
    async with a_client:
        await a_client.start("cli-tls")
        await a_client.chat("cli-tls", "hello over mTLS")
    code, out, err = await cli("show", "cli-tls", "--output", "json", *token)
    assert code == 0, err
    assert json.loads(out)["session"]["message_count"] == 2
    code, out, err = await cli("ls", "--output", "json", *token)
    assert [s["session_id"] for s in json.loads(out)["sessions"]] == ["cli-tls"]
    # Without the token: UNAUTHENTICATED, exit 10, one line.
    code, out, err = await cli("ls")
    assert code == 10 and len(err.strip().splitlines()) == 1, err
    assert "[UNAUTHENTICATED]" in err
    # Without the client certificate the handshake fails: UNAVAILABLE, exit 8.
    del environment["SESSIOND_CERT_FILE"], environment["SESSIOND_KEY_FILE"]
    code, out, err = await cli("ls", *token, "--timeout", "5")
    assert code == 8, err
