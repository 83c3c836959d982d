"""Three ``sessiond serve`` processes on one moto bucket, clients racing on shared sessions.

Every client runs ``Run`` turns (the claim is held while it appends) through
a randomly chosen process. From the client side each acknowledged runner's
lease interval is bounded by ``[started received, finish sent]``: the claim's
CAS happened before the first, the ending CAS after the second. So two
acknowledged runners of one session whose bounds overlap would prove two
simultaneous holders. The test also checks that fencing epochs increase in
that order, that every acknowledged message is stored exactly once, in epoch
order, and that the messages of refused or fenced runs never are.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sessiond.client.aio import AsyncClient
from sessiond.errors import CommitUnknown, SessionBusy, SessiondError, SessionFenced
from support.processes import SessiondProcess, fresh_client

PROCESSES = 3
SESSIONS = 6
CLIENT_TASKS = 8
TURNS = 150


@dataclass
class Runner:
    """One Run attempt as the client saw it."""

    number: int
    session_id: str
    process: int
    epoch: int = 0
    started: float = 0.0
    finish_sent: float = 0.0
    acknowledged: list[str] = field(default_factory=list)
    never: list[str] = field(default_factory=list)
    maybe: list[str] = field(default_factory=list)
    outcome: str = ""


async def run_turn(client: AsyncClient, runner: Runner, rng: random.Random) -> None:
    """Opens a Run, appends, holds the claim a little, finishes; records what was acknowledged."""
    loop = asyncio.get_running_loop()
    n = runner.number
    texts = [f"in-{n}", f"mid-{n}", f"out-{n}"]
    pending = list(texts)
    try:
        async with client.run(runner.session_id, texts[0], request_id=f"run-{n}") as turn:
            runner.started = loop.time()
            assert turn.started is not None
            runner.epoch = turn.started.session.lease.epoch
            await turn.append([texts[1]])
            runner.acknowledged += texts[:2]
            pending = [texts[2]]
            await asyncio.sleep(rng.uniform(0.005, 0.03))
            runner.finish_sent = loop.time()
            await turn.finish([texts[2]])
            runner.acknowledged.append(texts[2])
            pending = []
            runner.outcome = "ok"
    except SessionBusy:
        runner.outcome = "busy"
        runner.never += pending
    except SessionFenced:
        runner.outcome = "fenced"
        runner.never += pending
    except CommitUnknown:
        runner.outcome = "commit_unknown"
        runner.maybe += pending
    except SessiondError as error:  # e.g. CONCURRENT_MODIFICATION under contention
        runner.outcome = f"{error.code}:{error.reason}"
        runner.maybe += pending


def check_leases(runners: list[Runner]) -> int:
    """Asserts one holder at a time per session and increasing epochs; returns pairs checked."""
    by_session: dict[str, list[Runner]] = defaultdict(list)
    for runner in runners:
        if runner.outcome == "ok":
            by_session[runner.session_id].append(runner)
    pairs = 0
    for held in by_session.values():
        held.sort(key=lambda r: r.started)
        epochs = [r.epoch for r in held]
        assert epochs == sorted(set(epochs)), f"epochs not strictly increasing: {epochs}"
        for earlier, later in itertools.pairwise(held):
            pairs += 1
            assert earlier.finish_sent < later.started, (
                f"runners {earlier.number} and {later.number} of {earlier.session_id} overlap"
            )
    return pairs


async def check_messages(client: AsyncClient, runners: list[Runner]) -> dict[str, int]:
    """Asserts acknowledged-exactly-once, never-stored, and epoch order; returns counts."""
    counts = Counter[str]()
    by_session: dict[str, list[Runner]] = defaultdict(list)
    for runner in runners:
        by_session[runner.session_id].append(runner)
    for sid, attempts in by_session.items():
        stored = [m.message.content[0].text for m in await client.all_messages(sid)]
        seen = Counter(stored)
        duplicated = [text for text, count in seen.items() if count > 1]
        assert not duplicated, f"{sid}: stored twice: {duplicated[:5]}"
        for runner in attempts:
            lost = [t for t in runner.acknowledged if seen[t] != 1]
            assert not lost, f"{sid}: acknowledged but not stored: {lost}"
            leaked = [t for t in runner.never if seen[t]]
            assert not leaked, f"{sid}: refused/fenced but stored: {leaked}"
            counts["acknowledged"] += len(runner.acknowledged)
            counts["never"] += len(runner.never)
            counts["maybe_stored"] += sum(1 for t in runner.maybe if seen[t])
        # Epoch order: every message of a runner with a lower epoch comes first.
        position = {text: i for i, text in enumerate(stored)}
        ordered = sorted((r for r in attempts if r.outcome == "ok"), key=lambda r: r.epoch)
        last = -1
        for runner in ordered:
            first = min(position[t] for t in runner.acknowledged)
            assert first > last, f"{sid}: runner {runner.number} is out of epoch order"
            last = max(position[t] for t in runner.acknowledged)
        counts["stored"] += len(stored)
    return dict(counts)


async def test_three_processes_one_runner_per_session(sessiond_processes) -> None:
    processes: list[SessiondProcess] = [
        sessiond_processes(f"r{i}", wait=False) for i in range(PROCESSES)
    ]
    for process in processes:
        process.wait_serving()
    clients = [fresh_client(p.target) for p in processes]
    try:
        sessions = [f"shared-{i}" for i in range(SESSIONS)]
        for sid in sessions:
            await clients[0].start(sid)
        runners: list[Runner] = []
        numbers = iter(range(TURNS))
        loop = asyncio.get_running_loop()
        began = loop.time()

        async def client_task(seed: int) -> None:
            rng = random.Random(seed)
            for number in numbers:
                process = rng.randrange(PROCESSES)
                runner = Runner(number, rng.choice(sessions), process)
                runners.append(runner)
                await run_turn(clients[process], runner, rng)
                if runner.outcome == "busy":
                    await asyncio.sleep(rng.uniform(0.005, 0.02))

        await asyncio.gather(*(client_task(seed) for seed in range(CLIENT_TASKS)))
        elapsed = loop.time() - began
        outcomes = Counter(r.outcome for r in runners)
        pairs = check_leases(runners)
        counts = await check_messages(clients[1], runners)
        per_process = Counter(r.process for r in runners if r.outcome == "ok")
        print(
            f"{PROCESSES} processes, {SESSIONS} sessions, {CLIENT_TASKS} clients, "
            f"{len(runners)} Run turns in {elapsed:.1f}s: outcomes {dict(outcomes)}; "
            f"acknowledged turns per process {dict(sorted(per_process.items()))}; "
            f"{pairs} consecutive holder pairs checked, 0 overlaps; messages {counts}, "
            "0 lost, 0 duplicated, 0 refused/fenced stored"
        )
        assert len(runners) == TURNS
        assert outcomes["ok"] >= TURNS // 3, outcomes
        other = {o for o in outcomes if o not in ("ok", "busy", "fenced", "commit_unknown")}
        assert all(o.startswith(("ABORTED:", "UNAVAILABLE:")) for o in other), outcomes
        assert len(per_process) == PROCESSES  # every process served turns
        for sid in sessions:  # nothing left holding a lease
            session = await clients[2].get(sid)
            assert not session.HasField("lease"), sid
    finally:
        for client in clients:
            await client.close()
