"""``--on-disconnect complete``: a server-engine turn runs on after its caller went away.

The default (``error``, pinned in test_engine_loop) ends the turn as ERROR
``STREAM_BROKEN``. With ``complete`` the answer is still committed, a tool
call the caller can no longer run hibernates the turn for a resuming ``Run``,
and a unary ``Chat`` whose deadline passed still finishes its turn.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from runtime import engine_run, result, texts, tool
from scripted_engine import ScriptedEngine, Step, calls, says

from sessiond.server.domain.engines import EchoEngine
from sessiond.v1 import session_pb2, session_service_pb2, turn_pb2

pb = session_service_pb2


@pytest.fixture
async def completing(serve):
    """A server that completes turns on disconnect, with a scripted engine."""
    engine = ScriptedEngine()
    served = await serve(
        engines=[EchoEngine(), engine], tool_result_timeout_seconds=5, on_disconnect="complete"
    )
    return served, engine


async def settled(client, session_id: str) -> session_pb2.Session:
    """The session once no turn holds it (polls: the turn ends in the background)."""
    for _ in range(200):
        session = await client.get(session_id)
        if session.status != session_pb2.SESSION_STATUS_RUNNING and not session.HasField("lease"):
            return session
        await asyncio.sleep(0.025)
    raise AssertionError(f"{session_id} is still running")


async def test_the_answer_is_committed_after_the_caller_left(completing) -> None:
    served, engine = completing
    client = served.client
    await client.start("left")
    hold = asyncio.Event()
    engine.queue(Step(text=["still ", "talking"], hold=hold))
    run = await engine_run(client, "left", "go", engine="scripted")
    while "still " not in run.deltas:  # the model is mid-answer
        response = await run.call.read()
        if response.WhichOneof("event") == "delta":
            run.deltas.append(response.delta.text)
    run.call.cancel()
    await asyncio.sleep(0.1)
    assert (await client.get("left")).status == session_pb2.SESSION_STATUS_RUNNING
    hold.set()
    session = await settled(client, "left")
    assert session.status == session_pb2.SESSION_STATUS_FINISHED
    assert texts(await client.all_messages("left")) == ["go", "still talking"]
    turn = (await client.replay("left")).turns[0]
    assert turn.status == turn_pb2.TURN_STATUS_FINISHED and not turn.HasField("error")


async def test_tool_calls_left_without_a_caller_wait_for_a_resuming_run(completing) -> None:
    served, engine = completing
    client = served.client
    await client.start("tools")
    engine.queue(calls(("t1", "fetch", {"q": 1}), say="Fetching."))
    run = await engine_run(client, "tools", "go", engine="scripted", tools=[tool("fetch")])
    asked = await run.until_pause()
    assert [c.tool_use_id for c in asked] == ["t1"]
    run.call.cancel()  # gone before answering
    session = await settled(client, "tools")
    assert session.status == session_pb2.SESSION_STATUS_HIBERNATED
    assert texts(await client.all_messages("tools")) == ["go", "Fetching."]  # the call is pending
    # Another runtime picks the turn up and runs the pending call.
    engine.queue(says("Fetched."))
    resumed = await engine_run(client, "tools", None, resume=True)
    asked = await resumed.until_pause()
    assert [c.tool_use_id for c in asked] == ["t1"]
    await resumed.answer(result("t1", "data"))
    assert await resumed.until_pause() is None
    assert resumed.ended.turn.status == turn_pb2.TURN_STATUS_FINISHED
    assert texts(await client.all_messages("tools")) == [
        "go",
        "Fetching.",
        "tool_result:t1",
        "Fetched.",
    ]


async def test_a_chat_past_its_deadline_still_finishes_its_turn(completing) -> None:
    served, engine = completing
    client = served.client
    await client.start("late")
    hold = asyncio.Event()
    engine.queue(Step(text=["slow ", "answer"], hold=hold))
    request = pb.ChatRequest(session_id="late", text="hello", engine="scripted")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.stub.Chat(request, timeout=0.3)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    hold.set()
    session = await settled(client, "late")
    assert session.status == session_pb2.SESSION_STATUS_FINISHED
    assert texts(await client.all_messages("late")) == ["hello", "slow answer"]


async def test_the_default_policy_ends_a_cancelled_chat_as_error(serve) -> None:
    engine = ScriptedEngine()
    served = await serve(engines=[EchoEngine(), engine])
    client = served.client
    await client.start("cut")
    hold = asyncio.Event()
    engine.queue(Step(text=["never ", "stored"], hold=hold))
    request = pb.ChatRequest(session_id="cut", text="hello", engine="scripted")
    with pytest.raises(grpc.aio.AioRpcError):
        await client.stub.Chat(request, timeout=0.3)
    session = await settled(client, "cut")
    hold.set()
    assert session.status == session_pb2.SESSION_STATUS_ERROR
    assert texts(await client.all_messages("cut")) == []  # the input was never committed
