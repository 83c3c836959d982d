"""Fast setup of large tenants, written straight into the store (``python -m bench.worker seed``).

Creating 10,000 sessions through the API costs ~10 requests each before a
single one is measured; on a moto that sustains a few hundred requests per
second that is most of the time budget. The big tenants (List over 10,000
sessions, the memory check, the 1 GB export) are therefore written directly
in sessiond's layout, the way a replica would have left them: a head per
session (its turns in the tail, or in one history pack), Strands'
``session.json`` and, where a workload reads them, ``agent.json`` and the
``message_<n>.json`` files; then the listing index segments, one PUT each.

What is measured on them always goes through the API. Sessions whose
histories are restored are created through the API instead (bench/sessiond_tasks.py
``seed_history``), so their packs are what real commits produce.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.sessiond_tasks import text_of
from sessiond.server.domain import strands
from sessiond.server.domain.codec import encode
from sessiond.server.domain.history import FANOUT, TAIL_MAX_BYTES
from sessiond.server.domain.index import inbox_stamp, index_entry, index_stamp
from sessiond.server.domain.keys import TenantKeys
from sessiond.server.domain.records import (
    Agent,
    Event,
    Head,
    IndexSegment,
    Pack,
    PackRef,
    Status,
    StoredMessage,
    Turn,
    TurnStatus,
    Usage,
)
from sessiond.server.storage.port import CREATE, OVERWRITE
from sessiond.server.storage.s3 import S3Store

KEYS = TenantKeys("default")


def _turns(sid: str, messages: int, message_bytes: int, at: datetime) -> list[Turn]:
    turns = []
    for number in range(1, messages // 2 + 1):
        first = 2 * (number - 1)
        records = [
            StoredMessage(
                agent_id="default",
                index=first + j,
                message={
                    "role": "user" if j == 0 else "assistant",
                    "content": [
                        {
                            "text": text_of(
                                hash((sid, first + j)) & 0xFFFF,
                                message_bytes // 3 if j == 0 else message_bytes,
                            )
                        }
                    ],
                },
                turn_id=f"t{number:06d}",
                created_at=at,
                updated_at=at,
            )
            for j in range(2)
        ]
        turns.append(
            Turn(
                turn_id=f"t{number:06d}",
                number=number,
                agent_id="default",
                engine="echo",
                status=TurnStatus.FINISHED,
                run_id="seed",
                started_at=at,
                ended_at=at,
                first_index=first,
                messages=records,
                usage=Usage(input_tokens=3, output_tokens=3, total_tokens=6),
                events=[
                    Event(time=at, type="turn.started", data={"engine": "echo"}),
                    Event(time=at, type="messages.appended", data={"first": first, "count": 2}),
                    Event(time=at, type="finished"),
                ],
            )
        )
    return turns


def _level(size: int) -> int:
    level = 0
    while TAIL_MAX_BYTES * FANOUT**level < size:
        level += 1
    return level


async def task_seed_sessions(
    endpoint: str,
    bucket: str,
    prefix: str,
    count: int,
    id_prefix: str = "s",
    messages: int = 20,
    message_bytes: int = 300,
    in_pack: bool = False,
    strands_messages: bool = False,
    agent_json: bool = True,
    segment_capacity: int = 256,
    concurrency: int = 32,
) -> dict[str, Any]:
    """Writes ``count`` FINISHED sessions of ``messages`` messages, then their index.

    Session ``i`` is ``<id_prefix><i:05d>``, created ``i`` milliseconds after
    the first (so "newest first" is the highest number).
    """
    store = S3Store(
        bucket,
        prefix=prefix,
        endpoint_url=endpoint,
        region="us-east-1",
        access_key_id="testing",
        secret_access_key="testing",
        max_pool_connections=concurrency,
        probe=False,
    )
    await store.start()
    base = datetime.now(UTC) - timedelta(hours=1)
    gate = asyncio.Semaphore(concurrency)
    segments: dict[int, IndexSegment] = {}
    written = {"objects": 0, "bytes": 0}
    started = time.perf_counter()

    async def put(key: str, body: bytes, mode: Any = OVERWRITE) -> None:
        async with gate:
            await store.put(key, body, mode=mode)
        written["objects"] += 1
        written["bytes"] += len(body)

    async def one(i: int) -> None:
        sid = f"{id_prefix}{i:05d}"
        at = base + timedelta(milliseconds=i)
        turns = _turns(sid, messages, message_bytes, at)
        n = len(turns)
        agent = Agent(agent_id="default", message_count=messages, created_at=at, updated_at=at)
        head = Head(
            session_id=sid,
            incarnation="seed0000",
            revision=2,
            created_at=at,
            updated_at=at,
            status=Status.FINISHED if turns else Status.NEW,
            title=f"bench session {i}",
            labels={"bench": "1", "shard": str(i % 8)},
            agent_id="default",
            agents={"default": agent},
            epoch=1,
            turn_count=len(turns),
            usage=Usage(input_tokens=3 * n, output_tokens=3 * n, total_tokens=6 * n),
            index_segment=i // segment_capacity,
        )
        writes = []
        if in_pack and turns:
            pack = Pack(session_id=sid, level=0, turns=turns)
            body = encode(pack)
            level = _level(len(body))
            if level:
                pack.level = level
                body = encode(pack)
            pack_key = KEYS.pack(sid, f"p{level}-000001-{len(turns):06d}-seed")
            writes.append(put(pack_key, body, CREATE))
            head.packs = [
                PackRef(
                    key=pack_key,
                    level=level,
                    first_turn=1,
                    last_turn=len(turns),
                    message_count=messages,
                    size=len(body),
                )
            ]
        else:
            head.tail = turns
        now = datetime.now(UTC)
        head.index_stamp = index_stamp(head, now)
        head.inbox_stamp = inbox_stamp(head, now)
        if strands_messages:
            writes.extend(
                put(
                    KEYS.message(sid, "default", m.index),
                    strands.message_file(m, epoch=1, run_id="seed"),
                )
                for turn in turns
                for m in turn.messages
            )
        writes.append(put(KEYS.session_json(sid), strands.session_file(sid, at, at)))
        if agent_json:
            writes.append(put(KEYS.agent_json(sid, "default"), strands.agent_file(agent)))
        await asyncio.gather(*writes)
        await put(KEYS.head(sid), encode(head), CREATE)  # the commit point, last
        segment = segments.setdefault(
            head.index_segment, IndexSegment(number=head.index_segment or 0)
        )
        segment.entries[sid] = index_entry(head, now)

    # Bounded batches: never thousands of pending coroutines with big bodies.
    for start in range(0, count, concurrency * 4):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + concurrency * 4))))
    await asyncio.gather(
        *(put(KEYS.index_segment(n), encode(seg)) for n, seg in sorted(segments.items()))
    )
    await store.close()
    return {
        "sessions": count,
        "objects": written["objects"],
        "bytes": written["bytes"],
        "seconds": time.perf_counter() - started,
    }
