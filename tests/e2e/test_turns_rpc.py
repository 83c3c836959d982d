"""Run, Chat, Resume, reviews and Replay, end to end on local and S3 stores.

"Another replica" is a second server process-equivalent: its own server,
client, caches and store adapter on the same directory or bucket prefix.
"""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest

from sessiond.client.aio import text_message
from sessiond.errors import (
    FingerprintMismatch,
    InvalidTransition,
    ReviewsPending,
    RuntimeRequired,
    SessionBusy,
)
from sessiond.v1 import content_pb2, session_pb2, turn_pb2

pytestmark = pytest.mark.parametrize("store_kind", ["local", "s3"], indirect=True)


def tool_use(tool_id: str, name: str, tool_input: dict) -> content_pb2.Message:
    return content_pb2.Message(
        role=content_pb2.ROLE_ASSISTANT,
        content=[
            content_pb2.ContentBlock(text="let me check"),
            content_pb2.ContentBlock(
                tool_use=content_pb2.ToolUseBlock(
                    tool_use_id=tool_id, name=name, input_json=json.dumps(tool_input)
                )
            ),
        ],
    )


def tool_result(tool_id: str, text: str) -> content_pb2.Message:
    return content_pb2.Message(
        role=content_pb2.ROLE_USER,
        content=[
            content_pb2.ContentBlock(
                tool_result=content_pb2.ToolResultBlock(
                    tool_use_id=tool_id,
                    status="success",
                    content=[content_pb2.ContentBlock(text=text)],
                )
            )
        ],
    )


async def test_run_restores_context_appends_and_finishes(served) -> None:
    client = served.client
    await client.start("run-1", agent_state_json='{"step": 0}')
    await client.chat("run-1", "first")
    async with client.run("run-1", "what is 2+3?") as turn:
        assert turn.started.session.status == session_pb2.SESSION_STATUS_RUNNING
        assert turn.started.session.lease.epoch >= 1
        assert [m.message.content[0].text for m in turn.history] == ["first", "echo: first"]
        assert json.loads(turn.started.agent_state_json) == {"step": 0}
        ack = await turn.append([tool_use("t1", "add", {"a": 2, "b": 3})], state={"step": 1})
        assert [m.index for m in ack.messages] == [2, 3]  # the input, then the tool call
        ack = await turn.append([tool_result("t1", "5")], usage=(10, 3))
        assert [m.index for m in ack.messages] == [4]
        ended = await turn.finish([text_message("assistant", "2+3 is 5")])
    assert ended.turn.status == turn_pb2.TURN_STATUS_FINISHED
    assert ended.session.status == session_pb2.SESSION_STATUS_FINISHED
    assert not ended.session.HasField("lease")
    assert ended.session.message_count == 6
    assert ended.turn.usage.input_tokens == 10
    messages = await client.all_messages("run-1")
    assert messages[3].message.content[1].tool_use.name == "add"
    assert json.loads(messages[3].message.content[1].tool_use.input_json) == {"a": 2, "b": 3}
    assert messages[4].message.content[0].tool_result.content[0].text == "5"
    session = await client.get("run-1")
    assert json.loads(session.agents[0].state_json) == {"step": 1}


async def test_second_run_is_busy_while_first_holds_the_lease(served) -> None:
    client = served.client
    await client.start("busy")
    async with client.run("busy", "one") as first:
        with pytest.raises(SessionBusy) as caught:
            async with client.run("busy", "two"):
                pass
        assert caught.value.lease_expire_time
        with pytest.raises(SessionBusy):
            await client.chat("busy", "three")
        await first.finish([text_message("assistant", "done")])
    assert (await client.chat("busy", "four")).text == "echo: four"


