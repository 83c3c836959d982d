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
