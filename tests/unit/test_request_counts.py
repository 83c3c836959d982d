"""Object-store requests per operation, counted exactly on the in-memory store.

These are the request budgets of docs/performance.md (issue 8), asserted by
type. Latency is never asserted here (the benchmark in ``bench/`` measures
it); what is asserted is how many requests an operation makes and how many of
them must wait for one another ("sequential depth"), which is what latency is
made of on a remote store.

Sequential depth is measured with a hook that holds every request for a few
milliseconds and records when it started and when it completed: the depth is
the longest chain of requests each of which started after the previous one
completed. Requests issued together (``asyncio.gather``) all start before any
of them completes, whatever the machine's load, so the figure is exact.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import pytest

from sessiond.client.aio import AsyncClient
from sessiond.server.domain.index import IndexRefresher
from sessiond.server.storage.memory import MemoryStore
from sessiond.v1 import turn_pb2
from support.servers import Serve, Served

#: Seconds each request is held while depth is being recorded.
HOLD = 0.01


@dataclass
class Recorder:
    """A MemoryStore hook recording (op, start, end) of each request while active."""

    active: bool = False
    requests: list[tuple[str, float, float]] = field(default_factory=list)

    async def before(self, op: str, key: str) -> None:
        """Holds the request and records its interval (the store applies it right after)."""
        if not self.active:
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        await asyncio.sleep(HOLD)
        self.requests.append((op, start, loop.time()))

    async def after(self, op: str, key: str) -> None:
        """Nothing to do."""

    def depth(self) -> int:
        """The longest chain of requests, each started after the previous one completed."""
        ordered = sorted(self.requests, key=lambda r: r[1])
        chain: list[int] = []
        for i, (_, start, _) in enumerate(ordered):
            before = [chain[j] for j in range(i) if ordered[j][2] <= start]
            chain.append(1 + max(before, default=0))
        return max(chain, default=0)


@dataclass
class Meter:
    """Counts the requests of one operation by type, and its sequential depth."""

    store: MemoryStore
    recorder: Recorder

    async def measure(self, operation) -> tuple[dict[str, int], int]:
        """Runs ``await operation()``; returns (requests by type, sequential depth)."""
        before = Counter(self.store.request_counts)
        self.recorder.requests.clear()
        self.recorder.active = True
        try:
            await operation()
        finally:
            self.recorder.active = False
        counts = Counter(self.store.request_counts)
        counts.subtract(before)
        return {op: n for op, n in sorted(counts.items()) if n}, self.recorder.depth()

    async def count(self, operation) -> dict[str, int]:
        """Requests by type of ``await operation()`` (no holding: fast)."""
        before = Counter(self.store.request_counts)
        await operation()
        counts = Counter(self.store.request_counts)
        counts.subtract(before)
        return {op: n for op, n in sorted(counts.items()) if n}


async def replica(serve: Serve, store: MemoryStore, **settings) -> Served:
    """A server (a replica with its own caches) on ``store``.

    The List-count refresher's background flush is pushed out of the way so it
    never lands inside a measurement; tests that want it call ``flush()``.
    """
    options = {"health_check_interval_seconds": 3600.0, **settings}
    served = await serve(store=store, **options)
    context = served.server.context
    context.refresher = IndexRefresher(context.index, delay=3600.0)
    return served


@pytest.fixture
def store() -> MemoryStore:
    """The shared in-memory store, with the recording hook installed."""
    memory = MemoryStore()
    memory.hooks.append(Recorder())
    return memory


@pytest.fixture
def meter(store: MemoryStore) -> Meter:
    """Measures operations on ``store``."""
    recorder = store.hooks[0]
    assert isinstance(recorder, Recorder)
    return Meter(store, recorder)


async def grow(client: AsyncClient, session_id: str, messages: int, per_turn: int = 10) -> None:
    """Adds ``messages`` messages in Run turns of ``per_turn`` (the input plus replies)."""
    added = 0
    while added < messages:
        replies = min(per_turn, messages - added) - 1
        async with client.run(session_id, f"question {added}", history_limit=1) as turn:
            await turn.finish([f"answer {added} part {i}" for i in range(replies)])
        added += replies + 1


async def restore(client: AsyncClient, session_id: str) -> int:
    """A Run turn's open on ``client``'s replica: claim + whole history; returns its length."""
    async with client.run(session_id, "one more") as turn:
        length = len(turn.history)
        await turn.finish(["ok"])
    return length


# -- turns ------------------------------------------------------------------------


async def test_warm_chat_turn_is_three_puts_two_sequential(serve: Serve, store, meter) -> None:
    served = await replica(serve, store)
    client = served.client
    await client.start("chat")
    await client.chat("chat", "first turn")  # NEW -> FINISHED: writes the listing entry once

    counts, depth = await meter.measure(lambda: client.chat("chat", "a plain turn"))

    # Both message files in parallel, then the head's compare-and-swap; no claim
    # (the optimistic path), no GET (the cached head's ETag is the CAS condition).
    assert counts == {"put": 3}
    assert depth == 2


async def test_run_turn_is_claim_then_commit(serve: Serve, store, meter) -> None:
    served = await replica(serve, store)
    client = served.client
    await client.start("run")
    await client.chat("run", "first turn")

    async def turn() -> None:
        async with client.run("run", "question") as run:
            assert len(run.history) == 2
            await run.finish(["answer"])

    counts, depth = await meter.measure(turn)

    # Claim CAS; the input and the reply in parallel; commit CAS (warm: packs
    # and head cached, history restored without a request).
    assert counts == {"put": 4}
    assert depth == 3


async def test_adopt_on_claim_adds_one_parallel_get(serve: Serve, store, meter) -> None:
    served = await replica(serve, store, adopt_on_claim=True)
    client = served.client
    await client.start("probe")
    await client.chat("probe", "first turn")

    async def turn() -> None:
        async with client.run("probe", "question") as run:
            await run.finish(["answer"])

    counts, depth = await meter.measure(turn)

    # The GET of message_<count> (a 404: nothing appended) rides beside the
    # claim CAS: one request more, no round trip more.
    assert counts == {"get": 1, "put": 4}
    assert depth == 3


async def test_plain_turns_meet_the_issue_budget(serve: Serve, store, meter) -> None:
    """At most 5 requests per plain turn, claim included, at most 3 sequential."""
    served = await replica(serve, store)
    client = served.client
    await client.start("budget")
    await client.chat("budget", "first")
    for number in range(3):
        chat = await meter.measure(lambda n=number: client.chat("budget", f"chat {n}"))

        async def run(n: int = number) -> None:
            async with client.run("budget", f"run {n}") as turn:
                await turn.finish([f"reply {n}"])

        ran = await meter.measure(run)
        for counts, depth in (chat, ran):
            assert sum(counts.values()) <= 5
            assert depth <= 3


async def test_first_turn_of_a_session_meets_the_budget(serve: Serve, store, meter) -> None:
    served = await replica(serve, store)
    await served.client.start("first")

    counts, depth = await meter.measure(lambda: served.client.chat("first", "hello"))

    # The status goes NEW -> FINISHED, a listed field: 2 message files + the
    # head CAS + one index segment CAS (GET + PUT). Start recorded that there
    # are no reviews, so the inbox is not read.
    assert counts == {"get": 1, "put": 4}
    assert depth == 3


async def test_list_counts_refresh_is_one_cas_per_segment(serve: Serve, store, meter) -> None:
    """Plain turns write no index entry; one flush later updates them all."""
    served = await replica(serve, store)
    client = served.client
    for number in range(8):
        await client.start(f"r{number}")
        await client.chat(f"r{number}", "first")
    for _ in range(3):
        for number in range(8):
            await client.chat(f"r{number}", "again")

    counts = await meter.count(served.server.context.refresher.flush)

    assert counts == {"get": 1, "put": 1}  # 24 turns, one segment
    page = await client.list(page_size=8)
    assert {s.message_count for s in page.sessions} == {8}


# -- restore ----------------------------------------------------------------------


@pytest.mark.parametrize(("messages", "budget"), [(100, 12), (1_000, 12)])
async def test_cold_restore_is_a_few_requests(
    serve: Serve, store, meter, messages: int, budget: int
) -> None:
    writer = await replica(serve, store)
    await writer.client.start("long")
    await grow(writer.client, "long", messages)
    cold = await replica(serve, store)  # a replica that never saw the session

    counts = await meter.count(lambda: restore(cold.client, "long"))

    # Measured to the end of the turn: the head, the claim, the packs in
    # parallel, then the commit of the input and the reply (3 more PUTs).
    restore_only = {**counts, "put": counts["put"] - 3}
    assert restore_only["put"] == 1  # the claim
    assert sum(restore_only.values()) <= budget, restore_only


@pytest.mark.slow
async def test_cold_restore_of_10000_messages_is_at_most_40_requests(
    serve: Serve, store, meter
) -> None:
    writer = await replica(serve, store)
    await writer.client.start("longer")
    await grow(writer.client, "longer", 10_000, per_turn=128)
    cold = await replica(serve, store)

    async def opened() -> None:
        async with cold.client.run("longer", "one more", history_limit=1) as turn:
            assert turn.started.session.message_count == 10_000  # the input is committed later
            await turn.finish(["ok"])

    counts = await meter.count(opened)

    restore_only = {**counts, "put": counts["put"] - 3}
    assert sum(restore_only.values()) <= 40, restore_only


async def test_cold_restore_depth_is_three(serve: Serve, store, meter) -> None:
    writer = await replica(serve, store)
    await writer.client.start("deep")
    await grow(writer.client, "deep", 1_000)
    cold = await replica(serve, store)

    async def opened() -> None:
        async with cold.client.run("deep", "one more") as turn:
            assert len(turn.history) == 1_000
            meter.recorder.active = False  # the finish is not part of the restore
            await turn.finish(["ok"])

    _, depth = await meter.measure(opened)

    # GET head -> claim CAS -> all packs in parallel.
    restored = Counter(op for op, _, _ in meter.recorder.requests)
    assert restored["put"] == 1 and restored["get"] >= 2
    assert depth == 3


async def test_warm_restore_is_one_request(serve: Serve, store, meter) -> None:
    writer = await replica(serve, store)
    client = writer.client
    await client.start("warm")
    await grow(client, "warm", 1_000)
    reader = await replica(serve, store)
    await reader.client.list_messages("warm", page_size=1000)  # caches head and packs

    get = await meter.count(lambda: reader.client.get("warm"))
    history = await meter.count(lambda: reader.client.list_messages("warm", page_size=1000))

    # A conditional GET of the head answered "not modified"; packs are immutable.
    assert get == {"get": 1}
    assert history == {"get": 1}
    assert store.request_counts["get"] > 0
    opened = await meter.count(lambda: restore(client, "warm"))
    # On the writer's replica a Run's claim CAS doubles as the validation: the
    # claim, then the commit of input and reply (3).
    assert opened == {"put": 4}


# -- listing ----------------------------------------------------------------------


async def test_list_page_reads_the_index_not_the_sessions(serve: Serve, store, meter) -> None:
    writer = await replica(serve, store, index_segment_capacity=64)
    for number in range(600):
        await writer.client.start(f"s{number:04d}", labels={"n": str(number % 3)})
    reader = await replica(serve, store, index_segment_capacity=64)
    # The first List of a replica looks for sessions only Strands wrote: a
    # LIST of the session prefixes, a LIST of the index and a GET of every
    # segment (10); then the page itself (a LIST and the newest segment).
    discovery = await meter.count(lambda: reader.client.list(page_size=1))
    assert discovery == {"get": 11, "list": 3}

    first = await meter.count(lambda: reader.client.list(page_size=100))
    page = await reader.client.list(page_size=100)
    following = await meter.count(
        lambda: reader.client.list(page_size=100, page_token=page.next_page_token)
    )

    # A LIST for the newest segment, then one GET per segment the page spans
    # (segments of 64 here; the newest holds 24: 24 + 64 + 12, then 52 + 48).
    # A page reads at most 4 segments, so it never exceeds 5 requests.
    assert first == {"get": 3, "list": 1}
    assert following == {"get": 2}
    for counts in (first, following):
        assert sum(counts.values()) <= 5
    assert len(page.sessions) == 100 and page.sessions[0].session_id == "s0599"


async def test_pending_reviews_page_is_one_get(serve: Serve, store, meter) -> None:
    writer = await replica(serve, store)
    client = writer.client
    for number in range(40):
        sid = f"w{number:03d}"
        await client.start(sid)
        if number % 4 == 0:
            async with client.run(sid, "delete it") as turn:
                await turn.hibernate(
                    reviews=[
                        turn_pb2.ReviewRequest(
                            review_id=f"rv{number}", tool_name="rm", input_json='{"path": "/x"}'
                        )
                    ]
                )
    reader = await replica(serve, store)

    first = await meter.count(lambda: reader.client.list_pending_reviews(page_size=4))
    page = await reader.client.list_pending_reviews(page_size=4)
    following = await meter.count(
        lambda: reader.client.list_pending_reviews(page_size=4, page_token=page.next_page_token)
    )

    assert first == {"get": 1}  # the tenant's inbox
    assert following == {"get": 1}
    assert len(page.reviews) == 4 and page.next_page_token


async def test_sessions_started_together_share_their_index_writes(
    serve: Serve, store, meter
) -> None:
    """Starts and first turns at once: their shared index segment is written in batches.

    Every new session of a replica goes to the same segment, and Start and the
    first turn (NEW -> FINISHED) both write its entry. Fought over one CAS at
    a time, that cost ~80 requests per session with 64 sessions; batched (one
    CAS per segment for every change waiting), the index adds about one
    request per session.
    """
    served = await replica(serve, store)
    ids = [f"together-{i:02d}" for i in range(32)]

    async def start_and_chat(session_id: str) -> None:
        await served.client.start(session_id)
        await served.client.chat(session_id, "hello")

    counts, _ = await meter.measure(lambda: asyncio.gather(*map(start_and_chat, ids)))

    # Start: head, session.json, agent.json (PUTs) and a LIST; first turn: 3 PUTs;
    # the index: a few GET + PUT cycles for all of them (41 per session unbatched).
    assert sum(counts.values()) / len(ids) <= 9, counts
    assert counts.get("head", 0) == 0, counts  # no refused write to resolve
