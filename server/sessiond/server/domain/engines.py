"""Server-side engines: what produces a turn's output when the caller's runtime does not.

``echo`` is built in, deterministic and the default, so everything works out
of the box. Model engines (``sessiond.server.engines``: OpenAI-compatible,
Bedrock) implement the same protocol; a request picks one by name. The
``client`` engine is not in the registry: it is the caller's own runtime,
driving a ``Run`` stream.

An engine answers one model call: :meth:`Engine.stream` yields
:class:`TextDelta` events as the text arrives and ends with one
:class:`ModelResponse` (the assistant message, with any ``toolUse`` blocks,
and the token usage). The tool loop around it (rounds, reviews, the caller's
tools) is :mod:`sessiond.server.domain.engine_loop`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from sessiond.errors import (
    ContextTooLong,
    EngineRateLimited,
    EngineRejected,
    EngineTimeout,
    EngineUnauthorized,
    EngineUnavailable,
    InvalidArgument,
    SessiondError,
    ToolResultTimeout,
    ToolRoundsExceeded,
)
from sessiond.server.domain.content import message_text, text_message
from sessiond.server.domain.context_window import ContextWindow
from sessiond.server.domain.records import ReviewAction, Usage

CLIENT_ENGINE = "client"

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TOOLS = 128
MAX_TOOL_DESCRIPTION_CHARS = 4096

#: Errors that end a server-engine turn, by the reason recorded as the turn's
#: error code; a retried request (same request id) raises the same error again.
TURN_FAILURES: dict[str, type[SessiondError]] = {
    cls.reason: cls
    for cls in (
        ContextTooLong,
        EngineRateLimited,
        EngineRejected,
        EngineTimeout,
        EngineUnauthorized,
        EngineUnavailable,
        ToolResultTimeout,
        ToolRoundsExceeded,
    )
}


@dataclass(frozen=True)
class ToolSpec:
    """A tool the caller's runtime executes, declared when a Run opens.

    Attributes:
        name: The name the model calls it by.
        description: What it does, for the model.
        input_schema: JSON Schema (an object) of its input.
        requires_review: Calls need a human decision first.
        review_ttl_seconds: How long such a review may wait (None: forever).
        review_default_action: The decision applied when the review expires.
    """

    name: str
    description: str = ""
    input_schema: dict[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    requires_review: bool = False
    review_ttl_seconds: float | None = None
    review_default_action: ReviewAction | None = None

    def to_json(self) -> dict[str, Any]:
        """The spec as a JSON object (stored in an engine turn's snapshot)."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
            "requires_review": self.requires_review,
            "review_ttl_seconds": self.review_ttl_seconds,
            "review_default_action": self.review_default_action.value
            if self.review_default_action
            else None,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ToolSpec:
        """A spec from :meth:`to_json`'s output."""
        action = value.get("review_default_action")
        return cls(
            name=str(value["name"]),
            description=str(value.get("description") or ""),
            input_schema=dict(value.get("input_schema") or {}),
            requires_review=bool(value.get("requires_review")),
            review_ttl_seconds=value.get("review_ttl_seconds"),
            review_default_action=ReviewAction(action) if action else None,
        )


def check_tools(tools: list[ToolSpec]) -> tuple[ToolSpec, ...]:
    """Validates tool declarations (INVALID_ARGUMENT on the first problem)."""
    if len(tools) > MAX_TOOLS:
        raise InvalidArgument(f"at most {MAX_TOOLS} tools", field="tools")
    seen: set[str] = set()
    for tool in tools:
        if not TOOL_NAME.match(tool.name):
            raise InvalidArgument(
                "a tool name is 1-64 characters of [A-Za-z0-9_-]", field="tools.name"
            )
        if tool.name in seen:
            raise InvalidArgument(f"tool {tool.name!r} is declared twice", field="tools.name")
        seen.add(tool.name)
        if len(tool.description) > MAX_TOOL_DESCRIPTION_CHARS:
            raise InvalidArgument("a tool description is too long", field="tools.description")
        if tool.input_schema.get("type", "object") != "object":
            raise InvalidArgument(
                "a tool's input schema must describe an object", field="tools.input_schema_json"
            )
        if tool.review_ttl_seconds is not None:
            if tool.review_ttl_seconds <= 0:
                raise InvalidArgument("review_ttl must be positive", field="tools.review_ttl")
            if tool.review_default_action is None:
                raise InvalidArgument(
                    "review_ttl needs review_default_action", field="tools.review_default_action"
                )
    return tuple(tools)


@dataclass(frozen=True)
class ToolCall:
    """One ``toolUse`` of a model response.

    Attributes:
        tool_use_id: Pairs the call with its result.
        name: The tool.
        input: The tool input (normally a JSON object).
    """

    tool_use_id: str
    name: str
    input: Any

    @classmethod
    def from_block(cls, block: dict[str, Any]) -> ToolCall:
        """A call from a stored ``{"toolUse": {...}}`` block."""
        use = block["toolUse"]
        return cls(str(use.get("toolUseId", "")), str(use.get("name", "")), use.get("input"))


def tool_calls(message: dict[str, Any]) -> list[ToolCall]:
    """The tool calls of an assistant message, in order."""
    return [
        ToolCall.from_block(block)
        for block in message.get("content") or []
        if isinstance(block, dict) and isinstance(block.get("toolUse"), dict)
    ]


@dataclass(frozen=True)
class ModelRequest:
    """One model call.

    Attributes:
        messages: The conversation in Converse shape, oldest first, already
            trimmed and repaired (starts with a user message, ends with one).
        tools: The tools the model may call.
        model: The model to use; empty for the engine's default.
        state: The agent's state (engines may ignore it).
    """

    messages: list[dict[str, Any]]
    tools: tuple[ToolSpec, ...] = ()
    model: str = ""
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer's text, as it arrives."""

    text: str


@dataclass(frozen=True)
class ModelResponse:
    """The end of a model call: the assistant message and its usage.

    Attributes:
        message: ``{"role": "assistant", "content": [...]}``; ``toolUse``
            blocks are the model's tool calls.
        usage: Tokens the call used, if the endpoint reported them.
        stop_reason: Why the model stopped (``end_turn``, ``tool_use``, ...).
        model: The model that answered.
    """

    message: dict[str, Any]
    usage: Usage | None = None
    stop_reason: str = ""
    model: str = ""


EngineEvent = TextDelta | ModelResponse


class Engine(Protocol):
    """A server-side producer of turn output.

    Attributes:
        name: The name requests use.
        needs_history: Whether model calls need the agent's committed history
            (False: only the turn's own messages).
        instant: Whether a reply takes no noticeable time (no model call).
            Chat turns of instant engines commit optimistically, without a lease.
        model: The default model ("" when the engine has no model choice).
        allowed_models: Models a request may pick instead of the default.
        window: The engine's context window (None: the server's default).
    """

    name: str
    needs_history: bool
    instant: bool
    model: str
    allowed_models: frozenset[str]
    window: ContextWindow | None

    def stream(self, request: ModelRequest) -> AsyncIterator[EngineEvent]:
        """Runs one model call: text deltas, then exactly one ``ModelResponse``.

        Raises:
            SessiondError: ``EngineTimeout``, ``EngineRateLimited``,
                ``EngineUnauthorized``, ``ContextTooLong``, ``EngineRejected``
                or ``EngineUnavailable``, with messages that never contain
                credentials or the endpoint's own error text.
        """
        ...

    async def aclose(self) -> None:
        """Releases the engine's connections."""
        ...


class EchoEngine:
    """Answers ``echo: <the last user text>``, with word counts as token usage."""

    name = "echo"
    needs_history = False
    instant = True
    model = ""
    allowed_models: frozenset[str] = frozenset()
    window: ContextWindow | None = None

    async def stream(self, request: ModelRequest) -> AsyncIterator[EngineEvent]:
        """Echoes the text of the conversation's last user message."""
        users = [m for m in request.messages if m.get("role") == "user" and message_text(m)]
        text = message_text(users[-1]) if users else ""
        reply = f"echo: {text}"
        yield TextDelta(reply)
        usage = Usage(
            input_tokens=len(text.split()),
            output_tokens=len(reply.split()),
            total_tokens=len(text.split()) + len(reply.split()),
        )
        yield ModelResponse(message=text_message("assistant", reply), usage=usage)

    async def aclose(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class LoopSettings:
    """Limits of the tool loop of server-engine turns.

    Attributes:
        max_tool_rounds: Model responses with tool calls allowed in one turn.
        tool_result_timeout_seconds: How long the caller may take to return
            the results of one round of tool calls.
        window: The context window of engines that set none.
        complete_on_disconnect: A turn whose caller goes away runs on without it
            (to its answer, or hibernated when tools need the caller) instead of
            ending as ERROR.
    """

    max_tool_rounds: int = 16
    tool_result_timeout_seconds: float = 300.0
    window: ContextWindow = field(default_factory=ContextWindow)
    complete_on_disconnect: bool = False


class EngineRegistry:
    """The engines the operator configured, by name, and the tool loop's limits."""

    def __init__(
        self, engines: list[Engine], *, default: str, loop: LoopSettings | None = None
    ) -> None:
        self._engines = {engine.name: engine for engine in engines}
        if default not in self._engines:
            raise ValueError(
                f"default engine {default!r} is not configured; "
                f"configured: {', '.join(sorted(self._engines))}"
            )
        self.default = default
        self.loop = loop or LoopSettings()

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

    async def aclose(self) -> None:
        """Closes every engine's connections."""
        for engine in self._engines.values():
            closer = getattr(engine, "aclose", None)
            if closer is not None:
                await closer()


def resolve_model(engine: Engine, requested: str) -> str:
    """The model a request asked for, if the operator allows it ("" keeps the default).

    Raises:
        InvalidArgument: The model is not the engine's default nor in its allowed list.
    """
    if not requested:
        return ""
    default = getattr(engine, "model", "")
    allowed = getattr(engine, "allowed_models", frozenset())
    if requested == default or requested in allowed:
        return requested
    choices = sorted({default, *allowed} - {""})
    raise InvalidArgument(
        f"model {requested!r} is not allowed for engine {engine.name!r}"
        + (f"; allowed: {', '.join(choices)}" if choices else "; it has no model choice"),
        field="model",
        engine=engine.name,
    )
