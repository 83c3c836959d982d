"""Start, Get, List, ListMessages, Archive, Unarchive, Delete, end to end.

A real grpc.aio server on a free port, driven through the client library, on
the local directory store and on S3 (moto in server mode).
"""

from __future__ import annotations

import pytest

from sessiond.errors import (
    InvalidArgument,
    InvalidTransition,
    SessionAlreadyExists,
    SessionArchived,
    SessionNotFound,
)
from sessiond.v1 import session_pb2, session_service_pb2

pytestmark = pytest.mark.parametrize("store_kind", ["local", "s3"], indirect=True)


async def test_start_with_every_field_and_get(served) -> None:
    client = served.client
    parent = (await client.start("parent-1")).session
    response = await client.start(
        "child-1",
        agent_id="assistant",
        title="Trip planning",
        labels={"team": "travel", "env": "dev"},
        metadata={"owner": "ada@example.com"},
        parent_session_id=parent.session_id,
        agent_state_json='{"user_name": "Ada"}',
    )
    assert response.created
    got = await client.get("child-1")
    assert got.session_id == "child-1"
    assert got.agent_id == "assistant"
    assert got.title == "Trip planning"
    assert dict(got.labels) == {"team": "travel", "env": "dev"}
    assert dict(got.metadata) == {"owner": "ada@example.com"}
    assert got.parent_session_id == "parent-1"
    assert got.status == session_pb2.SESSION_STATUS_NEW
    assert got.agents[0].agent_id == "assistant"
    assert got.agents[0].state_json == '{"user_name":"Ada"}'
    assert got.etag == response.session.etag


async def test_start_generates_ids_and_is_idempotent_on_request_id(served) -> None:
    client = served.client
    first = await client.start(request_id="req-123")
    again = await client.start(request_id="req-123")
    assert first.session.session_id == again.session.session_id
    assert again.created
    other = await client.start()
    assert other.session.session_id != first.session.session_id
    assert other.session.agent_id == "default"


async def test_start_existing_id(served) -> None:
    client = served.client
    await client.start("dup")
    with pytest.raises(SessionAlreadyExists):
        await client.start("dup")
    returned = await client.start("dup", return_existing=True)
    assert not returned.created
    assert returned.session.session_id == "dup"


async def test_start_with_unknown_parent_is_invalid(served) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await served.client.start("orphan", parent_session_id="missing")
    assert caught.value.metadata["field"] == "parent_session_id"
    with pytest.raises(SessionNotFound):
        await served.client.get("orphan")


async def test_list_filters_and_pages(serve, make_store) -> None:
    served = await serve(store=await make_store(), index_segment_capacity=8)
    client = served.client
    for number in range(30):
        labels = {"team": "a" if number % 2 else "b"}
        await client.start(f"s{number:03d}", labels=labels)
    for number in range(0, 30, 3):
        await client.chat(f"s{number:03d}", "hello")
    await client.archive("s029")

    async def collect(**filters):
        seen, token, pages = [], "", 0
        while True:
            page = await client.list(page_size=7, page_token=token, **filters)
            seen.extend(s.session_id for s in page.sessions)
            pages += 1
            token = page.next_page_token
            if not token:
                return seen, pages

    everything, pages = await collect()
    # 30 sessions over 4 segments of 8: newest first, each exactly once, archived left out.
    assert everything == [f"s{n:03d}" for n in range(28, -1, -1)]
    assert pages >= 5
    finished, _ = await collect(statuses=[session_pb2.SESSION_STATUS_FINISHED])
    assert sorted(finished) == [f"s{n:03d}" for n in range(0, 30, 3) if n != 29]
    team_a, _ = await collect(labels={"team": "a"})
    assert sorted(team_a) == [f"s{n:03d}" for n in range(1, 29, 2)]
    only, _ = await collect(archived=session_service_pb2.ARCHIVED_FILTER_ONLY)
    assert only == ["s029"]
    with_archived, _ = await collect(archived=session_service_pb2.ARCHIVED_FILTER_INCLUDE)
    assert len(with_archived) == 30


async def test_list_messages_pages(served) -> None:
    client = served.client
    await client.start("talk")
    for number in range(5):
        await client.chat("talk", f"message {number}")
    seen, token = [], ""
    while True:
        page = await client.list_messages("talk", page_size=3, page_token=token)
        seen.extend((m.index, m.message.content[0].text) for m in page.messages)
        token = page.next_page_token
        if not token:
            break
    assert [index for index, _ in seen] == list(range(10))
    assert seen[0] == (0, "message 0")
    assert seen[1] == (1, "echo: message 0")


async def test_archive_and_unarchive(served) -> None:
    client = served.client
    await client.start("arch")
    session = await client.archive("arch")
    assert session.archived
    with pytest.raises(SessionArchived):
        await client.chat("arch", "are you there?")
    with pytest.raises(InvalidTransition):
        await client.archive("arch")
    # A retried archive with the same request id is not an error.
    await client.unarchive("arch", request_id="u-1")
    again = await client.unarchive("arch", request_id="u-1")
    assert not again.archived
    assert (await client.chat("arch", "back")).text == "echo: back"


async def test_delete_removes_every_object(served) -> None:
    client = served.client
    await client.start("doomed")
    await client.chat("doomed", "bye")
    await client.start("kept")
    await client.delete("doomed", request_id="del-1")
    with pytest.raises(SessionNotFound):
        await client.get("doomed")
    leftovers = await served.store.list_all("tenants/default/session_doomed/")
    assert leftovers == []
    # The same request again succeeds; a new delete of a missing session does not.
    await client.delete("doomed", request_id="del-1")
    with pytest.raises(SessionNotFound):
        await client.delete("doomed")
    listed = [s.session_id for s in (await client.list()).sessions]
    assert listed == ["kept"]
    # The id can be used again.
    assert (await client.start("doomed")).created


async def test_list_counts_catch_up_after_plain_turns(served) -> None:
    client = served.client
    await client.start("counting")
    await client.chat("counting", "one")  # NEW -> FINISHED: written to the index at once
    listed = (await client.list()).sessions[0]
    assert (listed.message_count, listed.turn_count) == (2, 1)
    await client.chat("counting", "two")  # FINISHED -> FINISHED: refreshed a moment later
    await client.chat("counting", "three")
    await served.server.context.refresher.flush()
    listed = (await client.list()).sessions[0]
    assert (listed.message_count, listed.turn_count) == (6, 3)
    assert listed.usage.total_tokens == (await client.get("counting")).usage.total_tokens


async def test_a_deleted_session_stays_out_of_the_list(served) -> None:
    client = served.client
    await client.start("brief")
    await client.chat("brief", "one")
    await client.chat("brief", "two")  # queued for a count refresh
    await client.delete("brief")
    await served.server.context.refresher.flush()
    assert [s.session_id for s in (await client.list()).sessions] == []
