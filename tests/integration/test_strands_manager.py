"""SessiondSessionManager: real Strands agents persisted through sessiond.

The agents run in their own threads (Strands' synchronous API) or their own
processes, against a real sessiond server.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from strands import Agent, tool
from strands.multiagent import GraphBuilder

from sessiond.client import Client, message_text
from sessiond.client.aio import AsyncClient
from sessiond.errors import SessionBusy, SessionNotFound, Unauthenticated
from sessiond.strands import SessiondSessionManager
from sessiond.v1 import session_pb2, turn_pb2
from support.strands_agents import DELETED, ApproveDeletes, delete_file
from support.strands_model import ReplyModel, ToolCallingModel


def texts(messages) -> list[str]:
    return [
        "".join(b.text for b in m.message.content if b.WhichOneof("block") == "text")
        for m in messages
    ]


async def in_thread(function, *args):
    return await asyncio.to_thread(function, *args)


async def test_each_invocation_is_a_turn_and_restores_after_restart(served) -> None:
    def first_process():
        manager = SessiondSessionManager("strands-chat", target=served.target)
        agent = Agent(model=ReplyModel(), session_manager=manager, callback_handler=None)
        agent.state.set("user", "Ada")
        agent("hello")
        agent("how are you?")
        manager.close()

    await in_thread(first_process)
    session = await served.client.get("strands-chat")
    assert session.turn_count == 2 and session.message_count == 4
    assert session.usage.total_tokens == 12
    assert json.loads(session.agents[0].state_json) == {"user": "Ada"}
    assert texts(await served.client.all_messages("strands-chat")) == [
        "hello",
        "reply to: hello",
        "how are you?",
        "reply to: how are you?",
    ]

    def second_process():
        manager = SessiondSessionManager("strands-chat", target=served.target)
        agent = Agent(model=ReplyModel(), session_manager=manager, callback_handler=None)
        restored = [m["content"][0]["text"] for m in agent.messages]
        state = agent.state.get("user")
        agent("still there?")
        manager.close()
        return restored, state

    restored, state = await in_thread(second_process)
    assert restored == ["hello", "reply to: hello", "how are you?", "reply to: how are you?"]
    assert state == "Ada"
    assert (await served.client.get("strands-chat")).message_count == 6


async def test_a_second_process_gets_session_busy_and_nothing_is_lost(
    served, tmp_path: Path
) -> None:
    await served.client.start("contended")
    script = tmp_path / "slow_agent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            sys.path.insert(0, {str(Path(__file__).parents[1])!r})
            from strands import Agent
            from sessiond.strands import SessiondSessionManager
            from support.strands_model import SlowModel
            manager = SessiondSessionManager("contended", target={served.target!r})
            agent = Agent(model=SlowModel(3.0), session_manager=manager, callback_handler=None)
            print("invoking", flush=True)
            agent("slow question")
            print("done", flush=True)
            """
        )
    )
    slow = subprocess.Popen(  # noqa: ASYNC220 - its output is read off the loop
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=dict(os.environ)
    )
    try:
        assert slow.stdout is not None
        assert (await asyncio.to_thread(slow.stdout.readline)).strip() == "invoking"
        await asyncio.sleep(1.0)  # the slow agent holds the turn now

        def competing():
            manager = SessiondSessionManager("contended", target=served.target)
            agent = Agent(model=ReplyModel(), session_manager=manager, callback_handler=None)
            try:
                agent("fast question")
            finally:
                manager.close()

        with pytest.raises(SessionBusy) as caught:
            await in_thread(competing)
        assert caught.value.lease_expire_time
        assert (await asyncio.to_thread(slow.wait, 30)) == 0
    finally:
        if slow.poll() is None:
            slow.kill()
    assert texts(await served.client.all_messages("contended")) == [
        "slow question",
        "reply to: slow question",
    ]


