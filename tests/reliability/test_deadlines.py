"""Deadlines propagate: a 200 ms call on a store answering in 1 s ends promptly, leaves no trace.

The server runs each unary handler under the caller's deadline (less a small
margin, ``api/calls.py``), so it stops waiting for the store and answers
``DEADLINE_EXCEEDED`` itself. What a cancelled turn may leave behind are
files no reader trusts (message files beyond the head's count); the head and
the history must be unchanged, and the next turn must work.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import generate_latest

from sessiond.errors import DeadlineExceeded
from sessiond.server.domain.keys import TenantKeys
from sessiond.server.storage.memory import MemoryStore
from support.latency_proxy import LatencyProxy
from support.moto import MakeS3Store

KEYS = TenantKeys("default")
STORE_SECONDS = 1.0
DEADLINE = 0.2


class SlowPuts:
    """Makes every PUT take ``STORE_SECONDS``, before or after it applies (while ``on``)."""

    def __init__(self, *, after: bool) -> None:
        self.on = False
        self.when_after = after
        self.parked = 0

    async def _wait(self, op: str) -> None:
        if self.on and op == "put":
            self.parked += 1
            await asyncio.sleep(STORE_SECONDS)

    async def before(self, op: str, key: str) -> None:
        if not self.when_after:
            await self._wait(op)

    async def after(self, op: str, key: str) -> None:
        if self.when_after:
            await self._wait(op)


def texts(messages) -> list[str]:
    return [m.message.content[0].text for m in messages]


def server_codes(served) -> str:
    return generate_latest(served.server.metrics.registry).decode()


async def timed_chat(client, sid: str, text: str) -> tuple[type[Exception] | None, float]:
    started = time.monotonic()
    try:
        await client.chat(sid, text, timeout=DEADLINE)
        error = None
    except DeadlineExceeded as caught:
        error = type(caught)
    return error, time.monotonic() - started


@pytest.mark.parametrize("after", [False, True], ids=["before-apply", "after-apply"])
async def test_chat_deadline_on_a_slow_memory_store(serve, after: bool) -> None:
    store = MemoryStore()
    slow = SlowPuts(after=after)
    store.hooks.append(slow)
    served = await serve(store=store, lease_ttl_seconds=2)
    client = served.client
    await client.start("d")
    await client.chat("d", "before")
    head_key = KEYS.head("d")
    before = store.snapshot()

    slow.on = True
    error, elapsed = await timed_chat(client, "d", "late")
    assert error is DeadlineExceeded
    assert elapsed < DEADLINE + 0.15, f"DEADLINE_EXCEEDED after {elapsed:.3f}s"
    expected = (
        'sessiond_rpc_requests_total{code="DEADLINE_EXCEEDED",method="Chat",'
        'reason="DEADLINE_EXCEEDED"} 1.0'
    )
    assert expected in (server_codes(served)), (
        "the server itself ended the call with DEADLINE_EXCEEDED"
    )
    await asyncio.sleep(STORE_SECONDS + 0.2)  # anything parked has now applied or not
    slow.on = False
    after_snapshot = store.snapshot()
    assert after_snapshot[head_key] == before[head_key], "the head was not touched"
    leftovers = sorted(set(after_snapshot) - set(before))
    if not after:
        assert after_snapshot == before, "a cancelled write before applying leaves nothing"
    else:  # only files readers ignore: message files beyond the head's count
        assert all("/messages/message_" in key for key in leftovers), leftovers
    assert texts(await client.all_messages("d")) == ["before", "echo: before"]

    reply = await client.chat("d", "next")
    assert reply.text == "echo: next"
    stored = texts(await client.all_messages("d"))
    assert stored == ["before", "echo: before", "next", "echo: next"]
    files = sorted(k for k in store.snapshot() if "/messages/" in k)
    assert len(files) == len(stored), "orphans were replaced by the next turn's files"
    print(
        f"Chat, {DEADLINE * 1000:.0f} ms deadline, puts taking {STORE_SECONDS}s "
        f"({'after' if after else 'before'} applying): DEADLINE_EXCEEDED after "
        f"{elapsed * 1000:.0f} ms (server-side), {slow.parked} puts cut short, head unchanged, "
        f"{len(leftovers)} ignored leftover files, next Chat OK"
    )


async def test_run_stream_deadline_releases_the_lease(serve) -> None:
    """Streams are cut by gRPC at the deadline; the turn is released (or its lease expires)."""
    store = MemoryStore()
    slow = SlowPuts(after=False)
    store.hooks.append(slow)
    served = await serve(store=store, lease_ttl_seconds=2)
    client = served.client
    await client.start("r")
    turn = client.run("r", "in", timeout=0.5)
    await turn.__aenter__()
    slow.on = True
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await turn.append(["slow append"])
    elapsed = time.monotonic() - started
    await turn.__aexit__(None, None, None)
    slow.on = False
    released_after = None
    for _ in range(60):
        if not (await client.get("r")).HasField("lease"):
            released_after = time.monotonic() - started
            break
        await asyncio.sleep(0.05)
    assert released_after is not None and released_after < 2.5
    assert texts(await client.all_messages("r")) == []  # nothing was acknowledged
    async with client.run("r", "again") as again:
        await again.finish(["done"])
    assert texts(await client.all_messages("r")) == ["again", "done"]
    print(
        f"Run stream with a 0.5 s deadline and 1 s puts: DEADLINE_EXCEEDED after "
        f"{elapsed:.2f}s, lease released {released_after:.2f}s after the append, next Run OK"
    )


async def test_chat_deadline_on_s3_through_a_slow_proxy(
    serve, make_s3_store: MakeS3Store, moto_endpoint: str
) -> None:
    """The same on the real S3 path: PUTs held 1 s by a proxy in front of moto."""
    with LatencyProxy(moto_endpoint) as proxy:
        store = await make_s3_store(prefix="deadline", endpoint_url=proxy.url)
        served = await serve(store=store, lease_ttl_seconds=2)
        client = served.client
        await client.start("s3d")
        await client.chat("s3d", "before")
        head_before = (await store.get(KEYS.head("s3d"))).body
        proxy.delay = lambda method, path: STORE_SECONDS if method == "PUT" else 0.0
        error, elapsed = await timed_chat(client, "s3d", "late")
        await asyncio.sleep(STORE_SECONDS + 0.3)  # the held PUTs reach moto now
        proxy.delay = lambda method, path: 0.0
        assert error is DeadlineExceeded
        assert elapsed < DEADLINE + 0.15
        assert (await store.get(KEYS.head("s3d"))).body == head_before
        assert texts(await client.all_messages("s3d")) == ["before", "echo: before"]
        reply = await client.chat("s3d", "next")
        assert reply.text == "echo: next"
        stored = texts(await client.all_messages("s3d"))
        assert stored == ["before", "echo: before", "next", "echo: next"]
        files = await store.list_all(KEYS.messages_prefix("s3d", "default"))
        assert len(files) == len(stored)
        print(
            f"S3 (moto behind a proxy holding PUTs {STORE_SECONDS}s): Chat with a "
            f"{DEADLINE * 1000:.0f} ms deadline -> DEADLINE_EXCEEDED after "
            f"{elapsed * 1000:.0f} ms; the late PUTs landed, head and history unchanged; "
            "next Chat OK, files = messages"
        )
