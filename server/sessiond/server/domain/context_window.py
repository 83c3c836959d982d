"""The conversation a server-side engine sends to its model: trimmed and repaired.

Two steps, both pure:

1. **Trim** (:func:`trim`) to the engine's context window: the last
   ``max_messages`` messages and/or about ``max_tokens`` tokens (estimated as
   one token per four characters of JSON). A cut is only made just before a
   user message that carries no ``toolResult`` — the start of an exchange —
   so a ``toolUse`` is never separated from its ``toolResult``. The latest
   exchange (the new input and everything after it) is always kept whole,
   even when it alone exceeds the window; the model then answers "context too
   long" (``CONTEXT_TOO_LONG``).
2. **Repair** (:func:`repair`) what the model would refuse, without changing
   the stored history: only ``role`` and ``content`` are kept; blank text
   blocks and empty messages are dropped; the context starts with a user
   message; an assistant ``toolUse`` with no ``toolResult`` in the next
   message (a turn that broke while a tool ran) gets a synthetic error result;
   a ``toolResult`` that answers no ``toolUse`` of the previous message is
   dropped; consecutive messages of the same role are merged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

#: What a repaired context says for a tool call whose result was never recorded.
MISSING_RESULT_TEXT = "No result was recorded for this tool call (the turn was interrupted)."


@dataclass(frozen=True)
class ContextWindow:
    """How much history a model call may carry.

    Attributes:
        max_messages: Keep at most this many messages (0: no limit).
        max_tokens: Keep about this many tokens at most (0: no limit).
    """

    max_messages: int = 0
    max_tokens: int = 0


def estimate_tokens(message: dict[str, Any]) -> int:
    """A rough token count of a message: a quarter of its JSON length, at least 1."""
    return max(1, len(json.dumps(message, ensure_ascii=False, separators=(",", ":"))) // 4)


def tool_use_ids(message: dict[str, Any]) -> list[str]:
    """The ``toolUseId``s of a message's toolUse blocks, in order."""
    return [
        block["toolUse"].get("toolUseId", "")
        for block in message.get("content") or []
        if isinstance(block, dict) and isinstance(block.get("toolUse"), dict)
    ]


def _result_id(block: Any) -> str | None:
    if isinstance(block, dict) and isinstance(block.get("toolResult"), dict):
        return str(block["toolResult"].get("toolUseId", ""))
    return None


def starts_exchange(message: dict[str, Any]) -> bool:
    """True for a user message without toolResult blocks: a place where context may start."""
    return message.get("role") == "user" and not any(
        _result_id(block) is not None for block in message.get("content") or []
    )


def trim(messages: list[dict[str, Any]], window: ContextWindow) -> list[dict[str, Any]]:
    """The longest suffix within the window that starts an exchange (see the module doc)."""
    if not messages or (window.max_messages <= 0 and window.max_tokens <= 0):
        return list(messages)
    starts = [i for i, message in enumerate(messages) if starts_exchange(message)]
    if not starts:
        return list(messages)
    tokens_after = [0] * (len(messages) + 1)
    for i in range(len(messages) - 1, -1, -1):
        tokens_after[i] = tokens_after[i + 1] + estimate_tokens(messages[i])
    chosen = starts[-1]  # the latest exchange is always kept whole
    for start in reversed(starts[:-1]):
        count = len(messages) - start
        if window.max_messages > 0 and count > window.max_messages:
            break
        if window.max_tokens > 0 and tokens_after[start] > window.max_tokens:
            break
        chosen = start
    return list(messages[chosen:])


def _clean(message: dict[str, Any]) -> dict[str, Any] | None:
    content = [
        block
        for block in message.get("content") or []
        if isinstance(block, dict)
        and len(block) == 1
        and not (isinstance(block.get("text"), str) and not block["text"].strip())
    ]
    if message.get("role") not in ("user", "assistant") or not content:
        return None
    return {"role": message["role"], "content": content}


def _missing_result(tool_use_id: str) -> dict[str, Any]:
    return {
        "toolResult": {
            "toolUseId": tool_use_id,
            "status": "error",
            "content": [{"text": MISSING_RESULT_TEXT}],
        }
    }


def repair(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A context the model accepts (see the module doc); the input is not modified."""
    cleaned = [m for m in (_clean(message) for message in messages) if m is not None]
    while cleaned and not starts_exchange(cleaned[0]):
        cleaned.pop(0)
    paired: list[dict[str, Any]] = []
    asked: list[str] = []  # toolUse ids of the previous assistant message, unanswered
    for message in cleaned:
        if message["role"] == "user":
            content = [
                block
                for block in message["content"]
                if _result_id(block) is None or _result_id(block) in asked
            ]
            answered = {_result_id(block) for block in content}
            missing = [_missing_result(i) for i in asked if i not in answered]
            content = missing + content
            asked = []
            if content:
                paired.append({"role": "user", "content": content})
            continue
        if asked:  # two assistant messages in a row: close the first one's calls
            paired.append({"role": "user", "content": [_missing_result(i) for i in asked]})
        paired.append(message)
        asked = tool_use_ids(message)
    if asked:
        paired.append({"role": "user", "content": [_missing_result(i) for i in asked]})
    merged: list[dict[str, Any]] = []
    for message in paired:
        if merged and merged[-1]["role"] == message["role"]:
            previous = merged[-1]
            content = previous["content"] + message["content"]
            merged[-1] = {"role": previous["role"], "content": content}
        else:
            merged.append(message)
    return merged


def build_context(messages: list[dict[str, Any]], window: ContextWindow) -> list[dict[str, Any]]:
    """The model's context: ``messages`` (oldest first) trimmed to ``window``, then repaired."""
    return repair(trim(messages, window))