async def test_interrupt_becomes_a_review_resolved_through_the_cli(served) -> None:
    DELETED.clear()

    def ask():
        manager = SessiondSessionManager("hitl", target=served.target)
        agent = Agent(
            model=ToolCallingModel("delete_file", {"path": "/tmp/report.txt"}),
            tools=[delete_file],
            hooks=[ApproveDeletes()],
            session_manager=manager,
            callback_handler=None,
        )
        result = agent("clean up the report")
        manager.close()
        return result.stop_reason

    assert await in_thread(ask) == "interrupt"
    session = await served.client.get("hitl")
    assert session.status == session_pb2.SESSION_STATUS_WAITING
    pending = (await served.client.list_pending_reviews()).reviews
    assert [(r.session_id, r.tool_name) for r in pending] == [("hitl", "approve-delete")]
    assert json.loads(pending[0].input_json) == {"path": "/tmp/report.txt"}

    approve = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("sessiond")),
        "approve",
        pending[0].review_id,
        "--target",
        served.target,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await approve.communicate()
    assert approve.returncode == 0, (out, err)

    def resume():  # a fresh process: everything comes back from sessiond
        manager = SessiondSessionManager("hitl", target=served.target)
        agent = Agent(
            model=ToolCallingModel("delete_file", {"path": "/tmp/report.txt"}),
            tools=[delete_file],
            hooks=[ApproveDeletes()],
            session_manager=manager,
            callback_handler=None,
        )
        result = agent(manager.interrupt_responses(agent))
        manager.close()
        return str(result)

    answer = await in_thread(resume)
    assert DELETED == ["/tmp/report.txt"]
    assert "deleted /tmp/report.txt" in answer
    session = await served.client.get("hitl")
    assert session.status == session_pb2.SESSION_STATUS_FINISHED
    replay = await served.client.replay("hitl")
    assert replay.turns[0].reviews[0].decision.action == 1  # APPROVE


async def test_messages_are_committed_as_strands_adds_them(served) -> None:
    """Mid-invocation, what Strands added so far is already stored (and visible)."""
    seen: list[list[str]] = []

    @tool
    def peek() -> str:
        """Reads the session from sessiond while the invocation is still running."""
        with Client(served.target) as reader:
            seen.append([message_text(m) for m in reader.all_messages("live")])
        return "peeked"

    def invoke():
        manager = SessiondSessionManager("live", target=served.target)
        try:
            agent = Agent(
                model=ToolCallingModel("peek", {}),
                tools=[peek],
                session_manager=manager,
                callback_handler=None,
            )
            agent("look inside")
        finally:
            manager.close()

    await in_thread(invoke)
    # The input and the tool call were committed before the tool ran.
    assert seen == [["look inside", ""]]
    assert texts(await served.client.all_messages("live")) == [
        "look inside",
        "",
        "",
        "tool said: peeked",
    ]


class FailingModel(ReplyModel):
    """A model whose call fails (an unreachable endpoint, a bad key...)."""

    async def stream(self, messages: list[Any], *args: Any, **kwargs: Any):
        raise RuntimeError("the model endpoint is down")
        yield


async def test_a_failed_invocation_fails_its_turn(served) -> None:
    def invoke():
        manager = SessiondSessionManager("broken", target=served.target)
        agent = Agent(model=FailingModel(), session_manager=manager, callback_handler=None)
        try:
            with pytest.raises(RuntimeError, match="endpoint is down"):
                agent("are you there?")
            agent.model = ReplyModel()
            agent("and now?")  # the session takes the next turn
        finally:
            manager.close()

    await in_thread(invoke)
    turns = (await served.client.replay("broken")).turns
    assert [t.status for t in turns] == [turn_pb2.TURN_STATUS_ERROR, turn_pb2.TURN_STATUS_FINISHED]
    assert "raised" in turns[0].error.message
    assert (await served.client.get("broken")).status == session_pb2.SESSION_STATUS_FINISHED


async def test_a_token_authenticates_every_call(serve, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("acme:s3cret-token-for-acme\n")
    served = await serve(auth_tokens_file=str(tokens))

    def invoke(token: str | None):
        manager = SessiondSessionManager("authed", target=served.target, token=token)
        try:
            agent = Agent(model=ReplyModel(), session_manager=manager, callback_handler=None)
            agent("hello")
        finally:
            manager.close()

    await in_thread(invoke, "s3cret-token-for-acme")
    async with AsyncClient(served.target, token="s3cret-token-for-acme") as acme:
        assert (await acme.get("authed")).message_count == 2
    with pytest.raises(Unauthenticated):
        await in_thread(invoke, None)


async def test_a_graph_given_this_manager_is_refused_loudly(served) -> None:
    """The manager keeps agents, not Graph / Swarm state: Strands' convention says so at once.

    A manager without multi-agent persistence raises NotImplementedError when
    a Graph is built with it (Strands' base class), rather than dropping the
    graph's state silently. Nothing is written for it.
    """

    def build_graph():
        builder = GraphBuilder()
        builder.add_node(Agent(name="research", model=ReplyModel(), callback_handler=None))
        manager = SessiondSessionManager("graph-itself", target=served.target)
        builder.set_session_manager(manager)
        with pytest.raises(NotImplementedError, match="multi-agent persistence"):
            builder.build()
        manager.close()

    await in_thread(build_graph)
    with pytest.raises(SessionNotFound):
        await served.client.get("graph-itself")


@pytest.fixture(autouse=True)
def _quiet_strands(caplog):
    caplog.set_level("WARNING", logger="strands")
