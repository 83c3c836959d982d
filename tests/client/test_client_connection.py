"""Connection options of the library and the CLI: bearer tokens, TLS, mutual TLS, deadlines.

sessiond's server cannot serve TLS or check tokens yet, so these run against a
small test-only gRPC server (``fake_server``) that answers ``Get`` with the
``authorization`` metadata it received.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest
from fake_server import Pki, make_pki, start_fake_server

from sessiond.client import AsyncClient, Client
from sessiond.errors import DeadlineExceeded, Unavailable

SESSIOND = Path(sys.executable).with_name("sessiond")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path, server_names=["localhost", "127.0.0.1"])


@pytest.fixture
async def echo_server():
    servers = []

    async def start(pki: Pki | None = None, **options) -> int:
        server, port = await start_fake_server(None, pki, **options)
        servers.append(server)
        return port

    yield start
    for server in servers:
        await server.stop(0)


async def seen_authorization(target: str, **options) -> str:
    async with AsyncClient(target, **options) as client:
        return (await client.get("who")).title


async def test_token_is_sent_as_bearer_metadata_on_a_plaintext_channel(echo_server) -> None:
    port = await echo_server()
    target = f"127.0.0.1:{port}"
    assert await seen_authorization(target, token="s3cret") == "Bearer s3cret"
    assert await seen_authorization(target) == ""


async def test_tls_verifies_the_server_and_carries_the_token(echo_server, pki, tmp_path) -> None:
    port = await echo_server(pki)
    target = f"localhost:{port}"
    seen = await seen_authorization(target, ca_file=pki.ca, token="s3cret")
    assert seen == "Bearer s3cret"
    # Without our CA the system roots do not trust the server: a typed error.
    with pytest.raises(Unavailable):
        await seen_authorization(target, tls=True, retries=False, timeout=5)
    # The name in the certificate may differ from the target's host.
    (tmp_path / "other").mkdir()
    other = make_pki(tmp_path / "other", server_names=["sessiond.test"])
    renamed = await echo_server(other)
    assert (
        await seen_authorization(
            f"127.0.0.1:{renamed}", ca_file=other.ca, server_name="sessiond.test"
        )
        == ""
    )


async def test_mutual_tls_needs_the_client_certificate(echo_server, pki) -> None:
    port = await echo_server(pki, require_client_cert=True)
    target = f"localhost:{port}"
    with pytest.raises(Unavailable):
        await seen_authorization(target, ca_file=pki.ca, retries=False, timeout=5)
    seen = await seen_authorization(
        target, ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key, token="t"
    )
    assert seen == "Bearer t"


async def test_sync_client_sends_the_token(echo_server) -> None:
    port = await echo_server()

    def call() -> str:
        with Client(f"127.0.0.1:{port}", token="sync-token") as client:
            return client.get("who").title

    assert await asyncio.to_thread(call) == "Bearer sync-token"


async def test_deadline_is_a_typed_error(echo_server) -> None:
    port = await echo_server()
    async with AsyncClient(f"127.0.0.1:{port}", timeout=0.2) as client:
        with pytest.raises(DeadlineExceeded):
            await client.get("slow-1")
        assert (await client.get("quick", timeout=5)).session_id == "quick"


async def sessiond(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
    environment.update(env or {})
    process = await asyncio.create_subprocess_exec(
        str(SESSIOND),
        *args,
        env=environment,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    return process.returncode or 0, out.decode(), err.decode()


async def test_cli_tls_and_token_from_flags_and_environment(echo_server, pki, tmp_path) -> None:
    port = await echo_server(pki, require_client_cert=True)
    token_file = tmp_path / "token"
    token_file.write_text("from-a-file\n")
    code, out, err = await sessiond(
        *("show", "who", "--output", "json", "--target", f"localhost:{port}"),
        *("--tls", "--ca-file", str(pki.ca), "--token-file", str(token_file)),
        *("--cert-file", str(pki.client_cert), "--key-file", str(pki.client_key)),
    )
    assert (code, err) == (0, "")
    assert json.loads(out)["session"]["title"] == "Bearer from-a-file"

    environment = {
        "SESSIOND_TARGET": f"localhost:{port}",
        "SESSIOND_TLS": "true",
        "SESSIOND_CA_FILE": str(pki.ca),
        "SESSIOND_CERT_FILE": str(pki.client_cert),
        "SESSIOND_KEY_FILE": str(pki.client_key),
        "SESSIOND_TOKEN": "from-the-environment",
        "SESSIOND_OUTPUT": "json",
    }
    code, out, err = await sessiond("show", "who", env=environment)
    assert (code, err) == (0, "")
    assert json.loads(out)["session"]["title"] == "Bearer from-the-environment"
    # A flag wins over its variable.
    code, out, _ = await sessiond("show", "who", "--token", "flag", "-O", "text", env=environment)
    assert code == 0 and "Bearer flag" in out
    # A token and a token file together are a usage error.
    code, _, err = await sessiond("show", "who", "--token-file", str(token_file), env=environment)
    assert code == 2 and "either a token or a token file" in err


async def test_cli_deadline_exceeded_exits_9(echo_server) -> None:
    port = await echo_server()
    code, out, err = await sessiond(
        "show", "slow-2", "--timeout", "0.3", "--target", f"127.0.0.1:{port}"
    )
    assert code == 9 and out == ""
    assert err.startswith("sessiond: ") and err.strip().endswith("[DEADLINE_EXCEEDED]")
    assert len(err.strip().splitlines()) == 1
