"""The tool loop of server-engine turns, through a gRPC caller, with an in-process engine.

The engine is scripted (no HTTP) so these tests pin the loop's protocol:
deltas, acknowledgements, tool rounds, limits, caller failures, disconnects,
model overrides and hibernation when no caller can run a tool.
"""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from runtime import engine_run, result, texts, tool
from scripted_engine import ScriptedEngine, Step, calls, says

from sessiond.errors import (
    EngineRateLimited,
    InvalidArgument,
    RuntimeRequired,
    ToolResultTimeout,
    ToolRoundsExceeded,
)
from sessiond.server.domain.engines import EchoEngine
from sessiond.v1 import session_pb2, session_service_pb2, turn_pb2

pb = session_service_pb2


@pytest.fixture
async def scripted(serve):
    """A server with ``echo`` and a scripted engine, and that engine."""
    engine = ScriptedEngine()
    served = await serve(engines=[EchoEngine(), engine], tool_result_timeout_seconds=2)
    return served, engine


async def test_echo_on_run_streams_one_delta_then_appended_and_ended(scripted) -> None:
    served, _ = scripted
    await served.client.start("e1")
    run = await engine_run(served.client, "e1", "hi there", engine="echo")
    assert await run.until_pause() is None
    assert run.events == ["started", "delta", "appended", "ended"]
    assert run.text == "echo: hi there"
    assert [m.index for m in run.appended] == [0, 1]
    assert run.ended.turn.status == turn_pb2.TURN_STATUS_FINISHED


async def test_multi_round_tool_use_through_the_caller(scripted) -> None:
    served, engine = scripted
    client = served.client
    await client.start("tools")
    engine.queue(
        calls(("c1", "add", {"a": 2, "b": 3}), say="Let me add."),
        calls(("c2", "mul", {"a": 5, "b": 4})),
        says("2+3 is 5, ", "times 4 is 20."),
    )
    run = await engine_run(
        client, "tools", "compute (2+3)*4", engine="scripted", tools=[tool("add"), tool("mul")]
    )
    first = await run.until_pause()
    assert [(c.tool_use_id, c.name, json.loads(c.input_json)) for c in first] == [
        ("c1", "add", {"a": 2, "b": 3})
    ]
    # The call is committed (and acknowledged) before the caller runs it.
    assert texts(run.appended) == ["compute (2+3)*4", "Let me add."]
    await run.answer(result("c1", "5"))
    assert [c.name for c in await run.until_pause()] == ["mul"]
    await run.answer(result("c2", "20"))
    assert await run.until_pause() is None
    assert run.text == "Let me add.2+3 is 5, times 4 is 20."
    assert run.events.count("tool_calls") == 2
    ended = run.ended
    assert ended.turn.status == turn_pb2.TURN_STATUS_FINISHED
    assert ended.turn.usage.input_tokens == 21 and ended.turn.usage.output_tokens == 9
    assert ended.session.usage.total_tokens == 30
    stored = await client.all_messages("tools")
    assert texts(stored) == [
        "compute (2+3)*4",
        "Let me add.",
        "tool_result:c1",
        "tool_use:c2",
        "tool_result:c2",
        "2+3 is 5, times 4 is 20.",
    ]
    assert [m.index for m in run.appended] == list(range(6))
    # The third model call saw the whole exchange, with both results.
    last = engine.requests[-1].messages
    assert [m["role"] for m in last] == ["user", "assistant", "user", "assistant", "user"]
    assert last[4]["content"][0]["toolResult"]["content"] == [{"text": "20"}]
    assert {t.name for t in engine.requests[0].tools} == {"add", "mul"}
    replay = await client.replay("tools")
    events = [e.type for e in replay.turns[0].events]
    assert events.count("model.response") == 3


async def test_parallel_calls_answered_in_pieces_and_loop_errors(scripted) -> None:
    served, engine = scripted
    await served.client.start("par")
    engine.queue(
        calls(
            ("p1", "fetch", {"url": "a"}),
            ("p2", "nope", {}),  # not declared: answered by the loop
            ("p3", "fetch", "not an object"),  # answered by the loop
            ("p4", "fetch", {"url": "b"}),
        ),
        says("both fetched"),
    )
    run = await engine_run(served.client, "par", "fetch", engine="scripted", tools=[tool("fetch")])
    asked = await run.until_pause()
    assert [c.tool_use_id for c in asked] == ["p1", "p4"]
    await run.answer(result("p4", "B"))
    await run.answer(result("p1", "A"))
    assert await run.until_pause() is None
    results = engine.requests[-1].messages[-1]["content"]
    by_id = {r["toolResult"]["toolUseId"]: r["toolResult"] for r in results}
    assert [r["toolResult"]["toolUseId"] for r in results] == ["p1", "p2", "p3", "p4"]
    assert by_id["p1"]["content"] == [{"text": "A"}]
    assert by_id["p2"]["status"] == "error" and "no tool named" in by_id["p2"]["content"][0]["text"]
    assert by_id["p3"]["status"] == "error"