async def test_broken_stream_ends_turn_as_error_and_keeps_acknowledged(served) -> None:
    client = served.client
    await client.start("broken")
    call = client.stub.Run()
    from sessiond.v1 import session_service_pb2 as pb

    open_ = pb.RunOpen(session_id="broken")
    open_.input.CopyFrom(text_message("user", "hello"))
    await call.write(pb.RunRequest(open=open_))
    assert (await call.read()).WhichOneof("event") == "started"
    update = pb.TurnUpdate(messages=[text_message("assistant", "half an answer")])
    await call.write(pb.RunRequest(append=pb.RunAppend(update=update)))
    assert (await call.read()).WhichOneof("event") == "appended"
    call.cancel()
    for _ in range(100):
        session = await client.get("broken")
        if session.status == session_pb2.SESSION_STATUS_ERROR:
            break
        await asyncio.sleep(0.05)
    assert session.status == session_pb2.SESSION_STATUS_ERROR
    assert not session.HasField("lease")
    texts = [m.message.content[0].text for m in await client.all_messages("broken")]
    assert texts == ["hello", "half an answer"]
    replay = await client.replay("broken")
    assert replay.turns[0].error.code == "STREAM_BROKEN"
    # The session is free at once: no waiting for the lease to expire.
    assert (await client.chat("broken", "again")).text == "echo: again"


async def test_half_closed_stream_fails_the_turn(served) -> None:
    client = served.client
    await client.start("half")
    call = client.stub.Run()
    from sessiond.v1 import session_service_pb2 as pb

    open_ = pb.RunOpen(session_id="half")
    open_.input.CopyFrom(text_message("user", "hello"))
    await call.write(pb.RunRequest(open=open_))
    await call.read()
    await call.done_writing()
    assert await call.read() == grpc.aio.EOF
    session = await client.get("half")
    assert session.status == session_pb2.SESSION_STATUS_ERROR


async def test_chat_echo_and_usage(served) -> None:
    client = served.client
    await client.start("chat")
    reply = await client.chat("chat", "hello there")
    assert reply.text == "echo: hello there"
    assert reply.session.message_count == 2
    assert reply.turn.usage.total_tokens == 5
    assert [m.index for m in reply.messages] == [0, 1]
    again = await client.chat("chat", "hello there", request_id="c-1")
    repeat = await client.chat("chat", "hello there", request_id="c-1")
    assert repeat.turn.turn_id == again.turn.turn_id
    assert (await client.get("chat")).turn_count == 2


async def test_after_prompt_checkpoint_resumes_on_another_replica(serve, make_store) -> None:
    one = await serve(store=await make_store())
    two = await serve(store=await make_store())
    await one.client.start("later")
    held = await one.client.chat(
        "later", "think about it", checkpoint=turn_pb2.CHECKPOINT_POLICY_AFTER_PROMPT
    )
    assert held.text == ""
    assert held.session.status == session_pb2.SESSION_STATUS_HIBERNATED
    assert held.turn.status == turn_pb2.TURN_STATUS_HIBERNATED
    assert [m.message.content[0].text for m in held.messages] == ["think about it"]
    with pytest.raises(InvalidTransition):
        await two.client.chat("later", "something else")
    resumed = await two.client.resume("later")
    assert resumed.text == "echo: think about it"
    assert resumed.turn.turn_id == held.turn.turn_id
    assert resumed.turn.resume_count == 1
    assert resumed.session.status == session_pb2.SESSION_STATUS_FINISHED
    with pytest.raises(InvalidTransition):
        await one.client.resume("later")


