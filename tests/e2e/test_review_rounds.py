"""Review rounds, retries of decisions, reviews across archive and delete (real server)."""

from __future__ import annotations

from sessiond.client import message_text
from sessiond.v1 import session_pb2, turn_pb2

APPROVE = turn_pb2.REVIEW_ACTION_APPROVE
REJECT = turn_pb2.REVIEW_ACTION_REJECT


async def test_resolve_retry_same_request_id_after_turn_moved_to_pack(serve) -> None:
    served = await serve()
    client = served.client
    await client.start("s")
    async with client.run("s", "go") as turn:
        await turn.hibernate(
            ["calling"],
            reviews=[turn_pb2.ReviewRequest(review_id="rv-1", tool_name="rm", input_json="{}")],
        )
    first = await client.resolve_review(
        "rv-1", session_id="s", action="approve", request_id="res-1"
    )
    assert first.review.state == turn_pb2.REVIEW_STATE_DECIDED
    # Retry while the turn is still in the tail: fine.
    again = await client.resolve_review(
        "rv-1", session_id="s", action="approve", request_id="res-1"
    )
    assert again.review.review_id == "rv-1"
    async with client.run("s", resume=True) as turn:
        await turn.append([f"m{i}" for i in range(60)])
        await turn.finish("done")
    # The tail was past 48 messages: the ended turn moved into a pack.
    head_tail_turns = [t.number for t in await client.timeline("s")]
    assert head_tail_turns == [1]
    retried = await client.resolve_review(
        "rv-1", session_id="s", action="approve", request_id="res-1"
    )
    assert retried.review.review_id == "rv-1"
    assert retried.review.decision.action == APPROVE


async def test_delete_waiting_session_clears_tenant_inbox(serve) -> None:
    served = await serve()
    client = served.client
    await client.start("w")
    async with client.run("w", "go") as turn:
        await turn.hibernate(
            reviews=[turn_pb2.ReviewRequest(review_id="rv-w", tool_name="rm", input_json="{}")]
        )
    assert [r.review_id for r in (await client.list_pending_reviews()).reviews] == ["rv-w"]
    await client.delete("w")
    assert (await client.list_pending_reviews()).reviews == []


async def test_archive_waiting_then_resolve_and_resume(serve) -> None:
    served = await serve()
    client = served.client
    await client.start("a")
    async with client.run("a", "go") as turn:
        await turn.hibernate(
            snapshot=b"snap",
            reviews=[turn_pb2.ReviewRequest(review_id="rv-a", tool_name="rm", input_json="{}")],
        )
    await client.archive("a")
    got = await client.get("a")
    assert got.archived and got.status == session_pb2.SESSION_STATUS_WAITING
    resolved = await client.resolve_review("rv-a", session_id="a", action="reject")
    assert resolved.session.status == session_pb2.SESSION_STATUS_HIBERNATED
    await client.unarchive("a")
    async with client.run("a", resume=True) as turn:
        assert turn.snapshot.data == b"snap"
        assert turn.reviews[0].decision.action == REJECT
        await turn.finish("ok")
    got = await client.get("a")
    tl = await client.timeline("a")
    assert got.status == session_pb2.SESSION_STATUS_FINISHED
    assert tl[-1].status == turn_pb2.TURN_STATUS_FINISHED
    assert got.pending_review_count == 0
    assert (await client.list_pending_reviews()).reviews == []
    msgs = [message_text(m) for m in (await client.list_messages("a")).messages]
    assert msgs == ["go", "ok"]
    assert got.message_count == 2


async def test_resume_with_partial_resolutions_and_snapshot(serve) -> None:
    """Hibernate with two reviews, resolve one, resume -> pending; resolve other, resume."""
    served = await serve()
    client = served.client
    await client.start("p")
    async with client.run("p", "go") as turn:
        await turn.hibernate(
            ["x"],
            snapshot=b"s1",
            usage=(5, 5),
            reviews=[
                turn_pb2.ReviewRequest(review_id="r1", tool_name="a", input_json="1"),
                turn_pb2.ReviewRequest(review_id="r2", tool_name="b", input_json="2"),
            ],
        )
    await client.resolve_review("r1", session_id="p", action="approve")
    got = await client.get("p")
    assert got.status == session_pb2.SESSION_STATUS_WAITING and got.pending_review_count == 1
    await client.resolve_review("r2", session_id="p", action="edit", edited_input={"v": 3})
    async with client.run("p", resume=True) as turn:
        assert [r.decision.action for r in turn.reviews] == [APPROVE, turn_pb2.REVIEW_ACTION_EDIT]
        await turn.hibernate(["y"], snapshot=b"s2", usage=(1, 1))
    async with client.run("p", resume=True) as turn:
        assert turn.snapshot.data == b"s2"
        await turn.finish("z", usage=(2, 2))
    got = await client.get("p")
    tl = await client.timeline("p")
    assert len(tl) == 1 and tl[0].resume_count == 2
    assert tl[0].usage.total_tokens == 16 and got.usage.total_tokens == 16
    assert tl[0].message_count == 4 == got.message_count


async def test_second_review_round_keeps_first_round_in_timeline(serve) -> None:
    served = await serve()
    client = served.client
    await client.start("two")
    async with client.run("two", "go") as turn:
        await turn.hibernate(
            ["c1"], reviews=[turn_pb2.ReviewRequest(review_id="r1", tool_name="a", input_json="1")]
        )
    await client.resolve_review("r1", session_id="two", action="approve", request_id="res-a")
    async with client.run("two", resume=True) as turn:
        await turn.hibernate(
            ["c2"], reviews=[turn_pb2.ReviewRequest(review_id="r2", tool_name="b", input_json="2")]
        )
    tl = await client.timeline("two")
    events = [e.type for e in tl[0].events]
    assert events.count("review.requested") == 2 and events.count("review.decided") == 1
    # The retry of the first decision answers the original outcome.
    retried = await client.resolve_review(
        "r1", session_id="two", action="approve", request_id="res-a"
    )
    assert retried.review.review_id == "r1"
    # The timeline keeps every review the turn asked for.
    assert sorted(r.review_id for r in tl[0].reviews) == ["r1", "r2"]


async def test_second_review_round_timeline_lists_both_rounds(serve) -> None:
    served = await serve()
    client = served.client
    await client.start("two")
    async with client.run("two", "go") as turn:
        await turn.hibernate(
            ["c1"], reviews=[turn_pb2.ReviewRequest(review_id="r1", tool_name="a", input_json="1")]
        )
    await client.resolve_review("r1", session_id="two", action="approve")
    async with client.run("two", resume=True) as turn:
        await turn.hibernate(
            ["c2"], reviews=[turn_pb2.ReviewRequest(review_id="r2", tool_name="b", input_json="2")]
        )
    tl = await client.timeline("two")
    assert sorted(r.review_id for r in tl[0].reviews) == ["r1", "r2"]
