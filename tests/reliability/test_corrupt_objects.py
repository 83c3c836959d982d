"""Corrupt stored objects: a clear DATA_LOSS / FAILED_PRECONDITION for that session only.

One server writes healthy sessions (one with history packs, one hibernated
with a snapshot); an object is then damaged behind its back, and a *fresh*
replica (empty caches, as after a restart) serves every RPC that reads it.
Each answer must be ``DATA_LOSS`` (``CORRUPT_OBJECT``) or
``FAILED_PRECONDITION`` — never ``INTERNAL`` or ``UNKNOWN`` — or OK when the
RPC does not need the damaged object; the other sessions keep working; and
the damaged bytes are never overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from sessiond.client.aio import AsyncClient
from sessiond.errors import SessiondError
from sessiond.server.domain.keys import TenantKeys
from sessiond.server.storage.memory import MemoryStore
from sessiond.server.storage.port import OVERWRITE

KEYS = TenantKeys("default")
ACCEPTABLE = {"OK", "DATA_LOSS", "FAILED_PRECONDITION"}


async def code_of(call) -> str:
    try:
        await call
    except SessiondError as error:
        return error.code if error.code != "DATA_LOSS" else f"DATA_LOSS:{error.reason}"
    return "OK"


async def run_code(client: AsyncClient, sid: str, **options) -> str:
    async def turn() -> None:
        async with client.run(sid, None if options.get("resume") else "hi", **options) as run:
            await run.finish(["done"])

    return await code_of(turn())


async def drain(stream) -> None:
    async for _ in stream:
        pass


async def probe_session(client: AsyncClient, sid: str) -> dict[str, str]:
    """The outcome of every RPC that reads one session."""
    return {
        "Get": await code_of(client.get(sid)),
        "ListMessages": await code_of(client.list_messages(sid)),
        "Replay": await code_of(client.replay(sid)),
        "Chat": await code_of(client.chat(sid, "hello")),
        "Run": await run_code(client, sid),
        "Run(resume)": await run_code(client, sid, resume=True),
        "Archive": await code_of(client.archive(sid)),
        "Export": await code_of(drain(client.export(session_ids=[sid], timeout=10))),
    }


async def build_sessions(client: AsyncClient) -> None:
    """``packed`` (history in packs), ``sleepy`` (hibernated, a snapshot), ``healthy``."""
    for sid in ("packed", "sleepy", "healthy", "plain"):
        await client.start(sid)
    for n in range(20):  # more than the tail's 16 turns: older ones go to a pack
        await client.chat("packed", f"turn {n}")
    async with client.run("sleepy", "wait for me") as turn:
        await turn.hibernate(snapshot=b'{"step": 3}')
    await client.chat("plain", "hi")


def pack_key(store: MemoryStore) -> str:
    return next(k for k in store.snapshot() if "/session_packed/sessiond/packs/" in k)


def snapshot_key(store: MemoryStore) -> str:
    return next(k for k in store.snapshot() if k.endswith(".snapshot"))


def truncated(body: bytes) -> bytes:
    return body[: len(body) // 2]


def format_2(body: bytes) -> bytes:
    document = json.loads(body)
    document["format"] = 2
    return json.dumps(document).encode()


# (name, session, key of the object, new bytes or None to delete it)
Damage = tuple[str, str, Callable[[MemoryStore], str], Callable[[bytes], bytes] | None]
DAMAGES: list[Damage | object] = [
    ("truncated head", "plain", lambda s: KEYS.head("plain"), truncated),
    ("head format 2", "plain", lambda s: KEYS.head("plain"), format_2),
    ("head of another session", "plain", lambda s: KEYS.head("plain"), None),
    ("missing pack", "packed", pack_key, None),
    ("corrupt pack", "packed", pack_key, lambda body: b'{"format": 1, "turns": [{"oops"'),
    ("pack format 2", "packed", pack_key, format_2),
    pytest.param(("missing snapshot", "sleepy", snapshot_key, None), id="missing snapshot"),
]


@pytest.mark.parametrize(
    "damage",
    [d if hasattr(d, "marks") else pytest.param(d, id=d[0]) for d in DAMAGES],
)
async def test_a_corrupt_object_fails_its_session_only(serve, damage: Damage) -> None:
    name, sid, key_of, change = damage
    store = MemoryStore()
    writer = await serve(store=store)
    await build_sessions(writer.client)
    key = key_of(store)
    if name == "head of another session":
        body = store.snapshot()[KEYS.head("healthy")]
        await store.put(key, body, mode=OVERWRITE)
    elif change is None:
        await store.delete(key)
    else:
        await store.put(key, change(store.snapshot()[key]), mode=OVERWRITE)
    damaged = store.snapshot().get(key)

    replica = await serve(store=store)  # a fresh replica: nothing cached
    outcomes = await probe_session(replica.client, sid)
    print(f"{name}: {outcomes}")
    assert set(outcomes.values()) <= {*ACCEPTABLE, "DATA_LOSS:CORRUPT_OBJECT"}, outcomes
    assert "DATA_LOSS:CORRUPT_OBJECT" in outcomes.values(), "the damage must be reported"
    assert store.snapshot().get(key) == damaged, "the damaged object was overwritten"
    # Every other session keeps working, on both replicas.
    for client in (replica.client, writer.client):
        assert (await client.chat("healthy", "still fine")).text == "echo: still fine"
        assert (await client.get("packed" if sid != "packed" else "plain")).session_id


@pytest.mark.parametrize("what", ["index", "inbox"])
async def test_corrupt_tenant_objects(serve, what: str) -> None:
    """A damaged index segment fails List; a damaged inbox fails the tenant's review list."""
    store = MemoryStore()
    served = await serve(store=store)
    client = served.client
    await build_sessions(client)
    key = KEYS.index_segment(0) if what == "index" else KEYS.inbox
    if key not in store.snapshot():  # the inbox is written when reviews are first asked for
        await store.put(key, b'{"format": 1, "items": {}}', mode=OVERWRITE)
    await store.put(key, b'{"format": 1, "entr', mode=OVERWRITE)
    damaged = store.snapshot()[key]
    fresh = await serve(store=store)
    outcomes = {
        "List": await code_of(fresh.client.list()),
        "ListPendingReviews": await code_of(fresh.client.list_pending_reviews()),
        "Get": await code_of(fresh.client.get("healthy")),
        "Chat": await code_of(fresh.client.chat("healthy", "hi")),
        "Start": await code_of(fresh.client.start("newcomer")),
    }
    print(f"corrupt {what}: {outcomes}")
    assert set(outcomes.values()) <= {*ACCEPTABLE, "DATA_LOSS:CORRUPT_OBJECT"}, outcomes
    lister = "List" if what == "index" else "ListPendingReviews"
    assert outcomes[lister] == "DATA_LOSS:CORRUPT_OBJECT"
    assert outcomes["Get"] == "OK" and outcomes["Chat"] == "OK"
    if what == "index":  # new sessions go to a fresh segment
        assert outcomes["Start"] == "OK"
    assert store.snapshot()[key] == damaged, f"the damaged {what} was overwritten"
