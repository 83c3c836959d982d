"""The Python client library end to end: a real server on a free port, local store and S3 (moto).

Typed arguments and conveniences, ``run()`` as a context manager, typed
errors, and export / import through files.
"""

from __future__ import annotations

import json
import os
import tarfile
from datetime import UTC, datetime

import pytest

from sessiond.client import AsyncClient, TransferProgress, event, message_text, text_message
from sessiond.errors import (
    InvalidArgument,
    InvalidId,
    SessionAlreadyExists,
    SessionArchived,
    SessionBusy,
    SessionNotFound,
)
from sessiond.v1 import session_pb2, turn_pb2

pytestmark = pytest.mark.parametrize("store_kind", ["local", "s3"], indirect=True)


async def test_sessions_with_typed_arguments(served) -> None:
    client = served.client
    parent = (await client.start("parent")).session
    started = await client.start(
        "child",
        title="Trip",
        labels={"team": "travel"},
        metadata={"owner": "ada"},
        parent_session_id=parent.session_id,
        agent_state={"user": "Ada"},
    )
    assert started.created
    again = await client.start("child", return_existing=True)
    assert not again.created and again.session.title == "Trip"
    with pytest.raises(SessionAlreadyExists):
        await client.start("child")
    got = await client.get("child")
    assert got.parent_session_id == "parent" and dict(got.labels) == {"team": "travel"}
    assert json.loads(got.agents[0].state_json) == {"user": "Ada"}

    # Statuses and the archived filter by name; iter_sessions follows page tokens.
    await client.chat("parent", "hi")
    finished = await client.list(statuses=["finished"])
    assert [s.session_id for s in finished.sessions] == ["parent"]
    for number in range(5):
        await client.start(f"more-{number}")
    listed = [s.session_id async for s in client.iter_sessions(page_size=2)]
    assert sorted(listed) == sorted(["parent", "child", *(f"more-{n}" for n in range(5))])
    archived = await client.archive("more-0")
    assert archived.archived
    assert [s.session_id async for s in client.iter_sessions(archived="only")] == ["more-0"]
    assert len([s async for s in client.iter_sessions(archived=True)]) == 7
    with pytest.raises(SessionArchived):
        await client.chat("more-0", "hello?")
    assert not (await client.unarchive("more-0")).archived
    await client.delete("more-0")
    with pytest.raises(SessionNotFound) as caught:
        await client.get("more-0")
    assert caught.value.reason == "SESSION_NOT_FOUND" and caught.value.code == "NOT_FOUND"
    with pytest.raises(InvalidId):
        await client.get("no/slashes")
    with pytest.raises(ValueError):
        await client.list(statuses=["sleeping"])


async def test_run_context_manager_restores_appends_and_ends(served) -> None:
    client = served.client
    await client.start("run", agent_state={"step": 0})
    await client.chat("run", "first")
    async with client.run("run", "what is 2+3?") as turn:
        assert [message_text(m) for m in turn.history] == ["first", "echo: first"]
        assert turn.input is not None and message_text(turn.input) == "what is 2+3?"
        assert turn.agent_state == {"step": 0}
        assert turn.session.status == session_pb2.SESSION_STATUS_RUNNING
        assert turn.session.lease.holder
        ack = await turn.append(
            ["Let me think."], state={"step": 1}, events=[event("tool.called", {"tool": "calc"})]
        )
        assert [m.index for m in ack.messages] == [2, 3]  # the input commits with the append
        # Leaving the block without an ending finishes the turn.
    assert turn.ended is not None
    assert turn.session.status == session_pb2.SESSION_STATUS_FINISHED
    assert turn.turn.status == turn_pb2.TURN_STATUS_FINISHED
    timeline = await client.timeline("run")
    assert "tool.called" in [e.type for e in timeline[-1].events]


async def test_exception_in_the_block_fails_the_turn(served) -> None:
    client = served.client
    await client.start("boom")
    with pytest.raises(ZeroDivisionError):
        async with client.run("boom", "divide") as turn:
            await turn.append([text_message("assistant", "dividing")])
            1 / 0  # noqa: B018
    session = await client.get("boom")
    assert session.status == session_pb2.SESSION_STATUS_ERROR
    last = (await client.timeline("boom"))[-1]
    assert last.status == turn_pb2.TURN_STATUS_ERROR
    assert "ZeroDivisionError" in last.error.message
    # Acknowledged appends stay; the session takes new turns.
    assert [message_text(m) for m in await client.all_messages("boom")] == ["divide", "dividing"]
    assert (await client.chat("boom", "again")).text == "echo: again"


