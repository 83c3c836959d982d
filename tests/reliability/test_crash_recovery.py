"""``kill -9`` of a server in the middle of a ``Run``: takeover, intact history, restart.

Process A reaches moto through a latency proxy that can *hold* a request. A
client opens a Run on A and appends (acknowledged); a second append writes
its message file, and A's head CAS is held in the proxy when A is killed, so
an orphan message file (beyond the committed count) is left behind, exactly
as a crash between the two steps of a commit leaves it. Process B then gets
``SESSION_BUSY`` until the 2 s lease expires, takes the session over, sees
the acknowledged history (and not the orphan), and finishes the turn. The
Strands files must then match the committed history one for one, and A,
restarted, serves again.
"""

from __future__ import annotations

import asyncio
import json
import time

from sessiond.client.aio import AsyncClient
from sessiond.errors import SessionBusy
from sessiond.v1 import session_pb2, turn_pb2
from support.latency_proxy import LatencyProxy
from support.processes import fresh_client

SID = "crash"
PREFIX = f"sessiond/tenants/default/session_{SID}/"
MESSAGES = f"{PREFIX}agents/agent_default/messages/"
LEASE_TTL = 2.0


def texts(messages) -> list[str]:
    return [m.message.content[0].text for m in messages]


async def wait_until(predicate, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def take_over(client: AsyncClient, text: str):
    """Retries ``Run`` until the lease of the dead runner expires; returns (turn, busy, waited)."""
    busy, began = 0, time.monotonic()
    while True:
        turn = client.run(SID, text)
        try:
            await turn.__aenter__()
        except SessionBusy as error:
            assert error.lease_expire_time, "SESSION_BUSY carries the lease expiry"
            busy += 1
            await asyncio.sleep(0.1)
            continue
        return turn, busy, time.monotonic() - began


async def test_kill_9_mid_run_then_takeover_and_restart(
    sessiond_processes, moto_endpoint: str, s3_objects
) -> None:
    with LatencyProxy(moto_endpoint) as proxy:
        a = sessiond_processes("a", endpoint_url=proxy.url, wait=False)
        b = sessiond_processes("b", wait=False)
        a.wait_serving()
        b.wait_serving()
        client_a = fresh_client(a.target)
        client_b = fresh_client(b.target)
        try:
            await client_a.start(SID)
            await client_a.chat(SID, "before")
            turn = client_a.run(SID, "in-1")
            await turn.__aenter__()
            await turn.append(["ack-1"])  # acknowledged: in-1 and ack-1 are committed
            # The next commit writes its message file, then its head CAS is held.
            # (Holding only after that file's PUT keeps a lease renewal's CAS,
            # which may come first, out of it.)
            orphan = f"{MESSAGES}message_4.json"
            seen: set[str] = set()

            def hold_commit(method: str, path: str) -> float:
                if method == "PUT" and path.endswith("/message_4.json"):
                    seen.add(path)
                return 60.0 if method == "PUT" and seen and "head.json" in path else 0.0

            proxy.delay = hold_commit
            pending = asyncio.ensure_future(turn.append(["unacked-2"]))
            await wait_until(lambda: proxy.waiting, 10)
            assert orphan in s3_objects.keys(MESSAGES)
            a.kill()
            killed_at = time.monotonic()
            assert proxy.drop_held() == 1  # the held CAS never reaches the store
            proxy.delay = lambda method, path: 0.0
            await asyncio.gather(pending, return_exceptions=True)

            taken, busy, waited = await take_over(client_b, "in-2")
            since_kill = time.monotonic() - killed_at
            history = texts(taken.history)
            assert history == ["before", "echo: before", "in-1", "ack-1"]
            assert taken.started.session.lease.epoch == turn.started.session.lease.epoch + 1
            await taken.finish(["out-2"])
            await taken.__aexit__(None, None, None)

            session = await client_b.get(SID)
            stored = texts(await client_b.all_messages(SID))
            assert stored == [*history, "in-2", "out-2"]
            timeline = await client_b.timeline(SID)
            killed_turn = timeline[-2]
            assert killed_turn.status == turn_pb2.TURN_STATUS_ERROR
            assert killed_turn.error.code == "LEASE_EXPIRED"

            # The Strands files are the committed history, one file per message.
            count = session.agents[0].message_count if session.agents else len(stored)
            files = s3_objects.keys(MESSAGES)
            assert files == sorted(f"{MESSAGES}message_{n}.json" for n in range(count))
            on_disk = [
                json.loads(s3_objects.read(f"{MESSAGES}message_{n}.json"))["message"]["content"][0][
                    "text"
                ]
                for n in range(count)
            ]
            assert on_disk == stored
            head = json.loads(s3_objects.read(f"{PREFIX}sessiond/head.json"))
            assert head["lease"] is None

            # A restarted process serves again, on the same store.
            a.restart()
            async with fresh_client(a.target) as again:
                reply = await again.chat(SID, "after")
                assert reply.text == "echo: after"
                assert reply.session.status == session_pb2.SESSION_STATUS_FINISHED
                assert texts(await again.all_messages(SID))[-2:] == ["after", "echo: after"]
            print(
                f"kill -9 mid-Run: orphan message_4 left by the crash; {busy} SESSION_BUSY "
                f"answers, takeover {since_kill:.2f}s after the kill (lease {LEASE_TTL}s, "
                f"retrying for {waited:.2f}s); acknowledged history intact (4 messages), "
                f"orphan removed, {count} files = {count} committed messages; restart serves"
            )
            assert busy >= 1
            # The lease was last renewed at most a third of its TTL before the kill.
            assert LEASE_TTL * 2 / 3 - 0.3 < since_kill < LEASE_TTL + 3
        finally:
            await client_a.close()
            await client_b.close()
