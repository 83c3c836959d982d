"""Overload: beyond ``--max-concurrent-rpcs`` calls are refused fast; accepted ones keep their pace.

A store answering every request in 0.2 s makes a Chat take about half a
second. With the limit at ``LIMIT``, ``LIMIT + EXTRA`` concurrent Chats (on
distinct, warmed sessions: no contention) must give ``EXTRA`` fast
``RESOURCE_EXHAUSTED`` / ``OVERLOADED`` while the accepted ones finish in
about the time of a Chat alone. Then waves of calls far beyond the limit must
not grow the process's memory.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sessiond.client.aio import AsyncClient
from sessiond.errors import SessiondError
from sessiond.server.storage.memory import MemoryStore

LIMIT = 4
EXTRA = 12
STORE_SECONDS = 0.2


class Latency:
    """Every store request takes ``STORE_SECONDS`` while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.seconds = STORE_SECONDS

    async def before(self, op: str, key: str) -> None:
        if self.on:
            await asyncio.sleep(self.seconds)

    async def after(self, op: str, key: str) -> None:
        return None


def rss_mib() -> float:
    """This process's resident memory (server and clients share it), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def timed(call) -> tuple[str, float]:
    started = time.monotonic()
    try:
        await call
        code = "OK"
    except SessiondError as error:
        code = error.code
    return code, time.monotonic() - started


async def probe_health(target: str) -> str:
    """The outcome of one health check of the SessionService."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="sessiond.v1.SessionService")
        try:
            response = await stub.Check(request, timeout=2)
        except grpc.aio.AioRpcError as error:
            return error.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)


async def test_calls_beyond_the_limit_are_refused_fast(serve) -> None:
    store = MemoryStore()
    latency = Latency()
    store.hooks.append(latency)
    served = await serve(store=store, max_concurrent_rpcs=LIMIT)
    client = AsyncClient(served.target, retries=False, timeout=30)
    try:
        sessions = [f"o{i}" for i in range(LIMIT + EXTRA)]
        for sid in sessions:
            await client.start(sid)
            await client.chat(sid, "warm-up")
        latency.on = True
        alone = [(await timed(client.chat(sessions[0], f"alone {n}")))[1] for n in range(3)]
        baseline = statistics.median(alone)

        burst = [asyncio.ensure_future(timed(client.chat(sid, "burst"))) for sid in sessions]
        await asyncio.sleep(0.1)  # the accepted Chats now fill every slot
        probe = await probe_health(served.target)
        results = await asyncio.gather(*burst)
        accepted = [t for code, t in results if code == "OK"]
        refused = [t for code, t in results if code == "RESOURCE_EXHAUSTED"]
        codes = Counter(code for code, _ in results)
        print(
            f"limit {LIMIT}, {LIMIT + EXTRA} concurrent Chats on a {STORE_SECONDS}s store: "
            f"{dict(codes)}; refused in {statistics.median(refused) * 1000:.1f} ms (median), "
            f"{max(refused) * 1000:.1f} ms (max); accepted "
            f"in {min(accepted):.2f}-{max(accepted):.2f}s vs {baseline:.2f}s for a Chat alone"
        )
        # Health checks are exempt from the limit: probes keep passing.
        print(f"a health check while the {LIMIT} slots are busy: {probe}")
        assert probe == "SERVING"
        assert codes == {"OK": LIMIT, "RESOURCE_EXHAUSTED": EXTRA}
        assert statistics.median(refused) < 0.1
        assert max(refused) < 0.25
        assert max(accepted) < baseline * 1.5 + 0.05

        # Memory stays bounded: waves far beyond the limit (Gets of 20 ms).
        latency.seconds = 0.02
        refused_total = accepted_total = 0
        before = 0.0
        for wave in range(11):
            if wave == 1:  # after a first wave has warmed everything up
                before, refused_total, accepted_total = rss_mib(), 0, 0
            results = await asyncio.gather(
                *(timed(client.get(sessions[n % len(sessions)])) for n in range(200))
            )
            wave_codes = Counter(code for code, _ in results)
            refused_total += wave_codes["RESOURCE_EXHAUSTED"]
            accepted_total += wave_codes["OK"]
            assert set(wave_codes) <= {"OK", "RESOURCE_EXHAUSTED"}, (wave, wave_codes)
        grown = rss_mib() - before
        print(
            f"10 waves of 200 concurrent Gets at limit {LIMIT}: {accepted_total} served, "
            f"{refused_total} refused; RSS {before:.0f} MiB -> {before + grown:.0f} MiB"
        )
        assert refused_total > 1000
        assert grown < 40
        # Once the burst is over, the server serves normally again.
        assert (await client.get(sessions[0])).session_id == sessions[0]
    finally:
        await client.close()
