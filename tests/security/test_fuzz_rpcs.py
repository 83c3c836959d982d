"""Fuzzing every RPC with generated hostile requests, through a real server.

Hypothesis generates requests for each RPC (``support.fuzz_strategies``);
each is sent to a real server whose store is wrapped in a
:class:`support.recording.RecordingStore`. Every answer must carry an
expected status code (never ``UNKNOWN``, ``INTERNAL``, ``DATA_LOSS`` or a
hang), and no storage request may leave the caller's prefix
``tenants/default/`` or carry ``..``, ``//``, a backslash or a NUL. The runs
are derandomized (the same examples on every run) and bounded.
"""

from __future__ import annotations

import logging
import traceback
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sessiond.client.errors import from_rpc_error
from sessiond.server.storage.memory import MemoryStore
from sessiond.v1 import session_service_pb2 as pb
from support import fuzz_requests as fz
from support.recording import RecordingStore
from support.threaded_server import ThreadedServer

PREFIX = "tenants/default/"
#: The readiness check lists the tenants' root once per interval.
INFRASTRUCTURE = {("list", "tenants/")}
EXPECTED = {
    "OK",
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "FAILED_PRECONDITION",
    "ABORTED",
}
SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.large_base_example,
    ],
)
#: (RPC, code, reason) of every call made, for the figures.
SEEN: Counter[tuple[str, str, str]] = Counter()
#: Client-side INTERNAL artifacts replaced by the server's code, by RPC.
ARTIFACTS: Counter[str] = Counter()


class _Tracebacks(logging.Handler):
    """Keeps the tracebacks the server logs for unexpected errors."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.found: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))[-2000:]
        self.found.append(text)


class _Calls:
    """Wraps the servicer's observer: the code the *server* ended each call with."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.codes: list[tuple[str, str]] = []

    def rpc_done(self, method: str, code: str, seconds: float, reason: str = "") -> None:
        self.codes.append((method, code))
        self.inner.rpc_done(method, code, seconds, reason)


#: gRPC's Python client reports a stream whose server ended it while the
#: client was still writing as INTERNAL "Internal error from Core" (its
#: ``_write`` overwrites the call's status); the server's own code is used then.
CLIENT_ARTIFACT = "Internal error from Core"
TRACEBACKS = _Tracebacks()
logging.getLogger("sessiond").addHandler(TRACEBACKS)
logging.getLogger("grpc").addHandler(TRACEBACKS)


@pytest.fixture(scope="module")
def fuzz_server() -> Iterator[ThreadedServer]:
    """A server on a recording memory store, with the seeded sessions of ``fz.SEEDED``."""
    store = RecordingStore(MemoryStore())
    with ThreadedServer(store, page_token_secret="fuzz-secret") as server:
        client = server.client
        assert client is not None and server.server is not None
        servicer = server.server.servicer
        servicer.observer = _Calls(servicer.observer)  # type: ignore[assignment]

        async def seed() -> None:
            for sid in fz.SEEDED:
                await client.start(sid, labels={"team": "fuzz"})
            await client.chat("fz-1", "hello")
            async with client.run("fz-2", "hi") as turn:
                await turn.finish(["there"])
            from sessiond.v1 import turn_pb2

            review = turn_pb2.ReviewRequest(review_id="rv-1", tool_name="rm", input_json="{}")
            async with client.run("fz-hib", "ask") as turn:
                await turn.hibernate(snapshot=b"{}", reviews=[review])

        server.call(seed)
        yield server


