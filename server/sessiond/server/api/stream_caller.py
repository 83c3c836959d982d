"""The caller's runtime on a ``Run`` stream, as the engine loop sees it (``Caller``).

The engine loop (pure domain) talks to the caller through three methods; this
module turns them into stream messages:

- ``delta(text)`` → ``RunResponse.delta``
- ``appended(outcome)`` → ``RunResponse.appended`` (one per commit)
- ``run_tools(calls)`` → ``RunResponse.tool_calls``, then reads
  ``RunRequest.tool_results`` until every call has a result. The runtime may
  answer in one message or several (for example as parallel calls complete);
  ``RunRequest.fail`` gives up (the turn ends as ERROR ``RUNTIME_FAILED``).
  Anything else, a result for a call that was not asked for, or a second
  result for the same call is ``INVALID_ARGUMENT``.

Once :meth:`StreamCaller.detach` was called (the call is gone and the turn
completes without it), output is dropped and ``run_tools`` raises
``CallerGone`` at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from sessiond.errors import InvalidArgument
from sessiond.server.api import convert
from sessiond.server.api.content_codec import block_to_dict
from sessiond.server.domain.engine_calls import CallerFailed, CallerGone
from sessiond.server.domain.engines import ToolCall, ToolSpec
from sessiond.server.domain.turn_changes import TurnOutcome
from sessiond.server.domain.validation import parse_json
from sessiond.v1 import content_pb2
from sessiond.v1 import session_service_pb2 as pb

MAX_SCHEMA_BYTES = 64 * 1024


def tools_from_pb(tools: list[pb.ToolSpec]) -> tuple[ToolSpec, ...]:
    """``RunOpen.tools`` as domain tool specs (checked further by the domain)."""
    specs = []
    for tool in tools:
        if len(tool.input_schema_json.encode()) > MAX_SCHEMA_BYTES:
            raise InvalidArgument("a tool's input schema is too large", field="tools")
        schema: Any = {"type": "object", "properties": {}}
        if tool.input_schema_json:
            schema = parse_json(tool.input_schema_json, field="tools.input_schema_json")
            if not isinstance(schema, dict):
                raise InvalidArgument(
                    "input_schema_json must be a JSON object", field="tools.input_schema_json"
                )
        ttl = None
        if tool.HasField("review_ttl"):
            ttl = tool.review_ttl.ToTimedelta().total_seconds()
            if ttl <= 0:
                raise InvalidArgument("review_ttl must be positive", field="tools.review_ttl")
        specs.append(
            ToolSpec(
                name=tool.name,
                description=tool.description,
                input_schema=schema,
                requires_review=tool.requires_review,
                review_ttl_seconds=ttl,
                review_default_action=convert.action_from_pb(tool.review_default_action),
            )
        )
    return tuple(specs)


class StreamCaller:
    """Implements the engine loop's ``Caller`` on one Run stream."""

    def __init__(
        self,
        requests: AsyncIterator[pb.RunRequest],
        send: Callable[[Any], Awaitable[None]],
    ) -> None:
        self._requests = aiter(requests)
        self._send = send
        self._gone = asyncio.Event()

    @property
    def attached(self) -> bool:
        """Whether the stream is still there to receive output and run tools."""
        return not self._gone.is_set()

    def detach(self) -> None:
        """The call is gone: drop output from now on, and stop waiting for tool results."""
        self._gone.set()

    async def emit(self, item: Any) -> None:
        """Passes ``item`` to the stream's sender, unless the caller is detached."""
        if self.attached:
            await self._send(item)

    async def delta(self, text: str) -> None:
        """Sends a text delta."""
        await self.emit(pb.RunResponse(delta=pb.TextDelta(text=text)))

    async def appended(self, outcome: TurnOutcome) -> None:
        """Acknowledges a commit with the stored messages."""
        await self.emit(
            pb.RunResponse(
                appended=pb.RunAppended(
                    messages=[convert.stored_message_pb(m) for m in outcome.appended],
                    etag=outcome.head.etag,
                )
            )
        )

    async def run_tools(self, calls: list[ToolCall]) -> dict[str, dict[str, Any]]:
        """Sends the calls and collects one ``toolResult`` body per call."""
        if not self.attached:
            raise CallerGone()
        await self.emit(
            pb.RunResponse(
                tool_calls=pb.ToolCalls(
                    calls=[
                        content_pb2.ToolUseBlock(
                            tool_use_id=call.tool_use_id,
                            name=call.name,
                            input_json=convert.json_text(call.input),
                        )
                        for call in calls
                    ]
                )
            )
        )
        wanted = {call.tool_use_id for call in calls}
        results: dict[str, dict[str, Any]] = {}
        while len(results) < len(wanted):
            request = await self._next_request()
            if request is None:
                raise CallerGone()
            kind = request.WhichOneof("action")
            if kind == "fail":
                raise CallerFailed(request.fail.error_message or "the runtime failed")
            if kind != "tool_results":
                raise InvalidArgument(
                    "while tool calls are pending, send tool_results (or fail)",
                    field="tool_results",
                )
            for position, result in enumerate(request.tool_results.results):
                if result.tool_use_id not in wanted or result.tool_use_id in results:
                    raise InvalidArgument(
                        "a tool result must answer a pending call, once",
                        field="tool_results.tool_use_id",
                        tool_use_id=result.tool_use_id,
                    )
                block = block_to_dict(
                    content_pb2.ContentBlock(tool_result=result),
                    field=f"tool_results.results[{position}]",
                )
                results[result.tool_use_id] = block["toolResult"]
        return results

    async def _next_request(self) -> pb.RunRequest | None:
        """The next request, or None when the stream ends or the caller is detached."""
        read = asyncio.ensure_future(anext(self._requests, None))
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait({read, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            if not read.done():
                read.cancel()
        return read.result() if read.done() and not read.cancelled() else None
