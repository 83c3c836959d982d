"""SessiondSessionManager with real Strands agents: guardrails, seeds, reviews, windows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from strands import Agent
from strands.agent.conversation_manager import SlidingWindowConversationManager
from strands.session.file_session_manager import FileSessionManager

from sessiond.server.storage.local import LocalDirectoryStore
from sessiond.strands import SessiondSessionManager
from sessiond.v1 import session_pb2
from support.strands_agents import DELETED, ApproveDeletes, delete_file, texts
from support.strands_model import ReplyModel, ToolCallingModel


async def in_thread(function, *args):
    return await asyncio.to_thread(function, *args)


class GuardrailModel(ReplyModel):
    """Like a Bedrock guardrail: the user's input is blocked and redacted."""

    async def stream(self, messages: list[Any], *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        self.calls += 1
        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        yield {"contentBlockDelta": {"delta": {"text": "I cannot help with that."}}}
        yield {"contentBlockStop": {}}
        yield {"redactContent": {"redactUserContentMessage": "[User input redacted.]"}}
        yield {"messageStop": {"stopReason": "guardrail_intervened"}}
        yield {
            "metadata": {
                "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2},
                "metrics": {"latencyMs": 1},
            }
        }


async def test_guardrail_redacting_the_input_of_an_invocation(served) -> None:
    """Strands redacts the user's input (messages[-1]) on a guardrail: the first
    message of the invocation, which the manager sent as the RunOpen input."""

    def invoke():
        manager = SessiondSessionManager("guarded", target=served.target)
        try:
            agent = Agent(model=ReplyModel(), session_manager=manager, callback_handler=None)
            agent("hello")
            agent.model = GuardrailModel()
            agent("my card is 4111 1111 1111 1111")
        finally:
            manager.close()

    await in_thread(invoke)
    messages = await served.client.all_messages("guarded")
    assert len(messages) == 4
    assert messages[2].HasField("redact_message")
    assert messages[2].redact_message.content[0].text == "[User input redacted.]"


async def test_initial_messages_of_a_new_agent_are_kept(served) -> None:
    """Strands' own managers persist Agent(messages=[...]) of a new session as 0..n-1."""
    seed = [
        {"role": "user", "content": [{"text": "seed question"}]},
        {"role": "assistant", "content": [{"text": "seed answer"}]},
    ]

    def first():
        manager = SessiondSessionManager("seeded", target=served.target)
        try:
            agent = Agent(
                model=ReplyModel(), messages=seed, session_manager=manager, callback_handler=None
            )
            agent("hello")
            return [m["content"][0]["text"] for m in agent.messages]
        finally:
            manager.close()

    live = await in_thread(first)
    assert live == ["seed question", "seed answer", "hello", "reply to: hello"]

    def second():
        manager = SessiondSessionManager("seeded", target=served.target)
        try:
            agent = Agent(model=ReplyModel(), session_manager=manager, callback_handler=None)
            return [m["content"][0]["text"] for m in agent.messages]
        finally:
            manager.close()

    restored = await in_thread(second)
    assert restored == live


async def test_reject_resumed_in_the_same_process_keeps_state(served) -> None:
    DELETED.clear()

    def ask():
        manager = SessiondSessionManager("hitl2", target=served.target)
        agent = Agent(
            model=ToolCallingModel("delete_file", {"path": "/x"}),
            tools=[delete_file],
            hooks=[ApproveDeletes(mark_state=True)],
            session_manager=manager,
            callback_handler=None,
        )
        agent.state.set("before", 1)
        result = agent("clean up")
        return manager, agent, result.stop_reason

    manager, agent, reason = await in_thread(ask)
    assert reason == "interrupt"
    pending = (await served.client.list_pending_reviews()).reviews
    assert len(pending) == 1
    await served.client.resolve_review(pending[0].review_id, action="reject", comment="no way")

    def resume():
        try:
            result = agent(manager.interrupt_responses(agent))
            return str(result)
        finally:
            manager.close()

    answer = await in_thread(resume)
    assert DELETED == []
    assert "the reviewer said no: no way" in answer
    session = await served.client.get("hitl2")
    assert json.loads(session.agents[0].state_json) == {"before": 1, "asked": True}
    msgs = await served.client.all_messages("hitl2")
    assert [m.index for m in msgs] == [0, 1, 2, 3]


async def test_sliding_window_written_by_manager_restored_by_file_manager(serve, tmp_path) -> None:
    served = await serve(store=LocalDirectoryStore(tmp_path))

    def run():
        manager = SessiondSessionManager("window", target=served.target)
        try:
            agent = Agent(
                model=ReplyModel(),
                conversation_manager=SlidingWindowConversationManager(window_size=6),
                session_manager=manager,
                callback_handler=None,
            )
            for n in range(7):
                agent(f"q{n}")
            return [
                m["content"][0]["text"] for m in agent.messages
            ], agent.conversation_manager.removed_message_count
        finally:
            manager.close()

    live, removed = await in_thread(run)
    assert removed > 0
    got = Agent(
        model=ReplyModel(),
        conversation_manager=SlidingWindowConversationManager(window_size=6),
        session_manager=FileSessionManager("window", storage_dir=str(tmp_path / "tenants/default")),
        callback_handler=None,
    )
    assert [m["content"][0]["text"] for m in got.messages] == live

    def again():
        manager = SessiondSessionManager("window", target=served.target)
        try:
            agent = Agent(
                model=ReplyModel(),
                conversation_manager=SlidingWindowConversationManager(window_size=6),
                session_manager=manager,
                callback_handler=None,
            )
            return [m["content"][0]["text"] for m in agent.messages]
        finally:
            manager.close()

    assert await in_thread(again) == live
    assert (await served.client.get("window")).message_count == 14


async def test_strands_appends_while_a_turn_waits_for_review(serve, tmp_path) -> None:
    DELETED.clear()
    served = await serve(store=LocalDirectoryStore(tmp_path))
    storage = str(tmp_path / "tenants/default")

    def make(manager):
        return Agent(
            model=ToolCallingModel("delete_file", {"path": "/y"}),
            tools=[delete_file],
            hooks=[ApproveDeletes(mark_state=True)],
            session_manager=manager,
            callback_handler=None,
        )

    def ask():
        manager = SessiondSessionManager("waiting", target=served.target)
        try:
            return make(manager)("clean up").stop_reason
        finally:
            manager.close()

    assert await in_thread(ask) == "interrupt"
    # A Strands writer appends while the turn waits.
    fsm = FileSessionManager("waiting", storage_dir=storage)
    strands = Agent(model=ReplyModel(), session_manager=fsm, callback_handler=None)
    fsm.append_message({"role": "user", "content": [{"text": "from strands"}]}, strands)
    fsm.append_message({"role": "assistant", "content": [{"text": "strands reply"}]}, strands)
    msg_dir = tmp_path / "tenants/default/session_waiting/agents/agent_default/messages"
    strands_files = {
        p.name: p.read_bytes() for p in msg_dir.iterdir() if int(p.stem.split("_")[1]) >= 2
    }
    assert strands_files

    pending = (await served.client.list_pending_reviews()).reviews
    await served.client.resolve_review(pending[0].review_id, action="approve")

    def resume():
        manager = SessiondSessionManager("waiting", target=served.target)
        try:
            agent = make(manager)
            return str(agent(manager.interrupt_responses(agent)))
        finally:
            manager.close()

    await in_thread(resume)
    assert DELETED == ["/y"]
    messages = await served.client.all_messages("waiting")
    indices = [m.index for m in messages]
    assert indices == sorted(set(indices))
    after = {p.name: p.read_bytes() for p in msg_dir.iterdir()}
    # Strands' files are neither overwritten nor deleted
    assert {k: after.get(k) == v for k, v in strands_files.items()} == {
        k: True for k in strands_files
    }
    session = await served.client.get("waiting")
    assert session.message_count == len(messages) and len(after) == len(messages)


async def test_another_agent_invoked_while_a_resolved_turn_waits(served) -> None:
    """Agent 'boss' is interrupted (WAITING); its review is approved; before boss
    resumes, agent 'clerk' of the same session is invoked with a plain prompt (its own
    manager, e.g. another process). Clerk's messages must not land in boss's history."""
    DELETED.clear()

    def ask():
        manager = SessiondSessionManager("office", target=served.target)
        try:
            boss = Agent(
                agent_id="boss",
                model=ToolCallingModel("delete_file", {"path": "/z"}),
                tools=[delete_file],
                hooks=[ApproveDeletes(mark_state=True)],
                session_manager=manager,
                callback_handler=None,
            )
            return boss("clean up").stop_reason
        finally:
            manager.close()

    assert await in_thread(ask) == "interrupt"
    pending = (await served.client.list_pending_reviews()).reviews
    await served.client.resolve_review(pending[0].review_id, action="approve")

    def clerk_turn():
        manager = SessiondSessionManager("office", target=served.target)
        try:
            clerk = Agent(
                agent_id="clerk", model=ReplyModel(), session_manager=manager, callback_handler=None
            )
            try:
                clerk("file the report")
                return "ok"
            except Exception as error:
                return type(error).__name__
        finally:
            manager.close()

    # Refused: the waiting turn belongs to boss; clerk's prompt lands nowhere.
    assert await in_thread(clerk_turn) == "InvalidTransition"
    boss_msgs = await served.client.all_messages("office", agent_id="boss")
    assert "file the report" not in texts(boss_msgs)
    session = await served.client.get("office")
    assert session.status == session_pb2.SESSION_STATUS_HIBERNATED