async def _requests(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def _outcome(call: Any, *, stream: bool = False) -> tuple[str, str]:
    try:
        if stream:
            async for _ in call:
                pass
        else:
            await call
    except grpc.aio.AioRpcError as error:
        reason = from_rpc_error(error).reason
        if error.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
            reason += f" ({error.details()})"
        return error.code().name, reason
    return "OK", ""


def check(server: ThreadedServer, rpc: str, request: Any, factory: Any) -> None:
    """Sends one request; asserts the code and the keys it made the store touch."""
    store = server.store
    assert isinstance(store, RecordingStore)
    calls = server.server.servicer.observer  # type: ignore[union-attr]
    assert isinstance(calls, _Calls)
    before, logged, ended = len(store.requests), len(TRACEBACKS.found), len(calls.codes)
    code, reason = server.call(factory, timeout=30)
    server_codes = [c for _, c in calls.codes[ended:]]
    server_log = "\n".join(TRACEBACKS.found[logged:])
    if code == "INTERNAL" and CLIENT_ARTIFACT in reason and len(server_codes) == 1:
        ARTIFACTS[rpc] += 1
        code, reason = server_codes[0], "(as the server ended it)"
    SEEN[(rpc, code, reason.split(" ", 1)[0])] += 1
    assert code in EXPECTED, f"{rpc} answered {code} {reason} to {request!r:.800}\n{server_log}"
    assert not set(server_codes) & {"INTERNAL", "UNKNOWN", "DATA_LOSS"}, server_codes
    new = store.requests[before:]
    escaped = [r for r in _outside(new) if r not in INFRASTRUCTURE]
    assert not escaped, f"{rpc} touched {escaped[:3]} for {request!r:.500}"


def _outside(requests: list[tuple[str, str]]) -> list[tuple[str, str]]:
    probe = RecordingStore(MemoryStore())
    probe.requests = list(requests)
    return probe.outside(PREFIX)


def unary_test(rpc: str, examples: int):
    """A hypothesis test sending generated requests to one unary RPC."""

    @settings(SETTINGS, max_examples=examples)
    @given(request=fz.unary_requests()[rpc])
    def test(fuzz_server: ThreadedServer, request: Any) -> None:
        stub = fuzz_server.client.stub  # type: ignore[union-attr]
        check(
            fuzz_server,
            rpc,
            request,
            lambda: _outcome(getattr(stub, rpc)(request, timeout=10)),
        )

    test.__name__ = f"test_fuzz_{rpc}"
    return test


BUDGET = {
    "Start": 40,
    "Chat": 60,
    "Resume": 20,
    "ListPendingReviews": 20,
    "ResolveReview": 20,
    "Archive": 15,
    "Unarchive": 15,
    "Get": 25,
    "List": 25,
    "ListMessages": 25,
    "Delete": 15,
    "Replay": 20,
}
for _rpc, _examples in BUDGET.items():
    globals()[f"test_fuzz_{_rpc}"] = unary_test(_rpc, _examples)


@settings(SETTINGS, max_examples=150)
@given(requests=fz.run_streams())
def test_fuzz_run(fuzz_server: ThreadedServer, requests: list[pb.RunRequest]) -> None:
    stub = fuzz_server.client.stub  # type: ignore[union-attr]
    check(
        fuzz_server,
        "Run",
        requests,
        lambda: _outcome(stub.Run(_requests(requests), timeout=10), stream=True),
    )


@settings(SETTINGS, max_examples=20)
@given(request=fz.export_requests())
def test_fuzz_export(fuzz_server: ThreadedServer, request: pb.ExportRequest) -> None:
    stub = fuzz_server.client.stub  # type: ignore[union-attr]
    check(
        fuzz_server,
        "Export",
        request,
        lambda: _outcome(stub.Export(request, timeout=10), stream=True),
    )


@settings(SETTINGS, max_examples=20)
@given(requests=fz.import_streams())
def test_fuzz_import(fuzz_server: ThreadedServer, requests: list[pb.ImportRequest]) -> None:
    stub = fuzz_server.client.stub  # type: ignore[union-attr]
    check(
        fuzz_server,
        "Import",
        requests,
        lambda: _outcome(stub.Import(_requests(requests), timeout=10)),
    )


@settings(SETTINGS, max_examples=10)
@given(data=st.data())
def test_fuzz_seeded_sessions_stay_readable(fuzz_server: ThreadedServer, data: Any) -> None:
    """Whatever was stored by the fuzzing is still served (no DATA_LOSS on read-back)."""
    sid = data.draw(st.sampled_from(fz.SEEDED))
    client = fuzz_server.client
    assert client is not None
    for rpc, call in (
        ("Get", lambda: _outcome(client.stub.Get(pb.GetRequest(session_id=sid), timeout=10))),
        (
            "ListMessages",
            lambda: _outcome(
                client.stub.ListMessages(pb.ListMessagesRequest(session_id=sid), timeout=10)
            ),
        ),
    ):
        check(fuzz_server, rpc, sid, call)


def test_fuzz_summary(fuzz_server: ThreadedServer) -> None:
    """Runs last: the server still answers, and nothing ever left the tenant's prefix."""
    with grpc.insecure_channel(fuzz_server.target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "sessiond.v1.SessionService"):
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.SERVING
    store = fuzz_server.store
    assert isinstance(store, RecordingStore)
    escaped = [r for r in store.outside(PREFIX) if r not in INFRASTRUCTURE]
    by_code = Counter()
    for (_, code, _), count in SEEN.items():
        by_code[code] += count
    reasons = Counter()
    for (_, code, reason), count in SEEN.items():
        if code != "OK":
            reasons[reason] += count
    print(
        f"fuzz: {sum(SEEN.values())} requests over {len({r for r, _, _ in SEEN})} RPCs; "
        f"codes {dict(by_code)}; reasons {dict(reasons)}; {len(store.requests)} storage "
        f"requests recorded, {len(escaped)} outside {PREFIX}; health SERVING; gRPC client "
        f"'{CLIENT_ARTIFACT}' artifacts (server code used): {dict(ARTIFACTS)}"
    )
    assert escaped == []
    assert sum(SEEN.values()) >= 300
