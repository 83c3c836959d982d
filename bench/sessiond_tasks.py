"""Client-side workloads against sessiond servers (run inside ``python -m bench.worker sessiond``).

Each ``task_*`` is called with JSON parameters and returns JSON figures:
latencies in seconds (the orchestrator computes quantiles) and store
requests counted on the server, from deltas of its Prometheus counter
``sessiond_store_requests_total`` scraped around each measured operation.
"""

from __future__ import annotations

import asyncio
import random
import time
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from bench.procs import by_op, parse_store_requests
from sessiond.client.aio import AsyncClient
from sessiond.v1 import turn_pb2

CLIENTS: dict[str, AsyncClient] = {}
METRICS: dict[str, str] = {}
_WORDS = (
    "the session service keeps agent histories on object storage with claims "
    "and packs so a restore reads a handful of objects instead of one per message"
).split()


def text_of(seed: int, size: int) -> str:
    """Deterministic prose of about ``size`` characters."""
    rng = random.Random(seed)
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)[:size]


async def scrape(server: str) -> Counter[str]:
    """The server's store request counters now."""
    url = METRICS[server]

    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.read().decode()

    return parse_store_requests(await asyncio.to_thread(fetch))


def minus(after: Counter[str], before: Counter[str]) -> Counter[str]:
    """``after - before`` keeping every key (Counter's ``-`` drops non-positive ones)."""
    delta = Counter(after)
    delta.subtract(before)
    return delta


async def measured(
    server: str, operation: Callable[[], Awaitable[Any]]
) -> tuple[float, dict[str, int], Any]:
    """Runs ``operation``; returns (seconds, store requests by op, its result)."""
    before = await scrape(server)
    started = time.perf_counter()
    result = await operation()
    seconds = time.perf_counter() - started
    return seconds, by_op(minus(await scrape(server), before)), result


# -- setup --------------------------------------------------------------------------


async def task_connect(name: str, target: str, metrics_url: str = "") -> dict[str, Any]:
    """Opens a client to a server, named for later tasks; waits until it is ready."""
    client = AsyncClient(target, timeout=600)
    await client.wait_ready(timeout=60)
    CLIENTS[name] = client
    if metrics_url:
        METRICS[name] = metrics_url
    return {"connected": target}


async def task_disconnect(name: str) -> None:
    """Closes a named client."""
    client = CLIENTS.pop(name, None)
    if client is not None:
        await client.close()