async def test_hibernate_with_reviews_resolve_and_resume_elsewhere(serve, make_store) -> None:
    one = await serve(store=await make_store())
    two = await serve(store=await make_store())
    await one.client.start("ask")
    await one.client.start("ask-2")
    review = turn_pb2.ReviewRequest(
        review_id="rv-1",
        tool_use_id="t9",
        tool_name="send_email",
        input_json='{"to": "boss@example.com"}',
        description="sends mail on your behalf",
    )
    async with one.client.run("ask", "email my boss") as turn:
        ended = await turn.hibernate(
            [tool_use("t9", "send_email", {"to": "boss@example.com"})],
            snapshot=b'{"pc": 7}',
            reviews=[review],
        )
    assert ended.session.status == session_pb2.SESSION_STATUS_WAITING
    assert ended.session.pending_review_count == 1
    async with one.client.run("ask-2", "also this") as turn:
        await turn.hibernate(reviews=[turn_pb2.ReviewRequest(tool_name="rm", input_json="{}")])

    pending = await two.client.list_pending_reviews()
    assert [(r.session_id, r.tool_name) for r in pending.reviews] == [
        ("ask", "send_email"),
        ("ask-2", "rm"),
    ]
    mine = await two.client.list_pending_reviews(session_id="ask")
    assert [r.review_id for r in mine.reviews] == ["rv-1"]
    fingerprint = mine.reviews[0].fingerprint

    with pytest.raises(ReviewsPending):
        async with two.client.run("ask", resume=True):
            pass
    with pytest.raises(RuntimeRequired):
        await two.client.resume("ask")
    with pytest.raises(FingerprintMismatch):
        await two.client.resolve_review(
            "rv-1",
            session_id="ask",
            fingerprint="0" * 64,
            decision=turn_pb2.ReviewDecision(action=turn_pb2.REVIEW_ACTION_APPROVE),
        )
    resolved = await two.client.resolve_review(
        "rv-1",
        fingerprint=fingerprint,
        decision=turn_pb2.ReviewDecision(
            action=turn_pb2.REVIEW_ACTION_EDIT,
            edited_input_json='{"to": "team@example.com"}',
            reviewer="ada",
            comment="send it to the team",
        ),
    )
    assert resolved.review.state == turn_pb2.REVIEW_STATE_DECIDED
    assert resolved.session.status == session_pb2.SESSION_STATUS_HIBERNATED
    assert [r.session_id for r in (await one.client.list_pending_reviews()).reviews] == ["ask-2"]

    async with one.client.run("ask", resume=True) as turn:
        assert turn.started.snapshot.data == b'{"pc": 7}'
        decision = turn.started.reviews[0].decision
        assert decision.action == turn_pb2.REVIEW_ACTION_EDIT
        assert json.loads(decision.edited_input_json) == {"to": "team@example.com"}
        assert [m.index for m in turn.history] == [0, 1]
        ended = await turn.finish(
            [tool_result("t9", "sent"), text_message("assistant", "Sent to the team.")]
        )
    assert ended.session.status == session_pb2.SESSION_STATUS_FINISHED
    replay = await two.client.replay("ask")
    events = [event.type for event in replay.turns[0].events]
    assert events[:2] == ["turn.started", "messages.appended"]
    assert "review.requested" in events and "review.decided" in events
    assert events[-1] == "finished" and "resumed" in events
    assert replay.turns[0].reviews[0].decision.reviewer == "ada"


async def test_pending_reviews_page_across_the_tenant(served) -> None:
    client = served.client
    for number in range(5):
        sid = f"inbox-{number}"
        await client.start(sid)
        async with client.run(sid, "go") as turn:
            await turn.hibernate(
                reviews=[
                    turn_pb2.ReviewRequest(tool_name="tool", input_json=str(number))
                    for _ in range(2)
                ]
            )
    seen, token = [], ""
    while True:
        page = await client.list_pending_reviews(page_size=3, page_token=token)
        seen.extend((r.session_id, r.review_id) for r in page.reviews)
        token = page.next_page_token
        if not token:
            break
    assert len(seen) == 10 and len(set(seen)) == 10
    assert [sid for sid, _ in seen] == sorted(sid for sid, _ in seen)


async def test_fail_keeps_acknowledged_and_records_error(served) -> None:
    client = served.client
    await client.start("fails")
    async with client.run("fails", "try") as turn:
        await turn.append([text_message("assistant", "step one")])
        ended = await turn.fail("tool crashed")
    assert ended.turn.status == turn_pb2.TURN_STATUS_ERROR
    assert ended.turn.error.message == "tool crashed"
    assert ended.session.status == session_pb2.SESSION_STATUS_ERROR
    texts = [m.message.content[0].text for m in await client.all_messages("fails")]
    assert texts == ["try", "step one"]
