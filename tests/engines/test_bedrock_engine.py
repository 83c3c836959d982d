"""The ``bedrock`` engine through aioboto3 against a fake Bedrock runtime endpoint over HTTP.

ConverseStream (the AWS event-stream framing) and Converse, tool use assembled
from streamed input fragments, bytes, retired tools, failures.
"""

from __future__ import annotations

import base64
import json

import grpc
import pytest
from conftest import AWS_SECRET
from fake_models import Answer, text, tool_call
from runtime import engine_run, tool

from sessiond.client.aio import text_message
from sessiond.errors import (
    ContextTooLong,
    EngineRateLimited,
    EngineRejected,
    EngineUnauthorized,
    EngineUnavailable,
)
from sessiond.v1 import content_pb2, session_service_pb2, turn_pb2

pb = session_service_pb2
MODEL = "anthropic.claude-test-v1:0"


@pytest.fixture
def bedrock_server(serve, fake_bedrock):
    """``await bedrock_server(**settings)``: a server whose default engine is the fake Bedrock."""

    async def start(**settings):
        options = {
            "engine": "bedrock",
            "bedrock_region": "us-east-1",
            "bedrock_endpoint": fake_bedrock.url,
            "bedrock_model": MODEL,
            "engine_max_retries": 0,
            "engine_timeout_seconds": 5,
        }
        options.update(settings)
        return await serve(**options)

    return start


async def test_converse_stream_chat(bedrock_server, fake_bedrock) -> None:
    served = await bedrock_server(max_tokens=300, temperature=0.5, system_prompt="Be kind.")
    client = served.client
    await client.start("b1")
    fake_bedrock.queue(text("Hi ", "there."))
    reply = await client.chat("b1", "hello")
    assert reply.text == "Hi there."
    assert (reply.turn.usage.input_tokens, reply.turn.usage.output_tokens) == (10, 5)
    request = fake_bedrock.requests[-1]
    assert request.path.endswith("/converse-stream")
    assert fake_bedrock.model_ids() == [MODEL]
    assert "Credential=AKIDTESTENGINES/" in request.headers["authorization"]
    body = request.json()
    assert body["messages"] == [{"role": "user", "content": [{"text": "hello"}]}]
    assert body["system"] == [{"text": "Be kind."}]
    assert body["inferenceConfig"] == {"maxTokens": 300, "temperature": 0.5}
    assert "toolConfig" not in body


async def test_tool_use_over_converse_stream_and_bytes(bedrock_server, fake_bedrock) -> None:
    served = await bedrock_server()
    client = served.client
    await client.start("b2")
    fake_bedrock.queue(
        tool_call("tu-1", "describe", {"what": "image", "detail": [1, 2]}, say="Looking."),
        text("A red pixel."),
    )
    image = b"\x89PNG\r\n\x1a\nfake"
    message = text_message("user", "what is this?")
    message.content.append(
        content_pb2.ContentBlock(image=content_pb2.ImageBlock(format="png", data=image))
    )
    open_ = pb.RunOpen(session_id="b2", engine="bedrock", tools=[tool("describe", "describes")])
    open_.input.CopyFrom(message)
    from runtime import EngineRun

    run = await EngineRun(client, open_).begin()
    asked = await run.until_pause()
    assert json.loads(asked[0].input_json) == {"what": "image", "detail": [1, 2]}
    await run.answer(
        content_pb2.ToolResultBlock(
            tool_use_id="tu-1",
            status="success",
            content=[content_pb2.ContentBlock(raw_json=json.dumps({"json": {"color": "red"}}))],
        )
    )
    assert await run.until_pause() is None
    assert run.ended.turn.status == turn_pb2.TURN_STATUS_FINISHED
    assert run.deltas == ["Looking.", "A red pixel."]
    first, second = fake_bedrock.bodies
    sent_image = first["messages"][0]["content"][1]["image"]
    assert sent_image["format"] == "png"
    assert base64.b64decode(sent_image["source"]["bytes"]) == image
    assert first["toolConfig"]["tools"][0]["toolSpec"]["name"] == "describe"
    assert second["messages"][1]["content"][1]["toolUse"]["input"] == {
        "what": "image",
        "detail": [1, 2],
    }
    assert second["messages"][2]["content"][0]["toolResult"] == {
        "toolUseId": "tu-1",
        "status": "success",
        "content": [{"json": {"color": "red"}}],
    }
    # A later Chat offers no tools: the ones in the history are declared as retired.
    fake_bedrock.queue(text("Still red."))
    await client.chat("b2", "and now?")
    retired = fake_bedrock.bodies[-1]["toolConfig"]["tools"][0]["toolSpec"]
    assert retired["name"] == "describe" and "no longer available" in retired["description"]


async def test_converse_without_streaming(serve, fake_bedrock, tmp_path) -> None:
    path = tmp_path / "engines.yaml"
    path.write_text(
        f"""
default: claude
engines:
  claude:
    type: bedrock
    region: eu-west-1
    endpoint_url: {fake_bedrock.url}
    model: {MODEL}
    stream: false
    max_retries: 0
"""
    )
    served = await serve(engines_file=str(path))
    await served.client.start("b3")
    fake_bedrock.queue(tool_call("tu-9", "add", {"a": 1}), text("Done."))
    run = await engine_run(served.client, "b3", "add", engine="claude", tools=[tool("add")])
    ended = await run.run(lambda name, args: "2")
    assert ended.turn.status == turn_pb2.TURN_STATUS_FINISHED
    assert all(r.path.endswith("/converse") for r in fake_bedrock.requests)
    assert run.deltas == ["Done."]
    assert ended.turn.usage.total_tokens == 30
    assert "eu-west-1" in fake_bedrock.requests[0].headers["authorization"]


FAILURES = [
    (Answer(status=429, error_code="ThrottlingException"), EngineRateLimited),
    (Answer(status=403, error_code="AccessDeniedException"), EngineUnauthorized),
    (Answer(status=403, error_code="UnrecognizedClientException"), EngineUnauthorized),
    (
        Answer(status=400, error_code="ValidationException", error="Input is too long for model"),
        ContextTooLong,
    ),
    (
        Answer(status=400, error_code="ValidationException", error="bad temperature"),
        EngineRejected,
    ),
    (Answer(status=503, error_code="ServiceUnavailableException"), EngineUnavailable),
    (Answer(text=["par", "tial"], stream_error="throttlingException"), EngineRateLimited),
]


@pytest.mark.parametrize(("answer", "error"), FAILURES)
async def test_bedrock_failures(bedrock_server, fake_bedrock, answer, error) -> None:
    served = await bedrock_server()
    await served.client.start("bf")
    fake_bedrock.fail_every_attempt(answer)
    with pytest.raises(error) as caught:
        await served.client.chat("bf", "hi")
    assert AWS_SECRET not in str(caught.value)
    turn = (await served.client.replay("bf")).turns[-1]
    assert turn.status == turn_pb2.TURN_STATUS_ERROR and turn.error.code == error.reason
    assert not (await served.client.get("bf")).HasField("lease")


async def test_missing_credentials_are_a_clear_error(serve, fake_bedrock, monkeypatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    served = await serve(
        engine="bedrock",
        bedrock_region="us-east-1",
        bedrock_endpoint=fake_bedrock.url,
        model=MODEL,
        engine_max_retries=0,
    )
    await served.client.start("nocreds")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await served.client.stub.Chat(pb.ChatRequest(session_id="nocreds", text="hi"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "no AWS credentials" in caught.value.details()
    assert fake_bedrock.requests == []