async def test_a_result_for_an_unknown_call_fails_the_turn_and_closes_the_call(scripted) -> None:
    served, engine = scripted
    client = served.client
    await client.start("bad")
    engine.queue(calls(("k1", "fetch", {})))
    run = await engine_run(client, "bad", "go", engine="scripted", tools=[tool("fetch")])
    await run.until_pause()
    await run.answer(result("someone-else", "x"))
    with pytest.raises(InvalidArgument):
        await run.until_pause()
    session = await client.get("bad")
    assert session.status == session_pb2.SESSION_STATUS_ERROR and not session.HasField("lease")
    stored = await client.all_messages("bad")
    # No dangling toolUse: the loop answered it before failing the turn.
    assert texts(stored) == ["go", "tool_use:k1", "tool_result:k1"]
    assert stored[-1].message.content[0].tool_result.status == "error"
    assert (await client.replay("bad")).turns[0].error.code == "INVALID_ARGUMENT"


async def test_tool_rounds_are_limited(serve) -> None:
    engine = ScriptedEngine()
    served = await serve(engines=[EchoEngine(), engine], max_tool_rounds=2)
    await served.client.start("loop")
    engine.queue(*(calls((f"r{i}", "again", {})) for i in range(3)))
    run = await engine_run(served.client, "loop", "go", engine="scripted", tools=[tool("again")])
    with pytest.raises(ToolRoundsExceeded):
        await run.run(lambda name, args: "more")
    stored = await served.client.all_messages("loop")
    # The third response was not stored: no toolUse is left without a result.
    assert texts(stored) == ["go", "tool_use:r0", "tool_result:r0", "tool_use:r1", "tool_result:r1"]
    turn = (await served.client.replay("loop")).turns[0]
    assert turn.status == turn_pb2.TURN_STATUS_ERROR and turn.error.code == "TOOL_ROUNDS_EXCEEDED"


async def test_tool_result_timeout(serve) -> None:
    engine = ScriptedEngine()
    served = await serve(engines=[EchoEngine(), engine], tool_result_timeout_seconds=0.3)
    await served.client.start("slow")
    engine.queue(calls(("s1", "slow", {})))
    run = await engine_run(served.client, "slow", "go", engine="scripted", tools=[tool("slow")])
    await run.until_pause()
    with pytest.raises(ToolResultTimeout):
        await run.until_pause()
    stored = await served.client.all_messages("slow")
    assert texts(stored) == ["go", "tool_use:s1", "tool_result:s1"]
    assert "not completed" in stored[-1].message.content[0].tool_result.content[0].text
    turn = (await served.client.replay("slow")).turns[0]
    assert turn.error.code == "TOOL_RESULT_TIMEOUT"


async def test_caller_may_fail_instead_of_answering(scripted) -> None:
    served, engine = scripted
    await served.client.start("gives-up")
    engine.queue(calls(("g1", "fetch", {})))
    run = await engine_run(
        served.client, "gives-up", "go", engine="scripted", tools=[tool("fetch")]
    )
    await run.until_pause()
    await run.call.write(pb.RunRequest(fail=pb.RunFail(error_message="no network")))
    assert await run.until_pause() is None
    assert run.ended.turn.status == turn_pb2.TURN_STATUS_ERROR
    assert run.ended.turn.error.code == "RUNTIME_FAILED"
    assert run.ended.turn.error.message == "no network"


async def test_disconnect_mid_stream_ends_the_turn_and_keeps_what_was_acknowledged(
    scripted,
) -> None:
    served, engine = scripted
    client = served.client
    await client.start("gone")
    hold = asyncio.Event()
    engine.queue(calls(("d1", "fetch", {})), Step(text=["partial ", "answer"], hold=hold))
    run = await engine_run(client, "gone", "go", engine="scripted", tools=[tool("fetch")])
    await run.until_pause()
    await run.answer(result("d1", "data"))
    while "partial " not in run.deltas:  # the model is mid-answer
        response = await run.call.read()
        if response.WhichOneof("event") == "delta":
            run.deltas.append(response.delta.text)
    run.call.cancel()
    for _ in range(100):
        session = await client.get("gone")
        if session.status == session_pb2.SESSION_STATUS_ERROR:
            break
        await asyncio.sleep(0.05)
    hold.set()
    assert session.status == session_pb2.SESSION_STATUS_ERROR and not session.HasField("lease")
    assert (await client.replay("gone")).turns[0].error.code == "STREAM_BROKEN"
    assert texts(await client.all_messages("gone")) == ["go", "tool_use:d1", "tool_result:d1"]
    # The session goes on at once, with a consistent context.
    engine.queue(says("fine"))
    reply = await client.chat("gone", "again", engine="scripted")
    assert reply.text == "fine"
    assert [m["role"] for m in engine.requests[-1].messages] == [
        "user",
        "assistant",
        "user",
    ]  # the interrupted exchange and the new input, merged after the tool result


