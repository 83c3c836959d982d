"""Server-side engines: what produces a turn's output when the caller's runtime does not.

``echo`` is built in, deterministic and the default, so everything works out
of the box. Real model engines register here too; a request picks one by name.
The ``client`` engine is not in the registry: it is the caller's own runtime,
driving a ``Run`` stream.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sessiond.errors import InvalidArgument
from sessiond.server.domain.content import message_text, text_message
from sessiond.server.domain.records import Review, StoredMessage, Usage

CLIENT_ENGINE = "client"


@dataclass(frozen=True)
class EngineRequest:
    """Everything an engine gets to produce the next output of a turn.

    Attributes:
        history: The agent's committed history (empty if the engine does not
            ask for it).
        turn_messages: Messages this turn already committed (for a resumed
            turn: its recorded input and any output so far).
        input: The new input message, not yet committed (None on resume).
        state: The agent state.
        reviews: The turn's reviews with their decisions (on resume).
    """

    history: list[StoredMessage]
    turn_messages: list[StoredMessage]
    input: dict[str, Any] | None
    state: dict[str, Any]
    reviews: list[Review] = field(default_factory=list)


@dataclass(frozen=True)
class EngineReply:
    """An engine's output: messages to append, usage, and optionally a new state."""

    messages: list[dict[str, Any]]
    usage: Usage | None = None
    state: dict[str, Any] | None = None


class Engine(Protocol):
    """A server-side producer of turn output.

    Attributes:
        name: The name requests use.
        needs_history: Whether ``respond`` needs the committed history.
        instant: Whether a reply takes no noticeable time (no model call).
            Turns of instant engines commit optimistically, without a lease.
    """

    name: str
    needs_history: bool
    instant: bool

    async def respond(self, request: EngineRequest) -> EngineReply:
        """Produces the turn's output."""
        ...


class EchoEngine:
    """Answers ``echo: <the user's text>``, with word counts as token usage."""

    name = "echo"
    needs_history = False
    instant = True

    async def respond(self, request: EngineRequest) -> EngineReply:
        """Echoes the input (or, on resume, the turn's recorded user input)."""
        source = request.input
        if source is None:
            users = [m.message for m in request.turn_messages if m.message.get("role") == "user"]
            source = users[-1] if users else {"content": []}
        text = message_text(source)
        reply = f"echo: {text}"
        usage = Usage(
            input_tokens=len(text.split()),
            output_tokens=len(reply.split()),
            total_tokens=len(text.split()) + len(reply.split()),
        )
        return EngineReply(messages=[text_message("assistant", reply)], usage=usage)


class EngineRegistry:
    """The engines the operator configured, by name."""

    def __init__(self, engines: list[Engine], *, default: str) -> None:
        self._engines = {engine.name: engine for engine in engines}
        if default not in self._engines:
            raise ValueError(f"default engine {default!r} is not configured")
        self.default = default

    def get(self, name: str | None) -> Engine:
        """The named engine (the default when empty).

        Raises:
            InvalidArgument: No such server-side engine.
        """
        chosen = name or self.default
        engine = self._engines.get(chosen)
        if engine is None:
            raise InvalidArgument(
                f"unknown engine {chosen!r}; configured: {', '.join(sorted(self._engines))}",
                field="engine",
                engine=chosen,
            )
        return engine

    @property
    def names(self) -> list[str]:
        """Configured engine names."""
        return sorted(self._engines)
