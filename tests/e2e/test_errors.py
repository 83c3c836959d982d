"""Bad input gets a clear error, the right code and one ErrorInfo, and changes nothing."""

from __future__ import annotations

import json

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sessiond.client.aio import text_message
from sessiond.errors import (
    CorruptObject,
    InvalidArgument,
    InvalidId,
    InvalidPageToken,
    InvalidTransition,
    MessageTooLarge,
    SessionNotFound,
)
from sessiond.server.storage.memory import MemoryStore
from sessiond.server.storage.port import OVERWRITE
from sessiond.v1 import content_pb2, session_pb2
from sessiond.v1 import session_service_pb2 as pb

BAD_IDS = ["", "..", "a/b", "%2e%2e", "a\x00b", "séance", "\uff53", "x" * 64, "-lead", ".hidden"]


@pytest.fixture
async def counted(serve):
    store = MemoryStore()
    served = await serve(store=store)
    await served.client.start("good")
    store.request_counts.clear()
    return served, store


@pytest.mark.parametrize("bad", BAD_IDS)
async def test_invalid_ids_are_refused_before_any_storage_call(counted, bad: str) -> None:
    served, store = counted
    client = served.client
    calls = [
        client.get(bad),
        client.chat(bad, "hi"),
        client.resume(bad),
        client.archive(bad),
        client.unarchive(bad),
        client.delete(bad),
        client.list_messages(bad),
        client.replay(bad),
        client.list_pending_reviews(session_id=bad or "..."),
        client.resolve_review(bad or "..", session_id="good"),
        client.chat("good", "hi", agent_id=bad or ".."),
        client.start(bad or "..."),
        client.start("fine", agent_id=bad or ".."),
    ]
    for call in calls:
        with pytest.raises(InvalidArgument) as caught:
            await call
        assert isinstance(caught.value, InvalidId) or bad == "", caught.value
    with pytest.raises(InvalidArgument):
        async with client.run(bad or "..", "hi"):
            pass
    assert sum(store.request_counts.values()) == 0


async def test_error_carries_exactly_one_error_info(counted) -> None:
    served, _ = counted
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.client.stub.Get(pb.GetRequest(session_id="missing"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    status = rpc_status.from_call(caught.value)
    infos = []
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        assert detail.Unpack(info)
        infos.append(info)
    assert len(infos) == 1
    assert infos[0].reason == "SESSION_NOT_FOUND"
    assert infos[0].domain == "sessiond"
    assert infos[0].metadata["session_id"] == "missing"


async def test_unknown_session_is_not_found(counted) -> None:
    served, _ = counted
    for call in (
        served.client.get("nobody"),
        served.client.chat("nobody", "hi"),
        served.client.list_messages("nobody"),
        served.client.archive("nobody"),
    ):
        with pytest.raises(SessionNotFound):
            await call


async def test_resume_without_hibernation_is_failed_precondition(counted) -> None:
    served, _ = counted
    with pytest.raises(InvalidTransition):
        await served.client.resume("good")
    with pytest.raises(InvalidTransition):
        async with served.client.run("good", resume=True):
            pass


async def test_oversize_message_is_refused_before_any_storage_call(serve) -> None:
    store = MemoryStore()
    served = await serve(store=store, max_message_bytes=4096)
    await served.client.start("big")
    store.request_counts.clear()
    with pytest.raises(MessageTooLarge) as caught:
        await served.client.chat("big", "x" * 5000)
    assert caught.value.metadata["limit"] == "4096"
    with pytest.raises(MessageTooLarge):
        async with served.client.run("big", text_message("user", "y" * 5000)):
            pass
    assert sum(store.request_counts.values()) == 0
    # Inside a running turn, an oversize append ends the stream with the
    # error and the turn as ERROR; nothing unacknowledged is stored (the
    # input is kept in the turn's failure event only).
    with pytest.raises(MessageTooLarge):
        async with served.client.run("big", "small") as turn:
            await turn.append([text_message("assistant", "z" * 5000)])
    session = await served.client.get("big")
    assert session.status == session_pb2.SESSION_STATUS_ERROR
    assert await served.client.all_messages("big") == []
    replay = await served.client.replay("big")
    failed = [e for e in replay.turns[0].events if e.type == "failed"]
    assert json.loads(failed[0].data_json)["unrecorded_input"]["content"] == [{"text": "small"}]


async def test_malformed_content_is_refused(counted) -> None:
    served, _ = counted
    bad_blocks = [
        content_pb2.ContentBlock(raw_json="[1, 2]"),
        content_pb2.ContentBlock(raw_json='{"a": 1, "b": 2}'),
        content_pb2.ContentBlock(raw_json="{not json"),
        content_pb2.ContentBlock(tool_use=content_pb2.ToolUseBlock(name="x")),
        content_pb2.ContentBlock(),
    ]
    for block in bad_blocks:
        message = content_pb2.Message(role=content_pb2.ROLE_USER, content=[block])
        with pytest.raises(InvalidArgument):
            async with served.client.run("good", message):
                pass
    with pytest.raises(InvalidArgument):
        async with served.client.run("good", content_pb2.Message(content=[])):
            pass


async def test_page_size_and_tokens(counted) -> None:
    served, _ = counted
    with pytest.raises(InvalidArgument):
        await served.client.list(page_size=-1)
    with pytest.raises(InvalidPageToken):
        await served.client.list(page_token="garbage")
    # A token made for one listing is refused by another.
    for number in range(3):
        await served.client.start(f"p{number}")
    token = (await served.client.list(page_size=1)).next_page_token
    assert token
    with pytest.raises(InvalidPageToken):
        await served.client.list(page_size=1, page_token=token, labels={"a": "b"})
    with pytest.raises(InvalidPageToken):
        await served.client.list_messages("good", page_token=token)
    huge = await served.client.list(page_size=10**6)
    assert len(huge.sessions) == 4


async def test_corrupt_object_fails_that_session_only(counted) -> None:
    served, store = counted
    await served.client.start("broken")
    await served.client.chat("good", "still fine?")
    await store.put(
        "tenants/default/session_broken/sessiond/head.json", b'{"truncated": ', mode=OVERWRITE
    )
    served.server.context.repo.forget(_keys(), "broken")
    with pytest.raises(CorruptObject) as caught:
        await served.client.get("broken")
    assert caught.value.metadata["session_id"] == "broken"
    with pytest.raises(CorruptObject):
        await served.client.chat("broken", "hello?")
    assert (await served.client.chat("good", "and now?")).text == "echo: and now?"
    body = (await store.get("tenants/default/session_broken/sessiond/head.json")).body
    assert body == b'{"truncated": '  # nothing was overwritten


def _keys():
    from sessiond.server.domain.keys import TenantKeys

    return TenantKeys("default")
