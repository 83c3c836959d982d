"""The ``openai`` engine through the real ``openai`` client, against a fake endpoint over HTTP.

Streaming (SSE), tool calls assembled from fragments, usage, the request
parameters, failures and their gRPC codes, context-window trimming.
"""

from __future__ import annotations

import json
import socket

import grpc
import pytest
from conftest import OPENAI_KEY
from fake_models import Answer, text, tool_call
from runtime import engine_run, tool

from sessiond.errors import (
    ContextTooLong,
    EngineRateLimited,
    EngineRejected,
    EngineTimeout,
    EngineUnauthorized,
    EngineUnavailable,
)
from sessiond.v1 import session_service_pb2, turn_pb2

pb = session_service_pb2


@pytest.fixture
def openai_server(serve, fake_openai):
    """``await openai_server(**settings)``: a server whose default engine is the fake."""

    async def start(**settings):
        options = {
            "engine": "openai",
            "openai_base_url": fake_openai.url,
            "openai_api_key": OPENAI_KEY,
            "model": "gpt-test",
            "engine_max_retries": 0,
            "engine_timeout_seconds": 5,
        }
        options.update(settings)
        return await serve(**options)

    return start


async def test_chat_streams_from_the_endpoint_and_records_usage(openai_server, fake_openai) -> None:
    served = await openai_server(
        max_tokens=256, temperature=0.25, system_prompt="Be brief.", allowed_models="gpt-big"
    )
    client = served.client
    await client.start("chat")
    fake_openai.queue(text("Hello", ", ", "world."))
    reply = await client.chat("chat", "hi")
    assert reply.text == "Hello, world."
    assert reply.turn.engine == "openai"
    assert (reply.turn.usage.input_tokens, reply.turn.usage.output_tokens) == (10, 5)
    assert reply.session.usage.total_tokens == 15
    request = fake_openai.requests[-1]
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    body = request.json()
    assert body["model"] == "gpt-test" and body["stream"] is True
    assert body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 256 and body["temperature"] == 0.25
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hi"},
    ]
    assert "tools" not in body
    # The next turn sends the history; an allowed model may be chosen per request.
    fake_openai.queue(text("Again."))
    await client.stub.Chat(pb.ChatRequest(session_id="chat", text="more", model="gpt-big"))
    body = fake_openai.bodies[-1]
    assert body["model"] == "gpt-big"
    assert [m["content"] for m in body["messages"][1:]] == ["hi", "Hello, world.", "more"]
    turn = (await client.replay("chat")).turns[-1]
    model_event = next(e for e in turn.events if e.type == "model.response")
    assert json.loads(model_event.data_json)["model"] == "gpt-big"


async def test_run_streams_deltas_as_they_arrive(openai_server, fake_openai) -> None:
    served = await openai_server()
    await served.client.start("stream")
    fake_openai.queue(text("One ", "two ", "three."))
    run = await engine_run(served.client, "stream", "count", engine="openai")
    assert await run.until_pause() is None
    assert run.deltas == ["One ", "two ", "three."]
    assert run.events == ["started", "delta", "delta", "delta", "appended", "ended"]
    assert run.appended[-1].message.content[0].text == "One two three."


async def test_multi_round_tool_use_through_a_grpc_caller(openai_server, fake_openai) -> None:
    served = await openai_server()
    client = served.client
    await client.start("tools")
    weather = tool("weather", "current weather", properties={"city": {"type": "string"}})
    fake_openai.queue(
        tool_call("call_1", "weather", {"city": "Paris"}, say="Checking Paris."),
        Answer(
            calls=[("call_2", "weather", {"city": "Rome"}), ("call_3", "weather", {"city": "Oslo"})]
        ),
        text("Paris 21C, Rome 25C, Oslo 9C."),
    )
    run = await engine_run(
        client, "tools", "weather in Paris, Rome, Oslo?", engine="openai", tools=[weather]
    )
    seen = []

    def forecast(name: str, args: dict) -> str:
        seen.append(args["city"])
        return {"Paris": "21C", "Rome": "25C", "Oslo": "9C"}[args["city"]]

    ended = await run.run(forecast)
    assert seen == ["Paris", "Rome", "Oslo"]
    assert ended.turn.status == turn_pb2.TURN_STATUS_FINISHED
    assert run.text == "Checking Paris.Paris 21C, Rome 25C, Oslo 9C."
    assert ended.turn.usage.input_tokens == 30
    first, _second, third = fake_openai.bodies
    assert first["tools"][0]["function"]["name"] == "weather"
    assert first["tools"][0]["function"]["parameters"]["properties"] == {"city": {"type": "string"}}
    assert [m["role"] for m in third["messages"]] == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "tool",
    ]
    assert third["messages"][3]["tool_calls"][1]["function"] == {
        "name": "weather",
        "arguments": json.dumps({"city": "Oslo"}),
    }
    assert [m.get("content") for m in third["messages"] if m["role"] == "tool"] == [
        "21C",
        "25C",
        "9C",
    ]
    stored = await client.all_messages("tools")
    assert len(stored) == 6
    assert json.loads(stored[1].message.content[1].tool_use.input_json) == {"city": "Paris"}


