"""Strands agents for the interop tests: the deterministic model, a tool that needs approval."""

from __future__ import annotations

from typing import Any

from strands import Agent, tool
from strands.agent.conversation_manager import SlidingWindowConversationManager
from strands.hooks import BeforeToolCallEvent, HookProvider, HookRegistry

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


#: Paths ``delete_file`` was called with (tests clear it first).
DELETED: list[str] = []


@tool
def delete_file(path: str) -> str:
    """Deletes a file (a test tool that records the call)."""
    DELETED.append(path)
    return f"deleted {path}"


class ApproveDeletes(HookProvider):
    """Asks a human before delete_file runs (a Strands interrupt).

    With ``mark_state`` the agent's state gets ``asked: True`` when asking,
    so tests can see state changed during an interrupted turn persist.
    """

    def __init__(self, *, mark_state: bool = False) -> None:
        self.mark_state = mark_state

    def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
        """Checks every tool call before it runs."""
        registry.add_callback(BeforeToolCallEvent, self.check)

    def check(self, event: BeforeToolCallEvent) -> None:
        """Interrupts before delete_file; cancels it unless approved."""
        if event.tool_use["name"] != "delete_file":
            return
        answer = event.interrupt("approve-delete", reason={"path": event.tool_use["input"]["path"]})
        if self.mark_state:
            event.agent.state.set("asked", True)
        if answer.get("action") != "APPROVE":
            event.cancel_tool = f"the reviewer said no: {answer.get('comment', '')}"
