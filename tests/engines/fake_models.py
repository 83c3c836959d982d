"""Scripted model endpoints on real sockets: OpenAI chat completions and Bedrock Converse.

A test queues :class:`Answer` objects; each model call takes the next one (or a
plain "ok" when none is queued) and every request is recorded, so the test can
assert what the model was sent. Both fakes speak the real wire formats:

- OpenAI: ``POST /v1/chat/completions``; with ``stream: true`` an SSE stream
  of ``chat.completion.chunk`` objects (``delta.content``, ``delta.tool_calls``
  fragments, a ``usage`` chunk when ``stream_options.include_usage``), then
  ``data: [DONE]``; otherwise one ``chat.completion``.
- Bedrock: ``POST /model/<id>/converse`` (JSON) and
  ``/model/<id>/converse-stream`` (the AWS event-stream binary framing:
  prelude, headers, payload, CRC32s).
"""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from fake_http import FakeHttpServer, Request, Response, json_response

#: More than the attempts the Python client makes of a retried call.
CLIENT_ATTEMPTS = 5


@dataclass
class Answer:
    """One scripted model answer (or failure).

    Attributes:
        text: Text pieces, streamed one per chunk.
        calls: Tool calls ``(id, name, input)``; a str input is sent verbatim.
        usage: ``(input_tokens, output_tokens)``.
        status: An HTTP error status instead of an answer.
        error: The error body (OpenAI) or message (Bedrock) with ``status``.
        error_code: Bedrock's error code (``x-amzn-ErrorType``).
        delay: Seconds to wait before answering (mid-stream with ``stall_after``).
        stall_after: Pause ``delay`` seconds after this many streamed chunks.
        stream_error: Bedrock only: an exception event after the text.
    """

    text: list[str] = field(default_factory=list)
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    usage: tuple[int, int] = (10, 5)
    status: int = 200
    error: Any = None
    error_code: str = ""
    delay: float = 0.0
    stall_after: int | None = None
    stream_error: str = ""


def text(*pieces: str, usage: tuple[int, int] = (10, 5)) -> Answer:
    """An answer with text only."""
    return Answer(text=list(pieces), usage=usage)


def tool_call(tool_id: str, name: str, tool_input: Any, *, say: str = "") -> Answer:
    """An answer that calls one tool."""
    return Answer(text=[say] if say else [], calls=[(tool_id, name, tool_input)])


class FakeModel:
    """Common part: the script, the recorded requests, the server."""

    def __init__(self) -> None:
        self.answers: list[Answer] = []
        self.requests: list[Request] = []
        self.server = FakeHttpServer(self._handle)

    def queue(self, *answers: Answer) -> None:
        """Queues answers for the next model calls."""
        self.answers.extend(answers)

    def fail_every_attempt(self, answer: Answer) -> None:
        """Queues ``answer`` for a call and each transport retry the client may make of it.

        The Python client retries UNAVAILABLE calls (with the same request id,
        and a turn that failed before storing anything runs afresh), so a
        failure meant to reach the test must answer every attempt.
        """
        self.answers.extend([answer] * CLIENT_ATTEMPTS)

    async def start(self) -> FakeModel:
        """Starts the server."""
        await self.server.start()
        return self

    async def _handle(self, request: Request) -> Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if self.answers else text("ok")
        if answer.delay and answer.stall_after is None:
            await asyncio.sleep(answer.delay)
        return self.respond(request, answer)

    def respond(self, request: Request, answer: Answer) -> Response:
        """The response to one request."""
        raise NotImplementedError

    @property
    def bodies(self) -> list[Any]:
        """The JSON bodies of the model calls so far."""
        return [request.json() for request in self.requests]


async def _paced(pieces: list[bytes], answer: Answer) -> AsyncIterator[bytes]:
    for position, piece in enumerate(pieces):
        if answer.stall_after is not None and position == answer.stall_after:
            await asyncio.sleep(answer.delay)
        yield piece


def _arguments(tool_input: Any) -> str:
    return tool_input if isinstance(tool_input, str) else json.dumps(tool_input)


