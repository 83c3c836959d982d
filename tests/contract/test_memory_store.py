"""MemoryStore specifics: atomicity under interleaving, fault hooks, exact counts."""

from __future__ import annotations

import asyncio
import random

import pytest

from sessiond.server.storage.memory import FailNext, MemoryStore, PauseOn
from sessiond.server.storage.port import (
    CREATE,
    AlreadyExists,
    AmbiguousWrite,
    NotFound,
    PreconditionFailed,
    StoreUnavailable,
    Update,
)


class Shuffle:
    """A hook that yields to the loop a random number of times before each request."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    async def before(self, op: str, key: str) -> None:
        for _ in range(self.rng.randrange(4)):
            await asyncio.sleep(0)

    async def after(self, op: str, key: str) -> None:
        await asyncio.sleep(0)


@pytest.mark.parametrize("seed", range(5))
async def test_64_concurrent_creates_and_cas_have_one_winner(seed: int) -> None:
    store = MemoryStore()
    store.hooks.append(Shuffle(seed))
    results = await asyncio.gather(
        *(store.put("claim", f"{i}".encode(), mode=CREATE) for i in range(64)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if r not in winners)

    base = winners[0]
    results = await asyncio.gather(
        *(store.put("claim", f"cas {i}".encode(), mode=Update(base.etag)) for i in range(64)),
        return_exceptions=True,
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, PreconditionFailed) for r in results if r not in winners)
    assert store.request_counts["put"] == 128


async def test_fail_next_before_applies_nothing() -> None:
    store = MemoryStore()
    hook = FailNext("put", "sessions/", times=2)
    store.hooks.append(hook)
    for _ in range(2):
        with pytest.raises(StoreUnavailable):
            await store.put("sessions/a", b"x", mode=CREATE)
    assert store.snapshot() == {}
    await store.put("other", b"y", mode=CREATE)  # key does not match
    await store.put("sessions/a", b"x", mode=CREATE)
    assert store.snapshot() == {"other": b"y", "sessions/a": b"x"}
    assert hook.fired == 2
    assert store.request_counts["put"] == 4


async def test_fail_next_after_models_a_lost_response() -> None:
    seen: list[tuple[str, str]] = []
    store = MemoryStore(observer=lambda op, outcome: seen.append((op, outcome)))
    store.hooks.append(FailNext("put", "", lambda: AmbiguousWrite("lost"), after=True))
    with pytest.raises(AmbiguousWrite):
        await store.put("k", b"applied", mode=CREATE)
    assert store.snapshot() == {"k": b"applied"}
    assert (await store.get("k")).body == b"applied"
    assert seen == [("put", "error"), ("get", "ok")]


async def test_fail_next_any_op() -> None:
    store = MemoryStore()
    store.hooks.append(FailNext("*", "k", StoreUnavailable("down"), times=3))
    for call in (store.head("k"), store.list("k"), store.delete("k")):
        with pytest.raises(StoreUnavailable):
            await call
    with pytest.raises(NotFound):
        await store.get("k")


async def test_pause_on_lets_a_competitor_win() -> None:
    store = MemoryStore()
    pause = PauseOn("put", "claim")
    store.hooks.append(pause)
    slow = asyncio.create_task(store.put("claim", b"slow", mode=CREATE))
    await pause.reached.wait()
    await store.put("claim", b"fast", mode=CREATE)  # times=1: not paused
    pause.release.set()
    with pytest.raises(AlreadyExists):
        await slow
    assert store.snapshot() == {"claim": b"fast"}


async def test_snapshot_is_a_copy_and_counts_are_exact() -> None:
    store = MemoryStore()
    await store.put("a", b"1", mode=CREATE)
    snap = store.snapshot()
    snap["b"] = b"2"
    assert store.snapshot() == {"a": b"1"}
    await store.get("a")
    await store.list("")
    with pytest.raises(NotFound):
        await store.head("b")
    assert dict(store.request_counts) == {"put": 1, "get": 1, "list": 1, "head": 1}
