"""An in-process engine that plays a script, for tests of the tool loop itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sessiond.server.domain.context_window import ContextWindow
from sessiond.server.domain.engines import EngineEvent, ModelRequest, ModelResponse, TextDelta
from sessiond.server.domain.records import Usage


@dataclass
class Step:
    """One scripted model call: text pieces, tool calls, or an error to raise."""

    text: list[str] = field(default_factory=list)
    calls: list[tuple[str, str, Any]] = field(default_factory=list)
    error: Exception | None = None
    #: Wait for this event after the first delta (a model that is still talking).
    hold: asyncio.Event | None = None


def says(*pieces: str) -> Step:
    """A text answer."""
    return Step(text=list(pieces))


def calls(*items: tuple[str, str, Any], say: str = "") -> Step:
    """An answer calling tools ``(id, name, input)``."""
    return Step(text=[say] if say else [], calls=list(items))


class ScriptedEngine:
    """Answers model calls from a script and records each request."""

    needs_history = True
    instant = False

    def __init__(
        self,
        name: str = "scripted",
        *,
        model: str = "m-default",
        allowed: tuple[str, ...] = ("m-big",),
        window: ContextWindow | None = None,
    ) -> None:
        self.name = name
        self.model = model
        self.allowed_models = frozenset(allowed)
        self.window = window
        self.script: list[Step] = []
        self.requests: list[ModelRequest] = []
        self.started = asyncio.Event()

    def queue(self, *steps: Step) -> None:
        """Queues answers."""
        self.script.extend(steps)

    async def stream(self, request: ModelRequest) -> AsyncIterator[EngineEvent]:
        """Plays the next step."""
        self.requests.append(request)
        self.started.set()
        step = self.script.pop(0) if self.script else says("done")
        if step.error is not None:
            raise step.error
        for position, piece in enumerate(step.text):
            yield TextDelta(piece)
            if position == 0 and step.hold is not None:
                await step.hold.wait()
        content: list[dict[str, Any]] = [{"text": "".join(step.text)}] if step.text else []
        content += [{"toolUse": {"toolUseId": i, "name": n, "input": a}} for i, n, a in step.calls]
        yield ModelResponse(
            message={"role": "assistant", "content": content},
            usage=Usage(input_tokens=7, output_tokens=3, total_tokens=10),
            stop_reason="tool_use" if step.calls else "end_turn",
            model=request.model or self.model,
        )

    async def aclose(self) -> None:
        """Nothing to close."""
