"""The head encoding that reuses the remembered JSON of unchanged records.

``encode_head`` splices in the JSON of ended turns and request records that
an earlier commit already encoded. What it writes must always be the head as
it is now: the same document ``encode`` gives, however the head was changed.
"""

from __future__ import annotations

import json

from sessiond.server.domain.codec import encode, encode_head
from sessiond.server.domain.keys import TenantKeys
from sessiond.server.domain.records import Head, RequestRecord, TurnStatus
from sessiond.server.storage.memory import MemoryStore
from support.servers import Serve


async def stored_head(serve: Serve, turns: int) -> Head:
    """A real head: a session with ``turns`` Chat turns (each with a request id)."""
    store = MemoryStore()
    served = await serve(store=store)
    await served.client.start("codec")
    for number in range(turns):
        await served.client.chat("codec", f"turn {number}")
    got = await store.get(TenantKeys("default").head("codec"))
    return Head.model_validate_json(got.body)


def same_document(head: Head) -> None:
    assert json.loads(encode_head(head)) == json.loads(encode(head))


async def test_a_head_encodes_as_the_plain_encoding_does(serve: Serve) -> None:
    head = await stored_head(serve, turns=6)
    assert head.requests and any(not t.status.is_open for t in head.tail)
    same_document(head)
    same_document(head)  # the second time from remembered records


async def test_changes_after_an_encoding_are_never_lost(serve: Serve) -> None:
    head = await stored_head(serve, turns=6)
    encode_head(head)  # remembers its records

    changed = head.working_copy()
    changed.revision += 1
    changed.requests.append(
        RequestRecord(request_id="new-request", op="turn", turn_number=99, at=head.updated_at)
    )
    del changed.requests[0]
    # A changed ended turn is a copy (records are never changed in place).
    changed.tail[0] = changed.tail[0].model_copy(update={"error": None, "resume_count": 7})
    changed.tail[-1] = changed.tail[-1].model_copy(update={"status": TurnStatus.RUNNING})

    document = json.loads(encode_head(changed))
    assert document == json.loads(encode(changed))
    assert document["requests"][-1]["request_id"] == "new-request"
    assert document["tail"][0]["resume_count"] == 7
    assert document["tail"][-1]["status"] == "RUNNING"
    # ...and the head it was copied from still encodes as it was.
    same_document(head)
