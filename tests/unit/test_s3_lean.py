"""The lean GET/PUT path of the S3 adapter: used with an endpoint, failures classified as the SDK's.

The object-store contract suite runs against both S3 paths ("s3" and
"s3-sdk"); ``test_s3_retries`` injects faults through the client's
``before-send`` hooks, which the lean path emits too. These tests check that
the lean path is really the one taking GET and PUT, and how it reports
transport failures no hook can fake: a refused connection (certainly not
applied) and a connection dropped after the request was sent (maybe applied).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import Counter
from typing import Any

import pytest

from sessiond.server.storage.port import CREATE, AmbiguousWrite, StoreUnavailable
from sessiond.server.storage.retry import RetryPolicy
from sessiond.server.storage.s3 import S3Store
from support.moto import MOTO_CREDENTIALS, MakeS3Store


def _count_events(store: S3Store) -> Counter[str]:
    seen: Counter[str] = Counter()

    def record(event_name: str, **_: Any) -> None:
        seen[event_name] += 1

    for event in ("before-call.s3", "before-send.s3"):
        store.client.meta.events.register(event, record)
    return seen


@pytest.mark.parametrize("lean", [True, False])
async def test_get_and_put_bypass_the_sdk_call_only_on_the_lean_path(
    make_s3_store: MakeS3Store, lean: bool
) -> None:
    store = await make_s3_store(probe=False, lean_requests=lean)
    seen = _count_events(store)

    await store.put("k", b"body", mode=CREATE)
    got = await store.get("k")

    assert got.body == b"body" and got.meta.put_id  # metadata read back
    # Both paths send (and emit before-send); only the SDK makes an API call.
    assert seen["before-send.s3.PutObject"] == 1 and seen["before-send.s3.GetObject"] == 1
    sdk_calls = seen["before-call.s3.PutObject"] + seen["before-call.s3.GetObject"]
    assert sdk_calls == (0 if lean else 2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _store(endpoint: str) -> S3Store:
    store = S3Store(
        "bucket",
        endpoint_url=endpoint,
        probe=False,
        connect_timeout=1.0,
        read_timeout=1.0,
        retry=RetryPolicy(max_attempts=2, base_delay=0.001, max_delay=0.002),
        **MOTO_CREDENTIALS,
    )
    await store.start()
    return store


async def test_a_refused_connection_is_unavailable_and_never_ambiguous() -> None:
    store = await _store(f"http://127.0.0.1:{_free_port()}")
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await store.put("k", b"x", mode=CREATE)
        assert not isinstance(raised.value, AmbiguousWrite)
        assert store.request_counts == {"put": 2}  # retried; no HEAD to resolve anything
    finally:
        await store.close()


async def test_a_connection_dropped_after_sending_is_ambiguous() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            await reader.readuntil(b"\r\n\r\n")  # the request arrived ...
        writer.close()  # ... and the connection went before any answer

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    store = await _store(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(AmbiguousWrite):
            await store.put("k", b"x", mode=CREATE)
        # Retried, then a HEAD looked for our put-id (and failed the same way).
        assert store.request_counts["put"] == 2 and store.request_counts["head"] >= 1
    finally:
        await store.close()
        server.close()
        await server.wait_closed()