async def test_run_is_for_the_callers_own_runtime(served) -> None:
    client = served.client
    await client.start("engine")
    with pytest.raises(InvalidArgument, match="chat"):
        client.run("engine", "hi", engine="echo")
    assert (await client.get("engine")).turn_count == 0  # nothing was sent


async def test_hibernate_review_and_resume_with_the_runtime(served) -> None:
    client = served.client
    await client.start("ask")
    review = turn_pb2.ReviewRequest(
        review_id="rv-1", tool_name="send_email", input_json='{"to": "boss"}'
    )
    async with client.run("ask", "email my boss") as turn:
        ended = await turn.hibernate(["Asking first."], snapshot=b'{"pc": 3}', reviews=[review])
    assert ended.session.status == session_pb2.SESSION_STATUS_WAITING
    pending = [r async for r in client.iter_pending_reviews()]
    assert [(r.session_id, r.review_id) for r in pending] == [("ask", "rv-1")]
    decided = await client.resolve_review(
        "rv-1", action="edit", edited_input={"to": "team"}, reviewer="ada", comment="team"
    )
    assert decided.session.status == session_pb2.SESSION_STATUS_HIBERNATED
    async with client.run("ask", resume=True) as turn:
        assert turn.snapshot is not None and turn.snapshot.data == b'{"pc": 3}'
        assert json.loads(turn.reviews[0].decision.edited_input_json) == {"to": "team"}
        await turn.finish(["Sent to the team."])
    assert turn.session.status == session_pb2.SESSION_STATUS_FINISHED


async def test_chat_checkpoint_and_resume(served) -> None:
    client = served.client
    await client.start("later")
    held = await client.chat("later", "think", checkpoint="after_prompt")
    assert held.text == "" and held.session.status == session_pb2.SESSION_STATUS_HIBERNATED
    resumed = await client.resume("later")
    assert resumed.text == "echo: think" and resumed.turn.turn_id == held.turn.turn_id


async def test_busy_session_error_carries_the_lease_expiry(served) -> None:
    client = served.client
    await client.start("held")
    async with client.run("held", "working") as turn:
        with pytest.raises(SessionBusy) as caught:
            await client.chat("held", "me too")
        expiry = datetime.fromisoformat(caught.value.lease_expire_time.replace("Z", "+00:00"))
        assert expiry > datetime.now(UTC)
        assert caught.value.code == "ABORTED"
        await turn.finish()
    with pytest.raises(InvalidArgument):
        await client.list(page_size=-1)


