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


async def test_remembered_requests_follow_appends_trims_and_copies(serve: Serve) -> None:
    head = await stored_head(serve, turns=3)
    copies = [head]
    for number in range(12):
        copy = copies[-1].working_copy()
        record = RequestRecord(
            request_id=f"r{number}", op="turn", turn_number=number, at=head.updated_at
        )
        copy.remember_request(record, keep=4)
        copies.append(copy)
        same_document(copy)
        assert [r.request_id for r in copy.requests][-1] == f"r{number}"
        assert len(copy.requests) <= 4
    last = copies[-1]
    assert [r.request_id for r in last.requests] == ["r8", "r9", "r10", "r11"]
    assert last.find_request("r11", "turn") is last.requests[-1]
    assert last.find_request("r7", "turn") is None  # trimmed: no longer applied
    assert last.find_request("r11", "resume") is None
    # Every earlier head still encodes as it was, memo and all.
    for copy in copies:
        same_document(copy)
    # A list changed outside remember_request is read afresh.
    last.requests = last.requests[:2]
    same_document(last)
    assert last.find_request("r11", "turn") is None
