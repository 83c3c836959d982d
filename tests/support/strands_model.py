"""A deterministic Strands ``Model`` for tests: no network, predictable replies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from strands.models.model import Model


class ReplyModel(Model):
    """Answers ``reply to: <the last user text>`` with fixed usage metadata."""

    def __init__(self) -> None:
        self.config: dict[str, Any] = {}
        self.calls = 0

    def update_config(self, **model_config: Any) -> None:
        """Stores config (unused)."""
        self.config.update(model_config)

    def get_config(self) -> dict[str, Any]:
        """Returns the config."""
        return self.config

    async def structured_output(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Not used by these tests."""
        raise NotImplementedError
        yield

    async def stream(self, messages: list[Any], *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Streams one text reply in Converse stream-event shape."""
        self.calls += 1
        last = messages[-1]
        text = "".join(block.get("text", "") for block in last.get("content", []))
        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"start": {}}}
        yield {"contentBlockDelta": {"delta": {"text": f"reply to: {text}"}}}
        yield {"contentBlockStop": {}}
        yield {"messageStop": {"stopReason": "end_turn"}}
        yield {
            "metadata": {
                "usage": {"inputTokens": 3, "outputTokens": 3, "totalTokens": 6},
                "metrics": {"latencyMs": 1},
            }
        }


class ToolCallingModel(ReplyModel):
    """Calls ``tool_name`` once with ``tool_input``, then answers with the tool's result."""

    def __init__(self, tool_name: str, tool_input: dict[str, Any], *, delay: float = 0.0) -> None:
        super().__init__()
        self.tool_name = tool_name
        self.tool_input = tool_input
        self.delay = delay

    async def stream(self, messages: list[Any], *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """First a toolUse; once a toolResult is in the history, a text answer."""
        import asyncio
        import json

        self.calls += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        last = messages[-1]
        results = [b["toolResult"] for b in last.get("content", []) if "toolResult" in b]
        if results:
            text = "".join(c.get("text", "") for c in results[0].get("content", []))
            yield {"messageStart": {"role": "assistant"}}
            yield {"contentBlockStart": {"start": {}}}
            yield {"contentBlockDelta": {"delta": {"text": f"tool said: {text}"}}}
            yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "end_turn"}}
        else:
            yield {"messageStart": {"role": "assistant"}}
            tool_use = {"toolUseId": f"call-{self.calls}", "name": self.tool_name}
            yield {"contentBlockStart": {"start": {"toolUse": tool_use}}}
            tool_input = json.dumps(self.tool_input)
            yield {"contentBlockDelta": {"delta": {"toolUse": {"input": tool_input}}}}
            yield {"contentBlockStop": {}}
            yield {"messageStop": {"stopReason": "tool_use"}}
        yield {
            "metadata": {
                "usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7},
                "metrics": {"latencyMs": 1},
            }
        }


class SlowModel(ReplyModel):
    """A ReplyModel that takes ``delay`` seconds to answer."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def stream(self, messages: list[Any], *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """Waits, then answers like ReplyModel."""
        import asyncio

        await asyncio.sleep(self.delay)
        async for event in super().stream(messages, *args, **kwargs):
            yield event
