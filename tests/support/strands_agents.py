"""Strands agents for the interop tests: the deterministic model, an optional window."""

from __future__ import annotations

from typing import Any

from strands import Agent
from strands.agent.conversation_manager import SlidingWindowConversationManager

from support.strands_model import ReplyModel


def strands_agent(manager: Any, agent_id: str = "default", window: int | None = None) -> Agent:
    """An agent on ``ReplyModel`` persisted by ``manager`` (a sliding window of ``window``)."""
    extra = {}
    if window is not None:
        extra["conversation_manager"] = SlidingWindowConversationManager(window_size=window)
    return Agent(
        model=ReplyModel(),
        agent_id=agent_id,
        session_manager=manager,
        callback_handler=None,
        **extra,
    )


def texts(messages: Any) -> list[str]:
    """The text of each ``SessionMessage`` (its text blocks joined)."""
    return [
        "".join(block.text for block in m.message.content if block.WhichOneof("block") == "text")
        for m in messages
    ]
