"""Bearer tokens from a token file: enforcement before any handler, rotation, exemptions.

Every RPC shape (unary, server stream, client stream, bidirectional) without
a valid token ends with ``UNAUTHENTICATED`` and one ``ErrorInfo`` before the
handler runs (the store sees nothing); health is exempt by default and
reflection is not; the file is re-read when it changes; comparisons are
constant-time over SHA-256 digests.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from pathlib import Path

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from sessiond.errors import Unauthenticated
from sessiond.server.api import tokens as tokens_module
from sessiond.server.api.auth import bearer_token
from sessiond.server.api.tokens import TokenFile, find_digest, parse_token_file
from sessiond.server.app import build_server
from sessiond.server.ops.files import ConfigurationError
from sessiond.server.ops.settings import Settings
from sessiond.server.storage.memory import MemoryStore
from sessiond.v1 import session_service_pb2 as pb
from sessiond.v1 import session_service_pb2_grpc
from support.recording import RecordingStore
from support.security import TOKEN_A, TOKEN_B, replace_file, write_tokens

SERVICE = "sessiond.v1.SessionService"


def error_info(error: grpc.aio.AioRpcError) -> error_details_pb2.ErrorInfo:
    """The one ErrorInfo of a failed call."""
    status = rpc_status.from_call(error)
    assert status is not None and len(status.details) == 1
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    return info


async def all_shapes(channel: grpc.aio.Channel, metadata=()) -> dict[str, grpc.StatusCode]:
    """The status of one call of each RPC shape (OK when it succeeded or failed otherwise)."""
    stub = session_service_pb2_grpc.SessionServiceStub(channel)
    codes: dict[str, grpc.StatusCode] = {}

    async def requests():
        yield pb.ImportRequest(options=pb.ImportOptions())

    async def run_requests():
        yield pb.RunRequest(open=pb.RunOpen(session_id="nope"))

    calls = {
        "Get": lambda: stub.Get(pb.GetRequest(session_id="nope"), metadata=metadata),
        "Import": lambda: stub.Import(requests(), metadata=metadata),
    }
    for name, call in calls.items():
        try:
            await call()
            codes[name] = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            codes[name] = error.code()
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                assert error_info(error).reason == "UNAUTHENTICATED"
    for name, call in {
        "Export": lambda: stub.Export(pb.ExportRequest(session_ids=["nope"]), metadata=metadata),
        "Run": lambda: stub.Run(run_requests(), metadata=metadata),
    }.items():
        try:
            async for _ in call():
                pass
            codes[name] = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as error:
            codes[name] = error.code()
            if error.code() == grpc.StatusCode.UNAUTHENTICATED:
                assert error_info(error).reason == "UNAUTHENTICATED"
    return codes


async def test_tokens_name_the_tenant_and_everything_else_is_refused(
    serve, token_file: Path, clients
) -> None:
    store = RecordingStore(MemoryStore())
    served = await serve(store=store, auth_tokens_file=str(token_file))
    alice = clients(served.target, token=TOKEN_A)
    await alice.start("s1", title="mine")
    assert (await alice.get("s1")).title == "mine"
    assert store.outside("tenants/tenant-a/") == []

    store.clear()
    for kwargs, problem in [
        ({}, "missing"),
        ({"token": "not-a-token-of-anyone-at-all"}, "invalid"),
        ({"token": TOKEN_A[:-1]}, "invalid"),
        ({"metadata": [("authorization", f"Basic {TOKEN_A}")]}, "malformed"),
    ]:
        with pytest.raises(Unauthenticated) as caught:
            await clients(served.target, **kwargs).get("s1")
        assert caught.value.metadata == {"problem": problem}
        assert TOKEN_A not in caught.value.message and TOKEN_A[:-1] not in caught.value.message

    async with grpc.aio.insecure_channel(served.target) as channel:
        refused = await all_shapes(channel)
        allowed = await all_shapes(channel, metadata=(("authorization", f"Bearer {TOKEN_B}"),))
    assert set(refused.values()) == {grpc.StatusCode.UNAUTHENTICATED}, refused
    assert grpc.StatusCode.UNAUTHENTICATED not in allowed.values(), allowed
    # Refused calls never reached a handler: only tenant-b's calls touched the store.
    assert store.requests and store.outside("tenants/tenant-b/") == []
    text = served.server.metrics.registry.get_sample_value(
        "sessiond_rpc_requests_total",
        {"method": "Get", "code": "UNAUTHENTICATED", "reason": "UNAUTHENTICATED"},
    )
    assert text == 5.0


async def test_unknown_methods_need_credentials_too(serve, token_file: Path) -> None:
    served = await serve(auth_tokens_file=str(token_file))
    async with grpc.aio.insecure_channel(served.target) as channel:
        call = channel.unary_unary(f"/{SERVICE}/NoSuchMethod")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"")
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call(b"", metadata=(("authorization", f"Bearer {TOKEN_A}"),))
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def health(target: str, metadata=()) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=SERVICE)
        return (await stub.Check(request, metadata=metadata, timeout=5)).status


async def reflection_services(target: str, metadata=()) -> list[str]:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        async for response in stub.ServerReflectionInfo(iter([request]), metadata=metadata):
            return [s.name for s in response.list_services_response.service]
    return []


async def test_health_is_exempt_and_reflection_follows_its_setting(serve, token_file: Path) -> None:
    bearer = (("authorization", f"Bearer {TOKEN_A}"),)
    default = await serve(auth_tokens_file=str(token_file))
    assert await health(default.target) == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await reflection_services(default.target)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert SERVICE in await reflection_services(default.target, bearer)

    swapped = await serve(
        auth_tokens_file=str(token_file), auth_exempt_health=False, auth_exempt_reflection=True
    )
    assert SERVICE in await reflection_services(swapped.target)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health(swapped.target)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await health(swapped.target, bearer) == health_pb2.HealthCheckResponse.SERVING


async def test_rotating_the_token_file_while_serving(
    serve, token_file: Path, clients, caplog
) -> None:
    caplog.set_level(logging.INFO)
    served = await serve(auth_tokens_file=str(token_file), auth_reload_seconds=0.05)
    old = clients(served.target, token=TOKEN_A)
    await old.start("kept")
    new_token = "rotated-token-of-tenant-a-91f3"
    # Step 1: both tokens valid (clients move over); step 2: the old one removed.
    replace_file(token_file, f"tenant-a:{TOKEN_A}\ntenant-a:{new_token}\ntenant-b:{TOKEN_B}\n")
    fresh = clients(served.target, token=new_token)
    await wait_until_accepted(fresh)
    assert (await fresh.get("kept")).session_id == "kept"  # same tenant, same sessions
    await old.get("kept")
    digest = hashlib.sha256(TOKEN_B.encode()).hexdigest()
    replace_file(token_file, f"tenant-a:{new_token}\ntenant-b:sha256:{digest}\n")
    await wait_until_refused(old)
    await fresh.get("kept")
    await clients(served.target, token=TOKEN_B).list()  # listed by digest only

    # A broken new version is refused: the last good one stays, the log names no token.
    replace_file(token_file, f"tenant-a:{new_token}\nthis line is wrong {TOKEN_B}\n")
    await wait_for_log(caplog, "kept the previous token file", fresh)
    await clients(served.target, token=TOKEN_B).list()
    assert TOKEN_B not in caplog.text and new_token not in caplog.text
    assert "line 2" in caplog.text


async def wait_until_accepted(client) -> None:
    for _ in range(100):
        try:
            await client.list()
            return
        except Unauthenticated:
            await asyncio.sleep(0.05)
    raise AssertionError("the new token was never accepted")


async def wait_until_refused(client) -> None:
    for _ in range(100):
        try:
            await client.list()
        except Unauthenticated:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the removed token is still accepted")


async def wait_for_log(caplog, text: str, client) -> None:
    for _ in range(100):
        await client.get("kept")  # each call may re-read the file
        if text in caplog.text:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"no log line {text!r}")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("tenant-a token-without-colon-1234", "line 1"),
        ("../etc:token-of-bad-tenant-1234", "line 1"),
        ("# ok\ntenant-a:short", "line 2"),
        ("tenant-a:has whitespace inside it", "line 1"),
        ("a:same-token-for-two-0001\nb:same-token-for-two-0001", "two tenants"),
    ],
)
def test_malformed_token_files_refuse_the_start(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "tokens"
    path.write_text(content + "\n")
    settings = Settings(listen="127.0.0.1:0", metrics_listen="", auth_tokens_file=str(path))
    with pytest.raises(ConfigurationError) as caught:
        build_server(settings, store=MemoryStore())
    assert reason in str(caught.value)
    secret = content.rpartition(":")[2]
    assert secret not in str(caught.value)


def test_a_missing_token_file_refuses_the_start(tmp_path: Path) -> None:
    path = tmp_path / "absent"
    settings = Settings(listen="127.0.0.1:0", metrics_listen="", auth_tokens_file=str(path))
    with pytest.raises(ConfigurationError, match="cannot read the token file"):
        build_server(settings, store=MemoryStore())


def test_only_digests_are_kept_and_every_entry_is_compared_in_constant_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = {"t1": ["first-token-000000001"], "t2": ["second-token-00000002", "third-token-03"]}
    tokens["t2"][1] += "-padded"
    path = write_tokens(tmp_path / "tokens", tokens)
    file = TokenFile(str(path))
    entries = file.files.value
    assert {e.digest for e in entries} == {
        hashlib.sha256(t.encode()).digest() for ts in tokens.values() for t in ts
    }
    # Nothing of the file but digests, tenants and digest prefixes stays in memory.
    for entry in entries:
        assert set(vars(entry)) == {"digest", "tenant", "token_id"}
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(tokens_module.hmac, "compare_digest", spy)
    for token, tenant in [("first-token-000000001", "t1"), ("nobody-0000000000000", None)]:
        compared.clear()
        entry = file.lookup(token)
        assert (entry.tenant if entry else None) == tenant
        # Every entry compared (no early exit), always digest against digest.
        assert len(compared) == len(entries)
        assert all(len(a) == len(b) == 32 for a, b in compared)
        assert {b for _, b in compared} == {hashlib.sha256(token.encode()).digest()}
    assert find_digest((), b"x" * 32) is None
    assert parse_token_file([b"# nothing\n\n"]) == ()


def test_the_bearer_header_is_parsed_strictly() -> None:
    assert bearer_token([("authorization", "Bearer abc")]) == "abc"
    assert bearer_token([("authorization", "bearer   abc ")]) == "abc"
    for metadata in (
        [],
        [("authorization", "abc")],
        [("authorization", "Bearer ")],
        [("authorization", "Bearer a"), ("authorization", "Bearer b")],
        [("authorization", "Bearer " + "x" * 9000)],
    ):
        with pytest.raises(Unauthenticated):
            bearer_token(metadata)


async def test_a_failing_credential_check_refuses_the_call(
    serve, token_file: Path, clients, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    served = await serve(auth_tokens_file=str(token_file))

    def broken(metadata):
        raise RuntimeError("a bug")

    monkeypatch.setattr(served.server.authenticator, "authenticate", broken)
    with pytest.raises(Unauthenticated):
        await clients(served.target, token=TOKEN_A).list()
    assert "credential check failed unexpectedly" in caplog.text


async def test_a_silent_unauthenticated_stream_is_refused_promptly(serve, token_file: Path) -> None:
    served = await serve(auth_tokens_file=str(token_file))
    never = asyncio.Event()

    async def requests():
        await never.wait()
        yield pb.RunRequest()

    async with grpc.aio.insecure_channel(served.target) as channel:
        call = session_service_pb2_grpc.SessionServiceStub(channel).Run(requests())
        started = asyncio.get_running_loop().time()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in call:
                pass
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert asyncio.get_running_loop().time() - started < 5