async def task_seed_history(
    server: str,
    sessions: list[list[Any]],
    per_turn: int = 10,
    text_bytes: int = 300,
    concurrency: int = 8,
) -> dict[str, Any]:
    """Creates sessions with histories through the API: Run turns of ``per_turn`` messages.

    ``sessions`` is ``[[session_id, messages], ...]``. Each turn commits its
    input and ``per_turn - 1`` replies in one finish (what a tool-using turn
    writes); the history is not streamed back (``history_limit=1``).
    """
    client = CLIENTS[server]
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()
    before = await scrape(server) if server in METRICS else Counter()

    async def seed(session_id: str, messages: int) -> None:
        async with gate:
            await client.start(session_id, return_existing=True)
            added = 0
            while added < messages:
                replies = min(per_turn, messages - added) - 1
                question = text_of(added, text_bytes // 3)
                async with client.run(session_id, question, history_limit=1) as turn:
                    await turn.finish([text_of(added + i + 1, text_bytes) for i in range(replies)])
                added += replies + 1

    await asyncio.gather(*(seed(sid, int(n)) for sid, n in sessions))
    requests = by_op(minus(await scrape(server), before)) if server in METRICS else {}
    return {"seconds": time.perf_counter() - started, "requests": requests}


async def task_seed_reviews(
    server: str, session_ids: list[str], concurrency: int = 4
) -> dict[str, Any]:
    """Leaves one pending review in each session: a Run turn that hibernates asking for it."""
    client = CLIENTS[server]
    gate = asyncio.Semaphore(concurrency)
    started = time.perf_counter()

    async def one(session_id: str) -> None:
        async with gate, client.run(session_id, "please clean up the workspace") as turn:
            await turn.hibernate(
                reviews=[
                    turn_pb2.ReviewRequest(
                        review_id=f"rv-{session_id}",
                        tool_use_id="t1",
                        tool_name="rm",
                        input_json='{"path": "/workspace/tmp", "recursive": true}',
                        description="deletes files",
                    )
                ]
            )

    await asyncio.gather(*(one(sid) for sid in session_ids))
    return {"seconds": time.perf_counter() - started}


# -- turns ----------------------------------------------------------------------------


async def _turns(
    server: str,
    session_id: str,
    turns: int,
    warmup: int,
    settle: float,
    one: Callable[[int], Awaitable[Any]],
) -> dict[str, Any]:
    client = CLIENTS[server]
    await client.start(session_id, return_existing=True)
    for number in range(warmup):
        await one(-1 - number)
    counting = server in METRICS
    base = previous = await scrape(server) if counting else Counter()
    latencies: list[float] = []
    counts: list[dict[str, int]] = []
    for number in range(turns):
        started = time.perf_counter()
        await one(number)
        latencies.append(time.perf_counter() - started)
        if counting:
            now = await scrape(server)
            counts.append(by_op(minus(now, previous)))
            previous = now
    total: dict[str, int] = {}
    if counting and settle > 0:
        # Plain turns leave List's counts to a refresher that flushes 2 s later
        # (one CAS per segment for all sessions): wait for it, so the total
        # carries its amortised cost.
        await asyncio.sleep(settle)
        total = by_op(minus(await scrape(server), base))
    return {"latencies": latencies, "counts": counts, "total": total, "turns": turns}


async def task_chat_turns(
    server: str,
    session_id: str,
    turns: int,
    warmup: int = 2,
    text_bytes: int = 120,
    settle: float = 2.5,
) -> dict[str, Any]:
    """Sequential ``Chat`` turns (echo engine) on one session; latency and requests per turn."""
    client = CLIENTS[server]

    async def one(number: int) -> None:
        await client.chat(session_id, text_of(number, text_bytes))

    return await _turns(server, session_id, turns, warmup, settle, one)


async def task_run_turns(
    server: str,
    session_id: str,
    turns: int,
    warmup: int = 2,
    text_bytes: int = 120,
    settle: float = 2.5,
) -> dict[str, Any]:
    """Sequential ``Run`` turns: open (claim, history), one reply, finish."""
    client = CLIENTS[server]

    async def one(number: int) -> None:
        async with client.run(session_id, text_of(number, text_bytes), history_limit=1) as turn:
            await turn.finish([text_of(number + 7, text_bytes * 3)])

    return await _turns(server, session_id, turns, warmup, settle, one)


async def task_prepare_sessions(server: str, prefix: str, concurrency: int) -> dict[str, Any]:
    """Starts the sessions of a throughput run and gives each a first turn (not measured).

    The first turn of a session changes its listed status (NEW -> FINISHED),
    so these write the listing index; the measured turns after them do not.
    """
    client = CLIENTS[server]
    sids = [f"{prefix}-{i:03d}" for i in range(concurrency)]
    counting = server in METRICS
    before = await scrape(server) if counting else Counter()
    started = time.perf_counter()

    async def prepare(sid: str) -> None:
        await client.start(sid, return_existing=True)
        await client.chat(sid, "warm up")

    await asyncio.gather(*(prepare(sid) for sid in sids))
    seconds = time.perf_counter() - started
    delta = minus(await scrape(server), before) if counting else Counter()
    return {
        "seconds": seconds,
        "requests": by_op(delta),
        "outcomes": {k: v for k, v in sorted(delta.items()) if ":" in k and v},
    }


async def task_throughput(
    server: str,
    prefix: str,
    concurrency: int,
    seconds: float,
    text_bytes: int = 120,
    count_requests: bool = True,
) -> dict[str, Any]:
    """``concurrency`` sessions each running Chat turns back to back for ``seconds``.

    Run ``prepare_sessions`` with the same prefix first.
    """
    client = CLIENTS[server]
    sids = [f"{prefix}-{i:03d}" for i in range(concurrency)]
    counting = count_requests and server in METRICS
    base = await scrape(server) if counting else Counter()
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    deadline = time.perf_counter() + seconds

    async def loop(sid: str, seed: int) -> None:
        number = 0
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await client.chat(sid, text_of(seed * 1000 + number, text_bytes))
            except Exception as exc:  # counted, reported; the run goes on
                failures[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)
            number += 1

    started = time.perf_counter()
    await asyncio.gather(*(loop(sid, i) for i, sid in enumerate(sids)))
    elapsed = time.perf_counter() - started
    delta = minus(await scrape(server), base) if counting else Counter()
    requests = by_op(delta)
    outcomes = {k: v for k, v in sorted(delta.items()) if ":" in k and v}
    return {
        "outcomes": outcomes,
        "turns": len(latencies),
        "seconds": elapsed,
        "latencies": latencies,
        "requests": requests,
        "failures": dict(failures),
    }


# -- restore --------------------------------------------------------------------------


async def task_restore(server: str, session_ids: list[str]) -> dict[str, Any]:
    """Opens a Run turn on each session: claim + whole history, timed and counted.

    The measurement ends when the last history chunk has arrived; the turn is
    then finished (not measured). On a replica that has not seen the session
    this is a cold restore; on one that has, a warm one.
    """
    client = CLIENTS[server]
    samples: list[dict[str, Any]] = []
    for sid in session_ids:
        before = await scrape(server)
        started = time.perf_counter()
        async with client.run(sid, "what next?") as turn:
            seconds = time.perf_counter() - started
            counts = by_op(minus(await scrape(server), before))
            history = len(turn.history)
            await turn.finish(["carrying on"])
        samples.append(
            {"session_id": sid, "seconds": seconds, "requests": counts, "messages": history}
        )
    return {"samples": samples}


async def task_get(server: str, session_ids: list[str], repeats: int = 1) -> dict[str, Any]:
    """``Get`` on each session (``repeats`` times): latency and requests per call."""
    client = CLIENTS[server]
    samples = []
    for _ in range(repeats):
        for sid in session_ids:
            seconds, counts, _ = await measured(server, lambda sid=sid: client.get(sid))
            samples.append({"seconds": seconds, "requests": counts})
    return {"samples": samples}


# -- listing ----------------------------------------------------------------------------


async def task_list(
    server: str, page_size: int = 100, repeats: int = 5, pages: int = 3
) -> dict[str, Any]:
    """``List`` pages: the replica's first call (discovery) apart, then first and next pages."""
    client = CLIENTS[server]
    seconds, counts, page = await measured(server, lambda: client.list(page_size=page_size))
    discovery = {"seconds": seconds, "requests": counts, "sessions": len(page.sessions)}
    samples = []
    for _ in range(repeats):
        token = ""
        for number in range(pages):
            seconds, counts, page = await measured(
                server, lambda token=token: client.list(page_size=page_size, page_token=token)
            )
            samples.append(
                {
                    "page": number,
                    "seconds": seconds,
                    "requests": counts,
                    "sessions": len(page.sessions),
                }
            )
            token = page.next_page_token
            if not token:
                break
    return {"discovery": discovery, "samples": samples}


async def task_pending_reviews(
    server: str, page_size: int = 50, repeats: int = 5
) -> dict[str, Any]:
    """``ListPendingReviews`` across the tenant, following every page."""
    client = CLIENTS[server]
    samples = []
    total = 0
    for _ in range(repeats):
        token, total = "", 0
        while True:
            seconds, counts, page = await measured(
                server,
                lambda token=token: client.list_pending_reviews(
                    page_size=page_size, page_token=token
                ),
            )
            samples.append({"seconds": seconds, "requests": counts, "reviews": len(page.reviews)})
            total += len(page.reviews)
            token = page.next_page_token
            if not token:
                break
    return {"samples": samples, "reviews": total}


async def task_serve_all(
    server: str, session_ids: list[str], concurrency: int = 16
) -> dict[str, Any]:
    """Reads every session's history once (``ListMessages``), so the replica serves them all."""
    client = CLIENTS[server]
    gate = asyncio.Semaphore(concurrency)
    messages = 0

    async def one(sid: str) -> None:
        nonlocal messages
        async with gate:
            page = await client.list_messages(sid, page_size=1000)
            messages += len(page.messages)

    seconds, counts, _ = await measured(
        server, lambda: asyncio.gather(*(one(sid) for sid in session_ids))
    )
    return {"seconds": seconds, "requests": counts, "messages": messages}


# -- export -------------------------------------------------------------------------------


async def task_export(server: str, session_ids: list[str]) -> dict[str, Any]:
    """Streams an export of the sessions and discards it; bytes, time, requests."""
    client = CLIENTS[server]
    received = 0
    manifest = None

    async def run() -> None:
        nonlocal received, manifest
        async for response in client.export(session_ids=session_ids):
            kind = response.WhichOneof("event")
            if kind == "chunk":
                received += len(response.chunk)
            elif kind == "manifest":
                manifest = response.manifest

    seconds, counts, _ = await measured(server, run)
    assert manifest is not None, "the export ended without a manifest"
    return {
        "seconds": seconds,
        "requests": counts,
        "bytes": received,
        "sessions": manifest.session_count,
        "messages": manifest.message_count,
    }
