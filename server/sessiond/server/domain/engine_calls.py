"""What a server-engine turn shares with its caller and carries between requests.

- :class:`Caller` — the caller's runtime as the tool loop sees it (the gRPC
  ``Run`` stream implements it), with :class:`CallerGone` and
  :class:`CallerFailed`.
- :class:`TurnOptions` and the engine snapshot — the tools and model a turn
  was opened with, saved when it hibernates so any replica can resume it.
- Pending tool calls of a hibernated turn, and the results the loop writes
  itself (rejections, calls it cannot run).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from sessiond.server.domain.engines import ToolCall, ToolSpec, tool_calls
from sessiond.server.domain.records import Decision, ReviewAction, Turn
from sessiond.server.domain.turn_changes import SnapshotInput, TurnOutcome

log = logging.getLogger("sessiond.engines")

#: Content type of the snapshot a hibernating engine turn saves (its tools and model).
ENGINE_SNAPSHOT_TYPE = "application/vnd.sessiond.engine-turn+json"


class CallerGone(Exception):
    """The caller's stream ended while tool results were awaited."""


class CallerFailed(Exception):
    """The caller's runtime gave up (``RunRequest.fail``) while tool results were awaited."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Caller(Protocol):
    """The caller's runtime, connected to a server-engine turn (the ``Run`` stream)."""

    @property
    def attached(self) -> bool:
        """False once the caller went away and the turn completes without it."""
        ...

    async def delta(self, text: str) -> None:
        """Forwards a piece of the model's text."""
        ...

    async def appended(self, outcome: TurnOutcome) -> None:
        """Acknowledges a commit of the turn."""
        ...

    async def run_tools(self, calls: list[ToolCall]) -> dict[str, dict[str, Any]]:
        """Has the runtime execute ``calls``; returns each ``toolResult`` body by ``toolUseId``.

        Raises:
            CallerGone: The stream ended first.
            CallerFailed: The runtime failed the turn instead.
        """
        ...


@dataclass(frozen=True)
class TurnOptions:
    """What a request chose for a server-engine turn: the caller's tools and the model."""

    tools: tuple[ToolSpec, ...] = ()
    model: str = ""


def engine_snapshot(options: TurnOptions) -> SnapshotInput:
    """The snapshot an engine turn saves when it hibernates, so any replica can resume it."""
    body = {"format": 1, "tools": [t.to_json() for t in options.tools], "model": options.model}
    return SnapshotInput(data=json.dumps(body).encode(), content_type=ENGINE_SNAPSHOT_TYPE)


def read_engine_snapshot(data: bytes, content_type: str) -> TurnOptions | None:
    """The options saved by :func:`engine_snapshot` (None for any other snapshot)."""
    if content_type != ENGINE_SNAPSHOT_TYPE:
        return None
    try:
        body = json.loads(data)
        tools = tuple(ToolSpec.from_json(item) for item in body.get("tools") or [])
        return TurnOptions(tools=tools, model=str(body.get("model") or ""))
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("unreadable engine snapshot; resuming without its tools")
        return None


def pending_calls(turn: Turn) -> list[ToolCall]:
    """Tool calls of the turn's last message still waiting for results."""
    own = [m for m in turn.messages if m.turn_id == turn.turn_id]
    if not own or own[-1].message.get("role") != "assistant":
        return []
    return tool_calls(own[-1].message)


def needs_runtime(turn: Turn) -> bool:
    """Whether settling the turn's pending calls needs the caller's runtime (not all rejected)."""
    decisions = {r.tool_use_id: r.decision for r in turn.reviews}
    return any(
        (decision := decisions.get(call.tool_use_id)) is None
        or decision.action is not ReviewAction.REJECT
        for call in pending_calls(turn)
    )


def error_result(tool_use_id: str, text: str) -> dict[str, Any]:
    """A ``toolResult`` body with status ``error`` and one text block."""
    return {"toolUseId": tool_use_id, "status": "error", "content": [{"text": text}]}


def rejection_text(decision: Decision) -> str:
    """What the model is told about a rejected (or expired-and-rejected) call."""
    if decision.reviewer == "sessiond:expired":
        text = "The review of this tool call expired and its default decision rejected it"
    else:
        text = "A human reviewer rejected this tool call"
    text += "; it was not run."
    return text + (f" Reviewer's comment: {decision.comment}" if decision.comment else "")