async def test_half_closed_stream_while_tools_run(scripted) -> None:
    served, engine = scripted
    await served.client.start("half")
    engine.queue(calls(("h1", "fetch", {})))
    run = await engine_run(served.client, "half", "go", engine="scripted", tools=[tool("fetch")])
    await run.until_pause()
    await run.call.done_writing()
    assert await run.until_pause() is None
    turn = (await served.client.replay("half")).turns[0]
    assert turn.error.code == "STREAM_CLOSED"
    assert texts(await served.client.all_messages("half"))[-1] == "tool_result:h1"


async def test_chat_hibernates_when_a_tool_needs_the_caller_then_run_resumes(scripted) -> None:
    served, engine = scripted
    client = served.client
    await client.start("needs")
    # AFTER_PROMPT keeps the Run's tools and model in the turn's snapshot.
    run = await engine_run(
        client,
        "needs",
        "look it up",
        engine="scripted",
        tools=[tool("lookup")],
        model="m-big",
        checkpoint=turn_pb2.CHECKPOINT_POLICY_AFTER_PROMPT,
    )
    assert await run.until_pause() is None
    assert run.ended.turn.status == turn_pb2.TURN_STATUS_HIBERNATED
    engine.queue(calls(("n1", "lookup", {"q": "x"}), say="Looking."))
    resumed = await client.resume("needs")  # no caller: the call waits for one
    assert resumed.turn.status == turn_pb2.TURN_STATUS_HIBERNATED and resumed.text == ""
    assert engine.requests[-1].model == "m-big"
    assert [t.name for t in engine.requests[-1].tools] == ["lookup"]
    with pytest.raises(RuntimeRequired):
        await client.resume("needs")
    engine.queue(says("Found it."))
    run = await engine_run(client, "needs", None, resume=True)
    asked = await run.until_pause()
    assert [c.tool_use_id for c in asked] == ["n1"]
    await run.answer(result("n1", "x=1"))
    assert await run.until_pause() is None
    assert run.ended.turn.status == turn_pb2.TURN_STATUS_FINISHED
    assert run.ended.turn.resume_count == 2
    assert texts(await client.all_messages("needs")) == [
        "look it up",
        "Looking.",
        "tool_result:n1",
        "Found it.",
    ]


async def test_model_override_only_from_the_allowed_list(scripted) -> None:
    served, engine = scripted
    client = served.client
    await client.start("models")
    request = pb.ChatRequest(session_id="models", text="hi", engine="scripted", model="m-big")
    reply = await client.stub.Chat(request)
    assert reply.text == "done" and engine.requests[-1].model == "m-big"
    request.model = "m-default"
    await client.stub.Chat(request)
    for engine_name, model in (("scripted", "gpt-secret"), ("echo", "anything")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await client.stub.Chat(
                pb.ChatRequest(session_id="models", text="hi", engine=engine_name, model=model)
            )
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    run = await engine_run(client, "models", "hi", engine="scripted", model="nope")
    with pytest.raises(InvalidArgument):
        await run.until_pause()
    assert (await client.get("models")).turn_count == 2  # refused before any claim


async def test_engine_errors_end_the_turn_and_replay_as_errors(scripted) -> None:
    served, engine = scripted
    client = served.client
    await client.start("limited")
    engine.queue(Step(error=EngineRateLimited("slow down", engine="scripted")))
    with pytest.raises(EngineRateLimited):
        await client.chat("limited", "hi", engine="scripted", request_id="rq-1")
    turn = (await client.replay("limited")).turns[0]
    assert turn.status == turn_pb2.TURN_STATUS_ERROR
    assert turn.error.code == "ENGINE_RATE_LIMITED"
    # The input was never acknowledged: it is in the failure event, not the history.
    assert texts(await client.all_messages("limited")) == []
    failed = json.loads(turn.events[-1].data_json)
    assert failed["code"] == "ENGINE_RATE_LIMITED" and failed["unrecorded_input"]
    # Nothing was stored, so the same request id runs the turn afresh.
    assert (await client.chat("limited", "hi", engine="scripted", request_id="rq-1")).text == "done"

    # A turn that fails after storing something keeps its request id: a retry
    # answers with the same error, without calling the model again.
    engine.queue(
        calls(("x1", "fetch", {})), Step(error=EngineRateLimited("slow down", engine="scripted"))
    )
    run = await engine_run(
        client, "limited", "fetch", engine="scripted", tools=[tool("fetch")], request_id="rq-2"
    )
    with pytest.raises(EngineRateLimited):
        await run.run(lambda name, args: "fetched")
    calls_before = len(engine.requests)
    with pytest.raises(EngineRateLimited) as caught:
        await client.chat("limited", "fetch", engine="scripted", request_id="rq-2")
    assert caught.value.metadata["replayed"] == "true"
    assert len(engine.requests) == calls_before
    assert (await client.chat("limited", "again", engine="scripted")).text == "done"
