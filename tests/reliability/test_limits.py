"""Every request limit: INVALID_ARGUMENT (or RESOURCE_EXHAUSTED from gRPC) and no storage call.

Each refused request is sent raw through the stub to a real server on a
``MemoryStore``, whose ``request_counts`` must not move. Limits checked after
a Run's claim (messages per append, an oversize append) cannot cost zero
requests; there the refused update must leave nothing stored but the turn's
release. The lease TTL is a server setting; its validation is checked on the
real ``sessiond serve`` command.
"""

from __future__ import annotations

import subprocess

import grpc
import pytest

from sessiond.client.errors import from_rpc_error
from sessiond.client.messages import text_message
from sessiond.server.domain.limits import Limits
from sessiond.server.domain.validation import MAX_METADATA_BYTES, MAX_TITLE_CHARS
from sessiond.server.storage.memory import MemoryStore
from sessiond.v1 import content_pb2
from sessiond.v1 import session_service_pb2 as pb
from support.processes import SESSIOND, process_env
from support.recording import RecordingStore

LIMITS = Limits()
MESSAGE_BYTES = 4096  # --max-message-bytes for these servers


async def outcome(call) -> tuple[str, str]:
    """``(code, reason)`` of a raw stub call (``("OK", "")`` on success)."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        typed = from_rpc_error(error)
        return error.code().name, typed.reason
    return "OK", ""


def blocks(count: int) -> content_pb2.Message:
    return content_pb2.Message(
        role=content_pb2.ROLE_USER, content=[content_pb2.ContentBlock(text="b")] * count
    )


def run_open(message: content_pb2.Message) -> list[pb.RunRequest]:
    return [pb.RunRequest(open=pb.RunOpen(session_id="lim", input=message))]


async def run_outcome(stub, requests: list[pb.RunRequest]) -> tuple[str, str]:
    async def stream():
        for request in requests:
            yield request

    call = stub.Run(stream(), timeout=5)
    try:
        async for _ in call:
            pass
    except grpc.aio.AioRpcError as error:
        return error.code().name, from_rpc_error(error).reason
    return "OK", ""


def chat(**fields: object) -> tuple[str, object]:
    return "Chat", pb.ChatRequest(**{"session_id": "lim", "text": "hi", **fields})


def start(**fields: object) -> tuple[str, object]:
    return "Start", pb.StartRequest(session_id="n1", **fields)


def refused_unary() -> list[tuple[str, tuple[str, object], str]]:
    """(name, (RPC, request), expected reason) of every unary request over a limit."""
    state = '{"a":"' + "x" * LIMITS.max_state_bytes + '"}'
    invalid = "INVALID_ARGUMENT"
    return [
        ("chat text too long", chat(text="x" * (LIMITS.max_text_chars + 1)), invalid),
        ("chat text empty", chat(text=""), invalid),
        ("chat session id 64 chars", chat(session_id="s" * 64), "INVALID_ID"),
        ("chat request id 129 chars", chat(request_id="r" * 129), "INVALID_ID"),
        ("metadata over 16 KiB", start(metadata={"k": "v" * MAX_METADATA_BYTES}), invalid),
        ("65 labels", start(labels={f"k{i}": "v" for i in range(65)}), invalid),
        ("label key upper case", start(labels={"Team": "a"}), invalid),
        ("label value 64 chars", start(labels={"team": "a" * 64}), invalid),
        ("title too long", start(title="t" * (MAX_TITLE_CHARS + 1)), invalid),
        ("title with NUL", start(title="a\x00b"), invalid),
        ("agent state too large", start(agent_state_json=state), "MESSAGE_TOO_LARGE"),
        ("agent state not an object", start(agent_state_json="[1]"), invalid),
        ("request id with a slash", start(request_id="a/b"), "INVALID_ID"),
        ("negative page size: List", ("List", pb.ListRequest(page_size=-1)), invalid),
        (
            "negative page size: ListMessages",
            ("ListMessages", pb.ListMessagesRequest(session_id="lim", page_size=-1)),
            invalid,
        ),
        (
            "negative page size: Replay",
            ("Replay", pb.ReplayRequest(session_id="lim", page_size=-1)),
            invalid,
        ),
        (
            "negative page size: ListPendingReviews",
            ("ListPendingReviews", pb.ListPendingReviewsRequest(page_size=-1)),
            invalid,
        ),
    ]


async def test_each_limit_is_enforced_before_any_storage_call(serve) -> None:
    store = MemoryStore()
    served = await serve(store=store, max_message_bytes=MESSAGE_BYTES)
    stub = served.client.stub
    await served.client.start("lim")
    checked = []
    for name, (rpc, request), reason in refused_unary():
        before = sum(store.request_counts.values())
        got = await outcome(getattr(stub, rpc)(request, timeout=5))
        assert got == ("INVALID_ARGUMENT", reason), name
        assert sum(store.request_counts.values()) == before, f"{name}: storage was called"
        checked.append(name)
    # Checked when a Run opens, before its claim.
    over_size = content_pb2.Message(
        role=content_pb2.ROLE_USER, content=[content_pb2.ContentBlock(text="x" * MESSAGE_BYTES)]
    )
    two_keys = content_pb2.Message(
        role=content_pb2.ROLE_USER, content=[content_pb2.ContentBlock(raw_json='{"a":1,"b":2}')]
    )
    opens = [
        ("input with 257 blocks", run_open(blocks(257)), "INVALID_CONTENT"),
        ("input over max message bytes", run_open(over_size), "MESSAGE_TOO_LARGE"),
        ("input block with two keys", run_open(two_keys), "INVALID_CONTENT"),
        ("first message not open", [pb.RunRequest(fail=pb.RunFail())], "INVALID_ARGUMENT"),
    ]
    for name, requests, reason in opens:
        before = sum(store.request_counts.values())
        assert await run_outcome(stub, requests) == ("INVALID_ARGUMENT", reason), name
        assert sum(store.request_counts.values()) == before, f"{name}: storage was called"
        checked.append(name)
    print(f"{len(checked)} over-limit requests: each INVALID_ARGUMENT, 0 storage requests")


@pytest.mark.parametrize(
    ("name", "update", "reason"),
    [
        ("129 messages in one append", [text_message("assistant", "m")] * 129, "INVALID_ARGUMENT"),
        ("257 blocks in a message", [blocks(257)], "INVALID_CONTENT"),
        (
            "message over max bytes",
            [text_message("assistant", "x" * MESSAGE_BYTES)],
            "MESSAGE_TOO_LARGE",
        ),
    ],
)
async def test_an_over_limit_append_stores_nothing_of_it(serve, name, update, reason) -> None:
    store = RecordingStore(MemoryStore())
    served = await serve(store=store, max_message_bytes=MESSAGE_BYTES)
    await served.client.start("lim")
    requests = [
        *run_open(text_message("user", "hi")),
        pb.RunRequest(append=pb.RunAppend(update=pb.TurnUpdate(messages=update))),
    ]
    store.clear()
    assert await run_outcome(served.client.stub, requests) == ("INVALID_ARGUMENT", reason), name
    await served.server.servicer.drain(2)
    written = [key for op, key in store.requests if op == "put" and "/messages/" in key]
    assert written == [], f"{name}: {written}"
    session = await served.client.get("lim")
    assert not session.HasField("lease") and session.message_count == 0
    print(f"Run append with {name}: {reason}, 0 message files written, turn released")


async def test_page_size_is_coerced(serve) -> None:
    served = await serve()
    client = served.client
    await client.start("big")
    async with client.run("big", "in") as turn:
        for _ in range(8):
            await turn.append([text_message("assistant", "m")] * 128)
    assert (await client.list_messages("big", page_size=0)).messages.__len__() == 50
    page = await client.list_messages("big", page_size=5000)
    assert len(page.messages) == 1000 and page.next_page_token
    rest = await client.list_messages("big", page_size=5000, page_token=page.next_page_token)
    assert len(rest.messages) == 1025 - 1000 and not rest.next_page_token


async def test_transport_limit_is_resource_exhausted(serve) -> None:
    store = MemoryStore()
    served = await serve(store=store, max_receive_bytes=1024 * 1024)
    await served.client.start("t")
    before = sum(store.request_counts.values())
    request = pb.ChatRequest(session_id="t", text="x" * (2 * 1024 * 1024))
    code, reason = await outcome(served.client.stub.Chat(request, timeout=5))
    assert (code, reason) == ("RESOURCE_EXHAUSTED", "OVERLOADED")  # no ErrorInfo: the base class
    assert sum(store.request_counts.values()) == before
    print("a 2 MiB request over --max-receive-bytes 1 MiB: RESOURCE_EXHAUSTED, 0 storage requests")


def test_lease_ttl_setting_is_validated() -> None:
    bad = ["0.1", "4000", "abc"]
    runs = [
        subprocess.Popen(
            [str(SESSIOND), "serve", "--lease-ttl-seconds", value, "--metrics-listen", ""],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=process_env(),
        )
        for value in bad
    ]
    for value, run in zip(bad, runs, strict=True):
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 2, (value, stderr)
        assert "invalid settings" in stderr and "lease_ttl_seconds" in stderr, stderr
        assert "Traceback" not in stderr
    print(f"--lease-ttl-seconds {bad}: exit 2 with a message naming lease_ttl_seconds")