async def test_non_streaming_mode(serve, fake_openai, tmp_path) -> None:
    engines = tmp_path / "engines.json"
    engines.write_text(
        json.dumps(
            {
                "default": "plain",
                "engines": {
                    "plain": {
                        "type": "openai",
                        "base_url": fake_openai.url,
                        "model": "m",
                        "stream": False,
                        "max_retries": 0,
                        "max_tokens": 99,
                        "max_tokens_field": "max_completion_tokens",
                    }
                },
            }
        )
    )
    served = await serve(engines_file=str(engines))
    await served.client.start("plain")
    fake_openai.queue(tool_call("t1", "echo", {"x": 1}), text("whole answer"))
    run = await engine_run(served.client, "plain", "go", engine="plain", tools=[tool("echo")])
    ended = await run.run(lambda name, args: "1")
    assert ended.turn.status == turn_pb2.TURN_STATUS_FINISHED
    assert run.deltas == ["whole answer"]
    assert all(body.get("stream") is not True for body in fake_openai.bodies)
    assert fake_openai.bodies[0]["max_completion_tokens"] == 99
    assert ended.turn.usage.output_tokens == 10


FAILURES = [
    (
        Answer(status=429, error={"error": {"message": "rate limited"}}),
        EngineRateLimited,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ),
    (
        Answer(
            status=401, error={"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}"}}
        ),
        EngineUnauthorized,
        grpc.StatusCode.FAILED_PRECONDITION,
    ),
    (
        Answer(
            status=400,
            error={
                "error": {
                    "message": "This model's maximum context length is 8 tokens",
                    "code": "context_length_exceeded",
                }
            },
        ),
        ContextTooLong,
        grpc.StatusCode.INVALID_ARGUMENT,
    ),
    (
        Answer(status=404, error={"error": {"message": "model 'nope' not found"}}),
        EngineRejected,
        grpc.StatusCode.FAILED_PRECONDITION,
    ),
    (
        Answer(status=503, error={"error": {"message": "overloaded"}}),
        EngineUnavailable,
        grpc.StatusCode.UNAVAILABLE,
    ),
    (Answer(delay=1.5), EngineTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (
        Answer(text=["a", "b", "c"], stall_after=2, delay=1.5),
        EngineTimeout,
        grpc.StatusCode.DEADLINE_EXCEEDED,
    ),
]


@pytest.mark.parametrize(("answer", "error", "code"), FAILURES)
async def test_model_failures_map_to_errors_and_end_the_turn(
    openai_server, fake_openai, answer, error, code
) -> None:
    served = await openai_server(engine_timeout_seconds=0.5)
    client = served.client
    await client.start("fails")
    fake_openai.fail_every_attempt(answer)
    with pytest.raises(error) as caught:
        await client.chat("fails", "hi")
    fake_openai.answers.clear()
    assert OPENAI_KEY not in str(caught.value) and OPENAI_KEY not in repr(caught.value.metadata)
    assert caught.value.metadata["engine"] == "openai"
    with pytest.raises(grpc.aio.AioRpcError) as raw:
        fake_openai.fail_every_attempt(answer)
        await client.stub.Chat(pb.ChatRequest(session_id="fails", text="again"))
    fake_openai.answers.clear()
    assert raw.value.code() == code
    session = await client.get("fails")
    assert not session.HasField("lease")
    turn = (await client.replay("fails")).turns[-1]
    assert turn.status == turn_pb2.TURN_STATUS_ERROR and turn.error.code == error.reason
    assert OPENAI_KEY not in turn.error.message


async def test_unreachable_endpoint_is_unavailable(serve) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    served = await serve(
        engine="openai",
        openai_base_url=f"http://127.0.0.1:{port}/v1",
        model="m",
        engine_max_retries=0,
    )
    await served.client.start("down")
    with pytest.raises(EngineUnavailable):
        await served.client.chat("down", "hi")


async def test_a_failure_mid_tool_loop_leaves_a_consistent_history(
    openai_server, fake_openai
) -> None:
    served = await openai_server()
    client = served.client
    await client.start("mid")
    fake_openai.queue(
        tool_call("c1", "lookup", {"q": "x"}),
        Answer(status=429, error={"error": {"message": "slow down"}}),
    )
    run = await engine_run(client, "mid", "look x up", engine="openai", tools=[tool("lookup")])
    with pytest.raises(EngineRateLimited):
        await run.run(lambda name, args: "found")
    stored = await client.all_messages("mid")
    kinds = [m.message.content[-1].WhichOneof("block") for m in stored]
    assert kinds == ["text", "tool_use", "tool_result"]  # every call has its result
    fake_openai.queue(text("fine now"))
    assert (await client.chat("mid", "try again")).text == "fine now"
    roles = [m["role"] for m in fake_openai.bodies[-1]["messages"]]
    assert roles == ["user", "assistant", "tool", "user"]


async def test_context_window_trims_whole_exchanges(openai_server, fake_openai) -> None:
    served = await openai_server(context_window_messages=4)
    client = served.client
    await client.start("window")
    for number in range(3):
        fake_openai.queue(text(f"answer {number}"))
        await client.chat("window", f"question {number}")
    sent = fake_openai.bodies[-1]["messages"]
    assert [m["content"] for m in sent] == ["question 1", "answer 1", "question 2"]
    # A tool exchange is never split: the window moves to the exchange's start.
    fake_openai.queue(tool_call("c1", "lookup", {}), text("done"))
    run = await engine_run(client, "window", "question 3", engine="openai", tools=[tool("lookup")])
    await run.run(lambda name, args: "r")
    last = fake_openai.bodies[-1]["messages"]
    assert [m["role"] for m in last] == ["user", "assistant", "tool"]
    assert last[0]["content"] == "question 3"
    fake_openai.queue(text("ok"))
    await client.chat("window", "question 4")
    # The tool exchange (4 messages) and the new input exceed 4: only the input goes.
    assert fake_openai.bodies[-1]["messages"] == [{"role": "user", "content": "question 4"}]
