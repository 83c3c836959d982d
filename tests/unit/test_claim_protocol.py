"""The claim protocol on the in-memory store (atomic CAS) with a manual clock.

Each test states a safety property and would fail if it broke.
"""

from __future__ import annotations

import asyncio
import random

import pytest

from sessiond.client.aio import text_message
from sessiond.errors import SessionBusy, SessionFenced
from sessiond.server.app import build_server
from sessiond.server.domain import strands
from sessiond.server.domain.clock import ManualClock
from sessiond.server.domain.content import text_message as stored_text
from sessiond.server.domain.keys import TenantKeys, parse_message_index
from sessiond.server.domain.turn_changes import TurnUpdate
from sessiond.server.domain.turn_service import OpenRequest
from sessiond.server.ops.settings import Settings
from sessiond.server.storage.memory import MemoryStore, PauseOn

KEYS = TenantKeys("default")
TTL = 30.0


class Jitter:
    """Random latency before every store request, so concurrent calls interleave."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    async def before(self, op: str, key: str) -> None:
        await asyncio.sleep(self.rng.uniform(0, 0.002))

    async def after(self, op: str, key: str) -> None:
        await asyncio.sleep(0)


def domain_for(store: MemoryStore, clock: ManualClock):
    server = build_server(
        Settings(listen="127.0.0.1:0", metrics_listen="", lease_ttl_seconds=TTL),
        store=store,
        clock=clock,
    )
    return server.servicer.domain


async def start(domain, session_id: str = "s") -> None:
    await domain.sessions.start(
        KEYS,
        session_id=session_id,
        agent_id="",
        title="",
        labels={},
        metadata={},
        parent_session_id="",
        request_id="",
        return_existing=False,
        agent_state=None,
    )


def user(text: str) -> dict:
    return stored_text("user", text)


def assistant(text: str) -> dict:
    return stored_text("assistant", text)


async def visible_texts(store: MemoryStore, clock: ManualClock) -> list[str]:
    """The history as a fresh replica (no cache) sees it, via the head."""
    fresh = domain_for(store, clock)
    _, messages = await fresh.sessions.history(KEYS, "s", "")
    return [m.message["content"][0]["text"] for m in messages]


def strands_texts(store: MemoryStore) -> list[str]:
    """The history as a Strands reader sees it: every message file, by index."""
    files = {
        parse_message_index(key): body
        for key, body in store.snapshot().items()
        if parse_message_index(key) is not None
    }
    assert sorted(files) == list(range(len(files))), "message files must be contiguous"
    return [
        strands.parse_message_file(files[i])["message"]["content"][0]["text"] for i in sorted(files)
    ]


async def test_32_concurrent_runs_exactly_one_proceeds(serve) -> None:
    store = MemoryStore()
    store.hooks.append(Jitter(7))
    served = await serve(store=store, clock=ManualClock())
    client = served.client
    await client.start("hot")
    turns = [client.run("hot", f"input {n}") for n in range(32)]
    results = await asyncio.gather(*(turn.__aenter__() for turn in turns), return_exceptions=True)
    winners = [turn for turn, result in zip(turns, results, strict=True) if result is turn]
    busy = [result for result in results if isinstance(result, SessionBusy)]
    assert len(winners) == 1
    assert len(busy) == 31
    assert all(error.lease_expire_time for error in busy)
    await winners[0].finish([text_message("assistant", "only me")])
    await winners[0].__aexit__(None, None, None)
    messages = await client.all_messages("hot")
    assert len(messages) == 2
    assert messages[1].message.content[0].text == "only me"


async def test_paused_writer_is_fenced_and_its_write_never_shows() -> None:
    store, clock = MemoryStore(), ManualClock()
    domain = domain_for(store, clock)
    await start(domain)
    a = await domain.turns.open(KEYS, OpenRequest(session_id="s", input=user("A in")))
    await a.append(TurnUpdate(messages=(assistant("A1"),)))
    pause = PauseOn("put", "message_", times=1)
    store.hooks.append(pause)
    paused = asyncio.create_task(a.append(TurnUpdate(messages=(assistant("A2"),))))
    await pause.reached.wait()
    clock.advance(TTL + 1)  # A's lease expires while it is paused
    b = await domain.turns.open(KEYS, OpenRequest(session_id="s", input=user("B in")))
    await b.finish(TurnUpdate(messages=(assistant("B1"),)))
    pause.release.set()
    with pytest.raises(SessionFenced):
        await paused
    with pytest.raises(SessionFenced):
        await a.append(TurnUpdate(messages=(assistant("A3"),)))
    expected = ["A in", "A1", "B in", "B1"]
    assert await visible_texts(store, clock) == expected
    assert strands_texts(store) == expected


async def test_fenced_writer_cleans_its_own_leftover_when_nobody_overwrote_it() -> None:
    store, clock = MemoryStore(), ManualClock()
    domain = domain_for(store, clock)
    await start(domain)
    a = await domain.turns.open(KEYS, OpenRequest(session_id="s", input=user("A in")))
    pause = PauseOn("put", "head.json", times=1)  # A's commit CAS waits
    store.hooks.append(pause)
    paused = asyncio.create_task(a.finish(TurnUpdate(messages=(assistant("A1"),))))
    await pause.reached.wait()
    clock.advance(TTL + 1)
    b = await domain.turns.open(KEYS, OpenRequest(session_id="s", input=user("B in")))
    await b.append(TurnUpdate(messages=(assistant("B1"),)))  # B's input and B1
    await b.fail("RUNTIME_FAILED", "gave up")
    pause.release.set()
    with pytest.raises(SessionFenced):
        await paused
    # A wrote message_0 and message_1 before its commit stalled; B's takeover
    # removed them and wrote its own, which A's cleanup must spare.
    assert await visible_texts(store, clock) == ["B in", "B1"]
    assert strands_texts(store) == ["B in", "B1"]


async def test_paused_renewal_loses_the_lease_and_later_writes_are_rejected() -> None:
    store, clock = MemoryStore(), ManualClock()
    domain = domain_for(store, clock)
    await start(domain)
    a = await domain.turns.open(KEYS, OpenRequest(session_id="s", input=user("A in")))
    await a.append(TurnUpdate(messages=(assistant("A1"),)))
    pause = PauseOn("put", "head.json", times=1)
    store.hooks.append(pause)
    clock.advance(TTL / 3 + 0.1)  # wakes A's renewal, which parks in the store
    await pause.reached.wait()
    clock.advance(TTL)
    b = await domain.turns.open(KEYS, OpenRequest(session_id="s", input=user("B in")))
    await b.finish(TurnUpdate(messages=(assistant("B1"),)))
    pause.release.set()
    for _ in range(100):
        if a.closed:
            break
        await asyncio.sleep(0)
    with pytest.raises(SessionFenced):
        await a.append(TurnUpdate(messages=(assistant("A2"),)))
    assert await visible_texts(store, clock) == ["A in", "A1", "B in", "B1"]


class CancelAt:
    """Cancels ``task`` at the ``at``-th store request, before or after it applies."""

    def __init__(self, at: int, applied: bool) -> None:
        self.at, self.applied, self.count = at, applied, 0
        self.task: asyncio.Task | None = None

    async def _tick(self) -> None:
        self.count += 1
        if self.count == self.at and self.task is not None:
            self.task.cancel()
            await asyncio.sleep(0)

    async def before(self, op: str, key: str) -> None:
        if not self.applied:
            await self._tick()

    async def after(self, op: str, key: str) -> None:
        if self.applied:
            await self._tick()


@pytest.mark.parametrize("seed", range(40))
async def test_cancelled_turn_leaves_a_prefix_of_acknowledged(seed: int) -> None:
    rng = random.Random(seed)
    store, clock = MemoryStore(), ManualClock()
    domain = domain_for(store, clock)
    await start(domain)
    acknowledged: list[str] = []
    attempted: list[list[str]] = []

    async def runtime() -> None:
        turn = await domain.turns.open(KEYS, OpenRequest(session_id="s", input=user("in")))
        first = True
        for batch in range(4):
            texts = [f"m{batch}.{i}" for i in range(rng.randint(1, 3))]
            attempted.append((["in"] if first else []) + texts)
            await turn.append(TurnUpdate(messages=tuple(assistant(t) for t in texts)))
            acknowledged.extend(attempted[-1])
            first = False
        attempted.append([])
        await turn.finish(TurnUpdate())

    cancel = CancelAt(at=rng.randint(1, 16), applied=rng.random() < 0.5)
    store.hooks.append(cancel)
    task = asyncio.create_task(runtime())
    cancel.task = task
    try:
        await task
    except asyncio.CancelledError:
        pass
    store.hooks.remove(cancel)
    visible = await visible_texts(store, clock)
    # Everything acknowledged is visible; at most the batch in flight was also
    # committed (its CAS applied before the cancellation reached the caller).
    allowed = [acknowledged]
    if task.cancelled() and attempted:
        allowed.append(acknowledged + attempted[-1])
    assert visible in allowed
    # Once the lease expires the next Run takes over, and the Strands files
    # match the committed history exactly (leftovers cleaned).
    clock.advance(TTL + 1)
    fresh = domain_for(store, clock)
    turn = await fresh.turns.open(KEYS, OpenRequest(session_id="s", input=user("next")))
    await turn.finish(TurnUpdate(messages=(assistant("ok"),)))
    assert await visible_texts(store, clock) == [*visible, "next", "ok"]
    assert strands_texts(store) == [*visible, "next", "ok"]


async def test_retried_mutations_apply_once() -> None:
    store, clock = MemoryStore(), ManualClock()
    domain = domain_for(store, clock)
    await start(domain)
    first = await domain.turns.chat(
        KEYS,
        session_id="s",
        agent_id="",
        text="hi",
        engine="",
        checkpoint="NONE",
        request_id="r-1",
    )
    again = await domain.turns.chat(
        KEYS,
        session_id="s",
        agent_id="",
        text="hi",
        engine="",
        checkpoint="NONE",
        request_id="r-1",
    )
    assert again.turn.turn_id == first.turn.turn_id
    assert [m.message for m in again.turn.messages] == [m.message for m in first.turn.messages]
    view = await domain.sessions.get(KEYS, "s")
    assert view.turn_count == 1 and view.message_count == 2
    for _ in range(2):
        view = await domain.sessions.set_archived(
            KEYS, session_id="s", archived=True, etag="", request_id="a-1"
        )
    assert view.archived


async def test_concurrent_chats_with_one_request_id_apply_once() -> None:
    store, clock = MemoryStore(), ManualClock()
    store.hooks.append(Jitter(3))
    domain = domain_for(store, clock)
    await start(domain)

    async def chat():
        return await domain.turns.chat(
            KEYS,
            session_id="s",
            agent_id="",
            text="hi",
            engine="",
            checkpoint="NONE",
            request_id="same",
        )

    results = await asyncio.gather(*(chat() for _ in range(8)), return_exceptions=True)
    done = [r for r in results if not isinstance(r, BaseException)]
    assert all(isinstance(r, SessionBusy) for r in results if isinstance(r, BaseException))
    assert {r.turn.turn_id for r in done} == {"t000001"}
    view = await domain.sessions.get(KEYS, "s")
    assert view.turn_count == 1 and view.message_count == 2