async def test_export_to_file_streams_chunks_and_import_file_restores(
    served, serve, make_store, tmp_path
) -> None:
    client = served.client
    for sid in ("exp-a", "exp-b"):
        await client.start(sid, title=sid)
        for number in range(3):
            await client.chat(sid, f"{sid} message {number} " + os.urandom(40_000).hex())
    path = tmp_path / "bundle.tar.gz"
    part = tmp_path / "bundle.tar.gz.part"
    seen: list[TransferProgress] = []

    def on_progress(progress: TransferProgress) -> None:
        seen.append(progress)
        if progress.bytes_done:
            # Every chunk is on disk before the next one arrives.
            assert part.stat().st_size == progress.bytes_done

    result = await client.export_to_file(
        path, session_ids=["exp-a", "exp-b"], on_progress=on_progress
    )
    assert result.path == str(path) and result.size == path.stat().st_size
    assert not part.exists()
    assert result.manifest.session_count == 2 and result.manifest.message_count == 12
    assert len({p.bytes_done for p in seen}) > 2, "the bundle came in several chunks"
    assert seen[-1].sessions_done == seen[-1].sessions_total == 2
    with tarfile.open(path) as tar:
        assert "manifest.json" in tar.getnames()

    # A failed export leaves neither the file nor its .part behind.
    with pytest.raises(SessionNotFound):
        await client.export_to_file(tmp_path / "bad.tar.gz", session_ids=["exp-a", "missing"])
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("bad")) == []

    other = await serve(store=await make_store("other"))
    sent: list[TransferProgress] = []
    imported = await other.client.import_file(path, on_progress=sent.append, chunk_size=16_384)
    assert sorted(imported.imported_session_ids) == ["exp-a", "exp-b"]
    assert imported.message_count == 12
    assert len(sent) == -(-result.size // 16_384)
    assert sent[-1].bytes_done == sent[-1].bytes_total == result.size
    original = [message_text(m) for m in await client.all_messages("exp-b")]
    assert [message_text(m) for m in await other.client.all_messages("exp-b")] == original
    # Importing the same bundle again is a retry (nothing changes); a newer one conflicts.
    again = await other.client.import_file(path)
    assert sorted(again.imported_session_ids) == ["exp-a", "exp-b"]
    await client.chat("exp-a", "one more")
    newer = tmp_path / "newer.tar.gz"
    await client.export_to_file(newer, session_ids=["exp-a"])
    with pytest.raises(SessionAlreadyExists):
        await other.client.import_file(newer)
    skipped = await other.client.import_file(newer, on_conflict="skip")
    assert list(skipped.skipped_session_ids) == ["exp-a"]
    assert (await other.client.get("exp-a")).message_count == 6


async def test_client_options_and_per_call_timeout(served) -> None:
    async with AsyncClient(served.target, timeout=5, metadata=[("x-trace", "t1")]) as client:
        await client.wait_ready(timeout=5)
        started = await client.start(timeout=None)
        assert started.session.session_id.startswith("s-")
        assert (await client.get(started.session.session_id, timeout=2)).session_id


async def test_a_single_string_or_message_is_one_message(served) -> None:
    client = served.client
    await client.start("single")
    async with client.run("single", "hi") as turn:
        ack = await turn.append("one string")
        assert [m.message.content[0].text for m in ack.messages] == ["hi", "one string"]
        ended = await turn.finish(text_message("assistant", "one message"))
    assert ended.session.message_count == 3


async def test_append_redacts_and_keeps_strands_state(served) -> None:
    client = served.client
    await client.start("redact")
    await client.chat("redact", "my card is 4111 1111 1111 1111")
    async with client.run("redact", "thanks") as turn:
        await turn.append(
            "You're welcome.",
            redactions={0: text_message("user", "[redacted]")},
            conversation_manager_state={
                "__name__": "SlidingWindowConversationManager",
                "removed_message_count": 0,
                "model_call_count": 2,
            },
            internal_state={"interrupt_state": {"interrupts": {}, "context": {}}},
        )
    listed = (await client.list_messages("redact")).messages
    assert message_text(listed[0].redact_message) == "[redacted]"
    assert message_text(listed[0].message).startswith("my card")  # kept, shown redacted
    assert not listed[1].HasField("redact_message")
    (agent,) = (await client.get("redact")).agents
    assert json.loads(agent.conversation_manager_state_json)["model_call_count"] == 2
    assert "interrupt_state" in json.loads(agent.internal_state_json)
    # A bad index is refused and changes nothing.
    with pytest.raises(InvalidArgument):
        async with client.run("redact", "again") as turn:
            await turn.append(redactions={99: text_message("user", "x")})
    assert [m.index for m in (await client.list_messages("redact")).messages] == [0, 1, 2, 3]


async def test_finishing_with_a_redaction_ends_the_turn(served) -> None:
    """Redactions copy the tail's turns; the ending must land on the copy that is stored."""
    client = served.client
    await client.start("redact-end")
    await client.chat("redact-end", "secret 1234")
    async with client.run("redact-end", "more") as turn:
        ended = await turn.finish(
            "ok", redactions={0: text_message("user", "[redacted]")}, usage=(3, 4)
        )
    assert ended.turn.status == turn_pb2.TURN_STATUS_FINISHED
    last = (await client.timeline("redact-end"))[-1]
    assert last.status == turn_pb2.TURN_STATUS_FINISHED
    assert [e.type for e in last.events][-2:] == ["messages.redacted", "finished"]
    assert last.usage.output_tokens == 4
    listed = (await client.list_messages("redact-end")).messages
    assert message_text(listed[0].redact_message) == "[redacted]"
    # The next turn runs: the stored head is consistent.
    assert (await client.chat("redact-end", "again")).text == "echo: again"
