"""Turns under storage faults: nothing acknowledged lost, nothing duplicated.

A seeded fault-injecting store (``storage.faults``) sits under the server;
every figure is printed, and the seed is in every injected error. Each test
would fail if the property broke.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from sessiond.client.aio import AsyncClient
from sessiond.errors import Aborted, CommitUnknown, SessiondError, Unavailable
from sessiond.server.storage.faults import FaultInjectingStore, FaultRates
from sessiond.server.storage.memory import MemoryStore

SESSIONS = 20


async def drive(client: AsyncClient, turns: int, *, seed: int) -> dict:
    """Runs ``turns`` Chat turns over ``SESSIONS`` sessions; retries COMMIT_UNKNOWN once.

    Returns the acknowledged inputs by session and the inputs of turns
    reported failed (a definite error, not COMMIT_UNKNOWN): those must never
    be visible.
    """
    rng = random.Random(seed)
    acknowledged: dict[str, list[str]] = {f"f{n}": [] for n in range(SESSIONS)}
    failed: set[str] = set()
    outcomes: Counter[str] = Counter()
    for sid in acknowledged:
        while True:
            try:
                await client.start(sid, request_id=f"start-{sid}")
                break
            except (Unavailable, Aborted):
                continue
    for number in range(turns):
        sid = f"f{rng.randrange(SESSIONS)}"
        text = f"m{number}"
        request_id = f"r{number}"
        try:
            reply = await client.chat(sid, text, request_id=request_id)
        except CommitUnknown:
            outcomes["commit_unknown"] += 1
            try:  # the retry with the same request id applies at most once
                reply = await client.chat(sid, text, request_id=request_id)
            except SessiondError as error:
                outcomes[f"retry_failed:{error.code}"] += 1
                if not isinstance(error, CommitUnknown):
                    failed.add(text)
                continue
        except SessiondError as error:
            outcomes[error.code] += 1
            failed.add(text)
            continue
        assert reply.text == f"echo: {text}"
        acknowledged[sid].append(text)
        outcomes["ok"] += 1
    return {"acknowledged": acknowledged, "failed": failed, "outcomes": outcomes}


async def check_history(
    client: AsyncClient, acknowledged: dict[str, list[str]], failed: set[str]
) -> dict:
    lost = duplicated = visible_failed = 0
    for sid, texts in acknowledged.items():
        messages = await client.all_messages(sid)
        inputs = [m.message.content[0].text for m in messages if m.message.role == 1]
        counts = Counter(inputs)
        lost += sum(1 for text in texts if counts[text] == 0)
        duplicated += sum(1 for count in counts.values() if count > 1)
        visible_failed += sum(1 for text in inputs if text in failed)
    return {"lost": lost, "duplicated": duplicated, "visible_failed": visible_failed}


@pytest.mark.parametrize("seed", [11])
async def test_2000_turns_with_503s_and_resets(serve, seed: int) -> None:
    faulty = FaultInjectingStore(
        MemoryStore(), seed=seed, rates=FaultRates(slowdown=0.05, reset=0.01)
    )
    served = await serve(store=faulty)
    result = await drive(served.client, 2000, seed=seed)
    faulty.enabled = False
    history = await check_history(served.client, result["acknowledged"], result["failed"])
    outcomes = result["outcomes"]
    print(f"seed {seed}: {dict(outcomes)}, injected {dict(faulty.injected)}, {history}")
    assert history == {"lost": 0, "duplicated": 0, "visible_failed": 0}
    assert outcomes["ok"] / 2000 >= 0.99
    assert set(outcomes) <= {"ok", "UNAVAILABLE", "ABORTED", "commit_unknown"}


@pytest.mark.parametrize("seed", [23])
async def test_2000_turns_with_ambiguous_writes(serve, seed: int) -> None:
    faulty = FaultInjectingStore(MemoryStore(), seed=seed, rates=FaultRates(ambiguous=0.05))
    served = await serve(store=faulty)
    result = await drive(served.client, 2000, seed=seed)
    faulty.enabled = False
    history = await check_history(served.client, result["acknowledged"], result["failed"])
    outcomes = result["outcomes"]
    print(f"seed {seed}: {dict(outcomes)}, injected {dict(faulty.injected)}, {history}")
    # No acknowledged turn lost, none applied twice (a retried request id
    # returns the original), and our own writes were never taken for
    # someone else's: no ABORTED at all with a single writer per session.
    assert history == {"lost": 0, "duplicated": 0, "visible_failed": 0}
    assert "ABORTED" not in outcomes
    assert set(outcomes) <= {"ok", "UNAVAILABLE", "commit_unknown", "retry_failed:UNAVAILABLE"}
    assert outcomes["ok"] / 2000 >= 0.99


@pytest.mark.parametrize("seed", [29])
async def test_ambiguous_writes_without_client_retries(serve, seed: int) -> None:
    """Failures reach the caller (no transparent retry): none reported failed is visible.

    At 5% the server's own retries hide every fault, so this run uses 20%
    ambiguous writes plus 10% 503s to make some turns fail for real.
    """
    rates = FaultRates(ambiguous=0.2, slowdown=0.1)
    faulty = FaultInjectingStore(MemoryStore(), seed=seed, rates=rates)
    served = await serve(store=faulty)
    async with AsyncClient(served.target, retries=False) as bare:
        result = await drive(bare, 2000, seed=seed)
    faulty.enabled = False
    history = await check_history(served.client, result["acknowledged"], result["failed"])
    outcomes = result["outcomes"]
    print(f"seed {seed}, no client retries: {dict(outcomes)}, {dict(faulty.injected)}, {history}")
    assert result["failed"], "the fault rate should make some turns fail"
    assert history == {"lost": 0, "duplicated": 0, "visible_failed": 0}
    assert "ABORTED" not in outcomes


async def test_a_failed_write_is_never_visible(serve) -> None:
    """A turn reported failed leaves no trace in the history."""
    faulty = FaultInjectingStore(MemoryStore(), seed=5, rates=FaultRates(slowdown=0.4))
    served = await serve(store=faulty)
    faulty.enabled = False
    await served.client.start("x")
    faulty.enabled = True
    failed, succeeded = [], []
    for number in range(200):
        try:
            await served.client.chat("x", f"t{number}", request_id=f"q{number}")
            succeeded.append(f"t{number}")
        except (Unavailable, Aborted):
            failed.append(f"t{number}")
    faulty.enabled = False
    inputs = [
        m.message.content[0].text
        for m in await served.client.all_messages("x")
        if m.message.role == 1
    ]
    print(f"200 turns at 40% 503: {len(succeeded)} ok, {len(failed)} failed")
    assert failed, "the fault rate should make some turns fail"
    assert inputs == succeeded
    assert not set(inputs) & set(failed)


async def test_linearizable_history_under_8_concurrent_writers(serve) -> None:
    """Every acknowledged append appears exactly once, in an order consistent with real time."""
    faulty = FaultInjectingStore(MemoryStore(), seed=99, rates=FaultRates(latency=(0.0, 0.004)))
    served = await serve(store=faulty)
    await served.client.start("lin")
    loop = asyncio.get_running_loop()
    spans: dict[str, tuple[float, float]] = {}
    rejected: list[str] = []

    async def writer(number: int) -> None:
        client = AsyncClient(served.target)
        rng = random.Random(number)
        try:
            for step in range(25):
                # Each attempt is its own append; one that is refused
                # (ABORTED: another writer holds the session) must never show.
                for attempt in range(40):
                    text = f"w{number}.{step}.{attempt}"
                    started = loop.time()
                    try:
                        await client.chat("lin", text)
                    except Aborted:
                        rejected.append(text)
                        await asyncio.sleep(rng.uniform(0, 0.004))
                        continue
                    spans[text] = (started, loop.time())
                    break
        finally:
            await client.close()

    await asyncio.gather(*(writer(n) for n in range(8)))
    inputs = [
        m.message.content[0].text
        for m in await served.client.all_messages("lin")
        if m.message.role == 1
    ]
    print(f"8 writers x 25: {len(spans)} acknowledged, {len(rejected)} rejected")
    assert sorted(inputs) == sorted(spans), "acknowledged exactly once, rejected never"
    assert len(set(inputs)) == len(inputs)
    # Real-time order: if a finished before b started, a comes first.
    position = {text: index for index, text in enumerate(inputs)}
    for a, (_, a_end) in spans.items():
        for b, (b_start, _) in spans.items():
            if a_end < b_start:
                assert position[a] < position[b], (a, b)


async def test_unresolved_commit_is_commit_unknown_and_a_retry_applies_once(serve) -> None:
    from sessiond.server.storage.memory import FailNext
    from sessiond.server.storage.port import AmbiguousWrite

    store = MemoryStore()
    served = await serve(store=store)
    await served.client.start("amb")
    await served.client.chat("amb", "before")
    # The commit CAS applies, its response is lost, and the head cannot be
    # read back for a while: sessiond cannot tell whether the turn applied.
    store.hooks.append(
        FailNext("put", "head.json", lambda: AmbiguousWrite("lost response"), after=True)
    )
    store.hooks.append(FailNext("get", "head.json", times=8))
    # No transparent client retry here: the point is to see COMMIT_UNKNOWN.
    async with AsyncClient(served.target, retries=False) as bare:
        with pytest.raises(CommitUnknown):
            await bare.chat("amb", "maybe", request_id="once")
    store.hooks.clear()
    retried = await served.client.chat("amb", "maybe", request_id="once")
    assert retried.text == "echo: maybe"
    again = await served.client.chat("amb", "maybe", request_id="once")
    assert again.turn.turn_id == retried.turn.turn_id
    inputs = [
        m.message.content[0].text
        for m in await served.client.all_messages("amb")
        if m.message.role == 1
    ]
    assert inputs == ["before", "maybe"]
