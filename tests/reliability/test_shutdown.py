"""SIGTERM with calls in flight: NOT_SERVING first, calls finish or get UNAVAILABLE, leases freed.

The process reaches moto through a latency proxy (0.3 s per request), so a
Chat takes about 0.6 s on the server. Several Chats and two Run turns
(holding leases, each with an append in flight) are running when SIGTERM
arrives; one more Chat is slowed beyond the grace period. Once the fast calls
are done the proxy speeds up, so the time to release the leases after the
grace is the server's, not the proxy's. The test checks:
health turns NOT_SERVING within the drain period, while the server still
answers; a call sent after the drain is refused with UNAVAILABLE; every
in-flight call ends OK or UNAVAILABLE; the process exits 0 within drain +
grace + 2 s; no head holds a lease afterwards; and
every acknowledged Chat is in the history (read through a restarted process).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from grpc_health.v1 import health_pb2

from sessiond.errors import SessiondError
from support.latency_proxy import LatencyProxy
from support.processes import fresh_client, health_status, wait_exit

DRAIN, GRACE = 0.3, 2.0
DELAY = 0.3
CHATS = 5
TENANT = "sessiond/tenants/default/"


def outcome_of(result: object) -> str:
    if isinstance(result, SessiondError):
        return result.code
    if isinstance(result, BaseException):
        return type(result).__name__
    return "OK"


async def test_sigterm_with_unary_calls_in_flight(
    sessiond_processes, moto_endpoint: str, s3_objects
) -> None:
    with LatencyProxy(moto_endpoint) as proxy:
        server = sessiond_processes("term", endpoint_url=proxy.url)
        client = fresh_client(server.target)
        chat_sessions = [f"c{i}" for i in range(CHATS)]
        run_sessions = ["r0", "r1"]
        for sid in [*chat_sessions, *run_sessions, "slow"]:
            await client.start(sid)
            # A first turn changes the listed status (an index write shared by
            # the tenant's sessions); later ones, as below, do not.
            await client.chat(sid, "warm-up")
        turns = [client.run(sid, f"in-{sid}") for sid in run_sessions]
        for turn in turns:
            await turn.__aenter__()  # claimed: each holds a lease
        proxy.delay = lambda method, path: GRACE + 2.0 if "session_slow/" in path else DELAY
        loop = asyncio.get_running_loop()
        inflight = [
            asyncio.ensure_future(client.chat(sid, f"hello {sid}")) for sid in chat_sessions
        ]
        inflight.append(asyncio.ensure_future(client.chat("slow", "hello slow")))
        inflight += [asyncio.ensure_future(t.append([f"more {i}"])) for i, t in enumerate(turns)]
        await asyncio.sleep(0.2)  # every call is now waiting on the store
        server.signal_term()
        signalled = loop.time()

        # Health turns NOT_SERVING first, while calls are still accepted.
        not_serving_after = None
        while loop.time() - signalled < DRAIN:
            status = await health_status(server.target)
            if status == health_pb2.HealthCheckResponse.NOT_SERVING:
                not_serving_after = loop.time() - signalled
                break
            await asyncio.sleep(0.01)
        # After the drain, new calls are refused at once.
        await asyncio.sleep(max(0.0, DRAIN + 0.15 - (loop.time() - signalled)))
        refused_started = loop.time()
        try:
            await client.get("c0")
            late = "OK"
        except SessiondError as error:
            late = error.code
        refused_in = loop.time() - refused_started

        slow_chat = inflight[CHATS]
        fast = [call for call in inflight if call is not slow_chat]
        await asyncio.wait(fast, timeout=GRACE + 1)
        # The store gets fast again for what follows the grace (the leases'
        # release); the slow Chat stays stuck and is cut off at the grace.
        proxy.delay = lambda method, path: GRACE + 2.0 if "session_slow/" in path else 0.02
        results = await asyncio.gather(*inflight, return_exceptions=True)
        code = await wait_exit(server, 15)
        exited_after = loop.time() - signalled
        outcomes = Counter(outcome_of(r) for r in results)
        labels = [*chat_sessions, "slow", *(f"append-{sid}" for sid in run_sessions)]
        by_call = {
            label: outcome_of(r) + (f" ({r.message})" if isinstance(r, SessiondError) else "")
            for label, r in zip(labels, results, strict=True)
        }
        chat_outcomes = [outcome_of(r) for r in results[:CHATS]]
        for turn in turns:
            await turn.__aexit__(None, None, None)
        await client.close()

        heads = {
            sid: json.loads(s3_objects.read(f"{TENANT}session_{sid}/sessiond/head.json"))
            for sid in [*chat_sessions, *run_sessions, "slow"]
        }
        leased = [sid for sid, head in heads.items() if head["lease"] is not None]

        warnings = [r["message"] for r in server.log_records() if r["level"] == "WARNING"]
        proxy.delay = lambda method, path: 0.0
        server.restart()
        async with fresh_client(server.target) as again:
            for sid, outcome in zip(chat_sessions, chat_outcomes, strict=True):
                stored = [m.message.content[0].text for m in await again.all_messages(sid)]
                warm = ["warm-up", "echo: warm-up"]
                if outcome == "OK":
                    assert stored == [*warm, f"hello {sid}", f"echo: hello {sid}"], sid
                else:
                    assert stored in (warm, [*warm, f"hello {sid}", f"echo: hello {sid}"]), sid
            slow = [m.message.content[0].text for m in await again.all_messages("slow")]
            assert slow in (warm, [*warm, "hello slow", "echo: hello slow"]), slow
            ended_as = []
            for sid in run_sessions:
                session = await again.get(sid)
                assert not session.HasField("lease"), sid
                ended_as.append((await again.timeline(sid))[-1].error.code)
            reply = await again.chat("c0", "after restart")
            assert reply.text == "echo: after restart"

    print(
        f"SIGTERM with {len(inflight)} calls in flight ({CHATS} Chats ~{2 * DELAY:.1f}s each, "
        f"1 Chat slower than the grace, 2 Run appends holding leases): NOT_SERVING after "
        f"{(not_serving_after or 0) * 1000:.0f} ms; a call after the drain: {late} in "
        f"{refused_in * 1000:.0f} ms; in-flight outcomes {by_call}; exit code {code} "
        f"after {exited_after:.2f}s (drain {DRAIN}s + grace {GRACE}s); "
        f"leases left: {len(leased)}; Run turns ended as {ended_as}; warnings logged: {warnings}"
    )
    assert not_serving_after is not None, "health did not turn NOT_SERVING during the drain"
    assert late == "UNAVAILABLE"
    assert refused_in < 0.5
    assert set(outcomes) <= {"OK", "UNAVAILABLE"}, outcomes
    assert outcomes["OK"] >= CHATS - 1  # the ~1 s Chats finish within the grace
    assert code == 0
    assert exited_after < DRAIN + GRACE + 2.0
    assert leased == []
