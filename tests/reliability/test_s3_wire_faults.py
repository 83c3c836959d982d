"""Turns through a real server on the S3 adapter, with faults injected on the wire.

A seeded :class:`support.s3_faults.WireFaults` sits between the S3Store's
botocore client and moto: 503 SlowDown, connection resets before sending,
409 ConditionalRequestConflict on conditional PUTs, and writes that apply and
then answer 500, time out or reset. Chat and Run turns go through a gRPC
server; a COMMIT_UNKNOWN is retried once with the same request id, as the
docs tell callers to. Afterwards, with the faults off: no acknowledged
message lost, none duplicated, nothing of a refused turn stored, and callers
only ever saw OK, UNAVAILABLE or ABORTED.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest

from sessiond.client.aio import AsyncClient
from sessiond.errors import CommitUnknown, SessiondError
from sessiond.server.storage.retry import RetryPolicy
from sessiond.v1 import turn_pb2
from support.moto import FAST_RETRY, MakeS3Store
from support.s3_faults import WireFaults, WireRates

SESSIONS = 8
CHATS = 90
RUNS = 30
RATES = WireRates(
    slowdown=0.05, reset=0.01, conflict=0.03, error_after=0.02, timeout_after=0.01, reset_after=0.01
)
#: Twice the faults, and the adapter does not retry at all: failures reach
#: the domain layer (STORE_UNAVAILABLE, COMMIT_UNKNOWN, released turns).
HEAVY = WireRates(
    slowdown=0.1, reset=0.02, conflict=0.06, error_after=0.04, timeout_after=0.02, reset_after=0.02
)
SCENARIOS = {
    "adapter retries (5 attempts)": (RATES, FAST_RETRY, 0.9),
    "heavy faults, no adapter retries": (HEAVY, RetryPolicy(max_attempts=1), 0.6),
}
FINISHED = turn_pb2.TURN_STATUS_FINISHED


async def chat_turn(
    client: AsyncClient, sid: str, n: int, outcomes: Counter[str], refused: list[str]
) -> list[str]:
    """One Chat (retried once on COMMIT_UNKNOWN); returns the acknowledged texts.

    The texts of a turn reported failed (not COMMIT_UNKNOWN) go to ``refused``.
    """
    text, request_id = f"chat-{n}", f"chat-{n}"
    try:
        try:
            reply = await client.chat(sid, text, request_id=request_id)
        except CommitUnknown:
            outcomes["chat COMMIT_UNKNOWN (retried)"] += 1
            reply = await client.chat(sid, text, request_id=request_id)
    except SessiondError as error:
        outcomes[f"chat {error.code}"] += 1
        if not isinstance(error, CommitUnknown):
            refused += [text, f"echo: {text}"]
        return []
    if reply.turn.status != FINISHED:
        # OK, but the turn failed: a retry that replayed a failed turn.
        outcomes[f"chat OK but turn {turn_pb2.TurnStatus.Name(reply.turn.status)}"] += 1
        return []
    assert reply.text == f"echo: {text}"
    outcomes["chat OK"] += 1
    return [text, f"echo: {text}"]


async def run_turn(
    client: AsyncClient, sid: str, n: int, outcomes: Counter[str], refused: list[str]
) -> list[str]:
    """One Run turn (open, append, finish); returns the acknowledged texts.

    What a failed commit carried (not COMMIT_UNKNOWN) goes to ``refused``.
    """
    acknowledged: list[str] = []
    try:
        async with client.run(sid, f"run-{n}") as turn:
            await turn.append([f"mid-{n}"])
            acknowledged += [f"run-{n}", f"mid-{n}"]
            await turn.finish([f"end-{n}"])
            acknowledged.append(f"end-{n}")
    except SessiondError as error:
        outcomes[f"run {error.code}"] += 1
        if not isinstance(error, CommitUnknown):
            sent = [f"run-{n}", f"mid-{n}", f"end-{n}"]
            refused += [text for text in sent if text not in acknowledged]
        return acknowledged
    outcomes["run OK"] += 1
    return acknowledged


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_turns_survive_s3_wire_faults(
    serve, make_s3_store: MakeS3Store, scenario: str
) -> None:
    rates, retry, success = SCENARIOS[scenario]
    store = await make_s3_store(prefix="wire", retry=retry)
    served = await serve(store=store)
    client = AsyncClient(served.target, retries=False, timeout=30)
    sessions = [f"w{i}" for i in range(SESSIONS)]
    for sid in sessions:
        await client.start(sid)
    faults = WireFaults(store, seed=7, rates=rates)
    rng = random.Random(7)
    outcomes: Counter[str] = Counter()
    acknowledged: dict[str, list[str]] = {sid: [] for sid in sessions}
    attempted: dict[str, list[str]] = {sid: [] for sid in sessions}
    refused: dict[str, list[str]] = {sid: [] for sid in sessions}
    try:
        for n in range(CHATS + RUNS):
            sid = rng.choice(sessions)
            if n % 4 == 3 and n // 4 < RUNS:
                attempted[sid] += [f"run-{n}", f"mid-{n}", f"end-{n}"]
                acknowledged[sid] += await run_turn(client, sid, n, outcomes, refused[sid])
            else:
                attempted[sid] += [f"chat-{n}", f"echo: chat-{n}"]
                acknowledged[sid] += await chat_turn(client, sid, n, outcomes, refused[sid])
        faults.enabled = False
        lost = duplicated = stray = visible_refused = stored_total = 0
        for sid in sessions:
            stored = [m.message.content[0].text for m in await client.all_messages(sid)]
            stored_total += len(stored)
            seen = Counter(stored)
            lost += sum(1 for text in acknowledged[sid] if seen[text] == 0)
            duplicated += sum(1 for count in seen.values() if count > 1)
            stray += sum(1 for text in stored if text not in attempted[sid])
            visible_refused += sum(1 for text in stored if text in refused[sid])
            session = await client.get(sid)
            assert not session.HasField("lease"), sid
        ok_turns = outcomes["chat OK"] + outcomes["run OK"]
        total = CHATS + RUNS
        print(
            f"{scenario}: {total} turns ({CHATS} Chat, {RUNS} Run) on S3 with wire faults "
            f"(seed {faults.seed}, {sum(faults.requests.values())} requests, injected "
            f"{faults.by_kind()}): outcomes {dict(outcomes)}; {ok_turns / total:.1%} succeeded; "
            f"{stored_total} messages stored, {sum(map(len, acknowledged.values()))} "
            f"acknowledged: {lost} lost, {duplicated} duplicated, {stray} stray, "
            f"{visible_refused} of {sum(map(len, refused.values()))} refused visible"
        )
        assert (lost, duplicated, stray, visible_refused) == (0, 0, 0, 0)
        codes = {key.split(" ", 1)[1].split(" ")[0] for key in outcomes}
        assert codes <= {"OK", "UNAVAILABLE", "ABORTED", "COMMIT_UNKNOWN"}, outcomes
        assert ok_turns / total >= success
        assert faults.by_kind().keys() >= {"503", "409", "500-after", "timeout-after"}
    finally:
        await client.close()
