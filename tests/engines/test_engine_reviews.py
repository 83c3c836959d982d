"""Reviews of tool calls in server-engine turns, over a real OpenAI-compatible endpoint.

Two servers share one store ("another replica"): the turn hibernates on one,
the review is listed and decided there or on the other, and the turn resumes
on the other. Approve and edit need the caller's runtime (a Run with
``open.resume``); reject can be resumed with the unary Resume.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from fake_models import Answer, text, tool_call
from runtime import decision, engine_run, result, tool

from sessiond.errors import FingerprintMismatch, ReviewsPending, RuntimeRequired
from sessiond.server.domain.clock import ManualClock
from sessiond.server.storage.memory import MemoryStore
from sessiond.v1 import session_pb2, turn_pb2

APPROVE, REJECT, EDIT = (
    turn_pb2.REVIEW_ACTION_APPROVE,
    turn_pb2.REVIEW_ACTION_REJECT,
    turn_pb2.REVIEW_ACTION_EDIT,
)

TOOLS = [
    tool("lookup", "finds an address"),
    tool("send_email", "sends mail on your behalf", review=True),
]


@pytest.fixture
async def replicas(serve, fake_openai):
    """Two servers on one store, both with the openai engine on the fake endpoint."""
    store = MemoryStore()
    clock = ManualClock()
    options = {
        "engine": "openai",
        "openai_base_url": fake_openai.url,
        "model": "gpt-test",
        "engine_max_retries": 0,
    }
    one = await serve(store=store, clock=clock, **options)
    two = await serve(store=store, clock=clock, **options)
    return one, two, clock


async def hibernate_on_review(one, fake_openai, sid: str, *, tools=TOOLS) -> None:
    """A turn whose model looks up an address and wants to send an email."""
    await one.client.start(sid)
    fake_openai.queue(
        Answer(
            text=["I'll look it up and send it."],
            calls=[("c-look", "lookup", {"who": "boss"}), ("c-mail", "send_email", {"to": "boss"})],
        )
    )
    run = await engine_run(one.client, sid, "email my boss", engine="openai", tools=tools)
    assert await run.until_pause() is None  # nothing runs before the review
    assert run.ended.turn.status == turn_pb2.TURN_STATUS_WAITING
    assert run.ended.session.status == session_pb2.SESSION_STATUS_WAITING
    assert run.ended.session.pending_review_count == 1
    assert [m.index for m in run.appended] == [0, 1]  # the input and the assistant's calls


async def test_approve_resumes_on_another_replica_with_the_caller(replicas, fake_openai) -> None:
    one, two, _ = replicas
    await hibernate_on_review(one, fake_openai, "approve")
    pending = (await two.client.list_pending_reviews(session_id="approve")).reviews
    assert [(r.tool_name, r.tool_use_id) for r in pending] == [("send_email", "c-mail")]
    review = pending[0]
    assert json.loads(review.input_json) == {"to": "boss"}
    canonical = json.dumps(
        {"name": "send_email", "input": {"to": "boss"}}, sort_keys=True, separators=(",", ":")
    )
    assert review.fingerprint == hashlib.sha256(canonical.encode()).hexdigest()
    assert review.description == "sends mail on your behalf"
    with pytest.raises(ReviewsPending):
        await two.client.resume("approve")
    await two.client.resolve_review(
        review.review_id,
        session_id="approve",
        fingerprint=review.fingerprint,
        decision=decision(APPROVE),
    )
    # Approved calls run in the caller's runtime: the unary Resume cannot.
    with pytest.raises(RuntimeRequired):
        await two.client.resume("approve")
    fake_openai.queue(text("Sent to ", "boss@example.com."))
    run = await engine_run(two.client, "approve", None, resume=True, tools=TOOLS)
    asked = await run.until_pause()
    assert [(c.tool_use_id, json.loads(c.input_json)) for c in asked] == [
        ("c-look", {"who": "boss"}),
        ("c-mail", {"to": "boss"}),
    ]
    assert run.started.reviews[0].decision.action == APPROVE
    await run.answer(result("c-look", "boss@example.com"), result("c-mail", "sent"))
    assert await run.until_pause() is None
    assert run.ended.turn.status == turn_pb2.TURN_STATUS_FINISHED
    assert run.text == "Sent to boss@example.com."
    tool_messages = [m for m in fake_openai.bodies[-1]["messages"] if m["role"] == "tool"]
    assert [(m["tool_call_id"], m["content"]) for m in tool_messages] == [
        ("c-look", "boss@example.com"),
        ("c-mail", "sent"),
    ]
    replay = await one.client.replay("approve")
    events = [e.type for e in replay.turns[0].events]
    assert "review.requested" in events and "review.decided" in events and "resumed" in events


async def test_reject_resumes_with_unary_resume_and_tells_the_model(replicas, fake_openai) -> None:
    one, two, _ = replicas
    # Only reviewed calls: a rejection leaves nothing for the caller's runtime.
    await one.client.start("reject")
    fake_openai.queue(tool_call("c-mail", "send_email", {"to": "all"}))
    run = await engine_run(one.client, "reject", "email everyone", engine="openai", tools=TOOLS)
    assert await run.until_pause() is None
    review = (await two.client.list_pending_reviews(session_id="reject")).reviews[0]
    fake_openai.queue(text("OK, I did not send it."))
    resumed = await two.client.resume(
        "reject",
        resolutions=[
            session_service_resolution(review.review_id, decision(REJECT, comment="too broad"))
        ],
    )
    assert resumed.turn.status == turn_pb2.TURN_STATUS_FINISHED
    assert resumed.text == "OK, I did not send it."
    tool_message = next(m for m in fake_openai.bodies[-1]["messages"] if m["role"] == "tool")
    assert tool_message["tool_call_id"] == "c-mail"
    assert tool_message["content"].startswith("Error: A human reviewer rejected this tool call")
    assert "too broad" in tool_message["content"]
    stored = await two.client.all_messages("reject")
    rejected = stored[2].message.content[0].tool_result
    assert rejected.status == "error" and "too broad" in rejected.content[0].text


async def test_edit_runs_the_edited_input_and_keeps_the_original_call(
    replicas, fake_openai
) -> None:
    one, two, _ = replicas
    await hibernate_on_review(one, fake_openai, "edit")
    review = (await one.client.list_pending_reviews(session_id="edit")).reviews[0]
    with pytest.raises(FingerprintMismatch):
        await one.client.resolve_review(
            review.review_id, session_id="edit", fingerprint="0" * 64, decision=decision(APPROVE)
        )
    await one.client.resolve_review(
        review.review_id,
        session_id="edit",
        fingerprint=review.fingerprint,
        decision=decision(EDIT, edited={"to": "team"}, comment="send it to the team"),
    )
    fake_openai.queue(text("Sent to the team."))
    run = await engine_run(two.client, "edit", None, resume=True, tools=TOOLS)
    asked = await run.until_pause()
    assert {c.tool_use_id: json.loads(c.input_json) for c in asked}["c-mail"] == {"to": "team"}
    await run.answer(result("c-look", "found"), result("c-mail", "sent"))
    assert await run.until_pause() is None
    assert run.ended.turn.status == turn_pb2.TURN_STATUS_FINISHED
    stored = await two.client.all_messages("edit")
    call = stored[1].message.content[2].tool_use
    assert call.tool_use_id == "c-mail" and json.loads(call.input_json) == {"to": "boss"}
    mail_result = stored[2].message.content[1].tool_result
    assert mail_result.tool_use_id == "c-mail"
    assert "changed the input" in mail_result.content[0].text
    assert '{"to": "team"}' in mail_result.content[0].text
    assert mail_result.content[1].text == "sent"


async def test_expired_review_applies_its_default_decision(replicas, fake_openai) -> None:
    one, two, clock = replicas
    tools = [
        tool("send_email", "sends mail", review=True, ttl=60, default=REJECT),
        tool("pay", "pays a bill", review=True, ttl=60, default=APPROVE),
    ]
    await one.client.start("expire")
    fake_openai.queue(tool_call("c-mail", "send_email", {"to": "x"}))
    run = await engine_run(one.client, "expire", "mail x", engine="openai", tools=tools)
    assert await run.until_pause() is None
    review = (await two.client.list_pending_reviews(session_id="expire")).reviews[0]
    assert review.default_action == REJECT
    assert review.expire_time.seconds - review.create_time.seconds == 60
    with pytest.raises(ReviewsPending):
        await two.client.resume("expire")
    clock.advance(61)
    assert (await two.client.list_pending_reviews(session_id="expire")).reviews == []
    fake_openai.queue(text("It expired, so I did not send it."))
    resumed = await two.client.resume("expire")
    assert resumed.turn.status == turn_pb2.TURN_STATUS_FINISHED
    applied = resumed.turn.reviews[0].decision
    assert applied.action == REJECT and applied.reviewer == "sessiond:expired"
    tool_message = next(m for m in fake_openai.bodies[-1]["messages"] if m["role"] == "tool")
    assert "expired" in tool_message["content"]

    # A default approval needs the caller's runtime, like an approval.
    fake_openai.queue(tool_call("c-pay", "pay", {"bill": 7}))
    run = await engine_run(one.client, "expire", "pay bill 7", engine="openai", tools=tools)
    assert await run.until_pause() is None
    clock.advance(61)
    with pytest.raises(RuntimeRequired):
        await two.client.resume("expire")
    fake_openai.queue(text("Paid."))
    run = await engine_run(two.client, "expire", None, resume=True, tools=tools)
    assert [c.tool_use_id for c in await run.until_pause()] == ["c-pay"]
    await run.answer(result("c-pay", "ok"))
    assert await run.until_pause() is None
    assert run.ended.turn.status == turn_pb2.TURN_STATUS_FINISHED


def session_service_resolution(review_id: str, choice: turn_pb2.ReviewDecision):
    """A ReviewResolution for the unary Resume."""
    from sessiond.v1 import session_service_pb2

    return session_service_pb2.ReviewResolution(review_id=review_id, decision=choice)
