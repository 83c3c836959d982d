"""The caller's runtime on a ``Run`` stream of a server-engine turn, as tests drive it.

:class:`EngineRun` opens a raw ``Run`` call (``client.stub.Run()``) and reads
what the server sends — ``started``, ``history``, ``delta``, ``appended``,
``tool_calls``, ``ended`` — pausing at each ``tool_calls`` so the test can
answer with ``tool_results`` (or not).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration

from sessiond.client.aio import AsyncClient, text_message
from sessiond.client.errors import from_rpc_error
from sessiond.v1 import content_pb2, session_service_pb2, turn_pb2

pb = session_service_pb2

#: Seconds a test waits for the next message of a Run stream.
READ_TIMEOUT = 20.0


def tool(
    name: str,
    description: str = "",
    *,
    review: bool = False,
    ttl: float | None = None,
    default: int = 0,
    properties: dict[str, Any] | None = None,
) -> pb.ToolSpec:
    """A ToolSpec."""
    schema = {"type": "object", "properties": properties or {}}
    spec = pb.ToolSpec(
        name=name,
        description=description,
        input_schema_json=json.dumps(schema),
        requires_review=review,
        review_default_action=default,  # type: ignore[arg-type]
    )
    if ttl is not None:
        spec.review_ttl.CopyFrom(Duration(seconds=int(ttl)))
    return spec


def result(tool_use_id: str, value: str, status: str = "success") -> content_pb2.ToolResultBlock:
    """A text tool result."""
    return content_pb2.ToolResultBlock(
        tool_use_id=tool_use_id, status=status, content=[content_pb2.ContentBlock(text=value)]
    )


class EngineRun:
    """One Run call of a server-engine turn."""

    def __init__(self, client: AsyncClient, open_: pb.RunOpen) -> None:
        self.call = client.stub.Run()
        self.open = open_
        self.started: pb.RunStarted | None = None
        self.history: list[content_pb2.SessionMessage] = []
        self.deltas: list[str] = []
        self.appended: list[content_pb2.SessionMessage] = []
        self.calls: list[content_pb2.ToolUseBlock] = []
        self.ended: pb.RunEnded | None = None
        self.events: list[str] = []

    async def begin(self) -> EngineRun:
        """Sends ``open``."""
        await self.call.write(pb.RunRequest(open=self.open))
        return self

    async def until_pause(self) -> list[content_pb2.ToolUseBlock] | None:
        """Reads until the next ``tool_calls`` (returned) or ``ended`` (None).

        Raises:
            SessiondError: The stream ended with an error status.
        """
        while True:
            try:
                # A guard: a test waiting for what never comes fails instead of hanging.
                async with asyncio.timeout(READ_TIMEOUT):
                    response = await self.call.read()
            except grpc.aio.AioRpcError as error:
                raise from_rpc_error(error) from None
            if response is grpc.aio.EOF:
                return None
            kind = response.WhichOneof("event")
            self.events.append(kind)
            if kind == "started":
                self.started = response.started
            elif kind == "history":
                self.history.extend(response.history.messages)
            elif kind == "delta":
                self.deltas.append(response.delta.text)
            elif kind == "appended":
                self.appended.extend(response.appended.messages)
            elif kind == "tool_calls":
                self.calls = list(response.tool_calls.calls)
                return self.calls
            elif kind == "ended":
                self.ended = response.ended
                return None

    async def answer(self, *results: content_pb2.ToolResultBlock) -> None:
        """Sends tool results."""
        await self.call.write(pb.RunRequest(tool_results=pb.ToolResults(results=list(results))))

    async def run(self, tools: Callable[[str, dict[str, Any]], str]) -> pb.RunEnded | None:
        """Answers every round of tool calls with ``tools(name, input)`` until the end."""
        while (calls := await self.until_pause()) is not None:
            await self.answer(
                *(result(c.tool_use_id, tools(c.name, json.loads(c.input_json))) for c in calls)
            )
        return self.ended

    @property
    def text(self) -> str:
        """Every delta so far."""
        return "".join(self.deltas)


async def engine_run(
    client: AsyncClient,
    session_id: str,
    text: str | None,
    *,
    engine: str = "",
    tools: list[pb.ToolSpec] = (),  # type: ignore[assignment]
    model: str = "",
    resume: bool = False,
    request_id: str = "",
    checkpoint: int = 0,
) -> EngineRun:
    """Opens a Run of a server-engine turn (``begin`` already called)."""
    open_ = pb.RunOpen(
        session_id=session_id,
        engine=engine,
        tools=list(tools),
        model=model,
        resume=resume,
        request_id=request_id,
        checkpoint=checkpoint,  # type: ignore[arg-type]
    )
    if text is not None:
        open_.input.CopyFrom(text_message("user", text))
    return await EngineRun(client, open_).begin()


def decision(action: int, *, comment: str = "", edited: Any = None) -> turn_pb2.ReviewDecision:
    """A review decision."""
    return turn_pb2.ReviewDecision(
        action=action,  # type: ignore[arg-type]
        comment=comment,
        reviewer="ada",
        edited_input_json="" if edited is None else json.dumps(edited),
    )


def texts(messages) -> list[str]:
    """Each stored message as its first block: the text, or ``<kind>:<tool_use_id>``."""
    out = []
    for m in messages:
        block = m.message.content[0]
        kind = block.WhichOneof("block")
        out.append(block.text if kind == "text" else f"{kind}:{getattr(block, kind).tool_use_id}")
    return out