class FakeOpenAI(FakeModel):
    """An OpenAI-compatible chat-completions endpoint (``base_url`` = ``url``)."""

    @property
    def url(self) -> str:
        """The base URL to configure (``.../v1``)."""
        return f"{self.server.url}/v1"

    def respond(self, request: Request, answer: Answer) -> Response:
        """A completion, a stream of chunks, or an error."""
        assert request.path == "/v1/chat/completions", request.path
        body = request.json()
        model = body["model"]
        if answer.status != 200:
            return json_response(answer.status, answer.error or {"error": {"message": "failed"}})
        usage = {
            "prompt_tokens": answer.usage[0],
            "completion_tokens": answer.usage[1],
            "total_tokens": sum(answer.usage),
        }
        finish = "tool_calls" if answer.calls else "stop"
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": "".join(answer.text) or None}
            if answer.calls:
                message["tool_calls"] = [
                    {
                        "id": i,
                        "type": "function",
                        "function": {"name": n, "arguments": _arguments(a)},
                    }
                    for i, n, a in answer.calls
                ]
            completion = {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": usage,
            }
            return json_response(200, completion)

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            document = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            }
            return f"data: {json.dumps(document)}\n\n".encode()

        pieces = [chunk({"role": "assistant", "content": ""})]
        pieces += [chunk({"content": piece}) for piece in answer.text]
        for index, (call_id, name, tool_input) in enumerate(answer.calls):
            arguments = _arguments(tool_input)
            half = len(arguments) // 2
            start = {"index": index, "id": call_id, "type": "function"}
            start["function"] = {"name": name, "arguments": ""}
            pieces.append(chunk({"tool_calls": [start]}))
            for part in (arguments[:half], arguments[half:]):
                pieces.append(
                    chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
                )
        pieces.append(chunk({}, finish))
        if (body.get("stream_options") or {}).get("include_usage"):
            tail = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0}
            tail.update({"model": model, "choices": [], "usage": usage})
            pieces.append(f"data: {json.dumps(tail)}\n\n".encode())
        pieces.append(b"data: [DONE]\n\n")
        return Response(
            headers={"Content-Type": "text/event-stream"}, chunks=_paced(pieces, answer)
        )


def event_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message (string headers only)."""
    encoded = b"".join(
        bytes([len(name)])
        + name.encode()
        + b"\x07"
        + struct.pack(">H", len(value))
        + value.encode()
        for name, value in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def _event(kind: str, body: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return event_message(headers, json.dumps(body).encode())


class FakeBedrock(FakeModel):
    """A Bedrock runtime endpoint (``endpoint_url`` = ``url``)."""

    @property
    def url(self) -> str:
        """The endpoint URL to configure."""
        return self.server.url

    def model_ids(self) -> list[str]:
        """The model ids of the calls so far."""
        return [unquote(r.path.split("/")[2]) for r in self.requests]

    def respond(self, request: Request, answer: Answer) -> Response:
        """A Converse answer, a ConverseStream, or an error."""
        if answer.status != 200:
            return json_response(
                answer.status,
                {"message": answer.error or "failed"},
                {"x-amzn-ErrorType": f"{answer.error_code}:http://internal.amazon.com/"},
            )
        usage = {
            "inputTokens": answer.usage[0],
            "outputTokens": answer.usage[1],
            "totalTokens": sum(answer.usage),
        }
        stop = "tool_use" if answer.calls else "end_turn"
        tool_blocks = [
            {"toolUse": {"toolUseId": i, "name": n, "input": a}} for i, n, a in answer.calls
        ]
        if request.path.endswith("/converse"):
            content = ([{"text": "".join(answer.text)}] if answer.text else []) + tool_blocks
            return json_response(
                200,
                {
                    "output": {"message": {"role": "assistant", "content": content}},
                    "stopReason": stop,
                    "usage": usage,
                    "metrics": {"latencyMs": 1},
                },
            )
        assert request.path.endswith("/converse-stream"), request.path
        pieces = [_event("messageStart", {"role": "assistant"})]
        index = 0
        if answer.text:
            for piece in answer.text:
                delta = {"contentBlockIndex": 0, "delta": {"text": piece}}
                pieces.append(_event("contentBlockDelta", delta))
            pieces.append(_event("contentBlockStop", {"contentBlockIndex": 0}))
            index = 1
        if answer.stream_error:
            headers = {
                ":exception-type": answer.stream_error,
                ":content-type": "application/json",
                ":message-type": "exception",
            }
            pieces.append(event_message(headers, json.dumps({"message": "failed"}).encode()))
        for call_id, name, tool_input in answer.calls:
            start = {"toolUse": {"toolUseId": call_id, "name": name}}
            pieces.append(_event("contentBlockStart", {"contentBlockIndex": index, "start": start}))
            arguments = _arguments(tool_input)
            for part in (arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]):
                delta = {"contentBlockIndex": index, "delta": {"toolUse": {"input": part}}}
                pieces.append(_event("contentBlockDelta", delta))
            pieces.append(_event("contentBlockStop", {"contentBlockIndex": index}))
            index += 1
        pieces.append(_event("messageStop", {"stopReason": stop}))
        pieces.append(_event("metadata", {"usage": usage, "metrics": {"latencyMs": 1}}))
        return Response(
            headers={"Content-Type": "application/vnd.amazon.eventstream"},
            chunks=_paced(pieces, answer),
        )
