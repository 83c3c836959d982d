"""Bedrock Converse requests and answers: the shapes sessiond stores, with real bytes.

Stored messages are Converse messages with bytes written the Strands way
(``{"__bytes_encoded__": true, "data": <base64>}``); boto3 wants ``bytes``.
Answers come back either whole (``converse``) or as ConverseStream events
(``contentBlockStart`` / ``contentBlockDelta`` / ``contentBlockStop`` /
``messageStop`` / ``metadata``), rebuilt here into one assistant message.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from sessiond.server.domain.engines import ModelResponse, ToolSpec
from sessiond.server.domain.records import Usage

#: Description of a tool that appears in the conversation but is no longer offered.
RETIRED_TOOL = "This tool is no longer available."


def decode_bytes(value: Any) -> Any:
    """``value`` with every stored bytes wrapper replaced by ``bytes``."""
    if isinstance(value, dict):
        if value.get("__bytes_encoded__") is True and isinstance(value.get("data"), str):
            return base64.b64decode(value["data"])
        return {key: decode_bytes(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_bytes(item) for item in value]
    return value


def encode_bytes(value: Any) -> Any:
    """``value`` with every ``bytes`` written as a stored bytes wrapper."""
    if isinstance(value, bytes | bytearray):
        return {"__bytes_encoded__": True, "data": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {key: encode_bytes(item) for key, item in value.items()}
    if isinstance(value, list):
        return [encode_bytes(item) for item in value]
    return value


def to_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as ``converse(messages=...)``."""
    return [decode_bytes({"role": m["role"], "content": m["content"]}) for m in messages]


def tool_config(tools: tuple[ToolSpec, ...], messages: list[dict[str, Any]]) -> dict | None:
    """``toolConfig`` for the call, or None.

    Bedrock refuses a conversation holding toolUse / toolResult blocks without
    a ``toolConfig``; tools used earlier but not offered now are declared as
    retired (a call of one gets an error result from the loop).
    """
    specs = [
        {
            "toolSpec": {
                "name": tool.name,
                "description": tool.description or tool.name,
                "inputSchema": {"json": tool.input_schema},
            }
        }
        for tool in tools
    ]
    offered = {tool.name for tool in tools}
    for message in messages:
        for block in message.get("content") or []:
            use = block.get("toolUse") if isinstance(block, dict) else None
            if isinstance(use, dict) and use.get("name") and use["name"] not in offered:
                offered.add(use["name"])
                specs.append(
                    {
                        "toolSpec": {
                            "name": use["name"],
                            "description": RETIRED_TOOL,
                            "inputSchema": {"json": {"type": "object", "properties": {}}},
                        }
                    }
                )
    return {"tools": specs} if specs else None


def _usage(usage: dict[str, Any] | None) -> Usage | None:
    if not usage:
        return None
    inputs = int(usage.get("inputTokens", 0) or 0)
    outputs = int(usage.get("outputTokens", 0) or 0)
    return Usage(
        input_tokens=inputs,
        output_tokens=outputs,
        total_tokens=int(usage.get("totalTokens", 0) or 0) or inputs + outputs,
    )


def from_converse(response: dict[str, Any], model: str) -> ModelResponse:
    """A ``converse`` answer."""
    message = (response.get("output") or {}).get("message") or {}
    return ModelResponse(
        message=encode_bytes({"role": "assistant", "content": message.get("content") or []}),
        usage=_usage(response.get("usage")),
        stop_reason=str(response.get("stopReason") or ""),
        model=model,
    )


def _tool_input(text: str) -> Any:
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except ValueError:
        return text  # not an object: the loop answers it with an error result


class ConverseStream:
    """Rebuilds a ConverseStream answer from its events."""

    def __init__(self) -> None:
        self._blocks: dict[int, dict[str, Any]] = {}
        self._stop = ""
        self._usage: Usage | None = None

    def _block(self, index: int) -> dict[str, Any]:
        return self._blocks.setdefault(index, {"text": ""})

    def add(self, event: dict[str, Any]) -> str:
        """Takes one event; returns its new text (may be empty)."""
        if "contentBlockStart" in event:
            body = event["contentBlockStart"]
            use = (body.get("start") or {}).get("toolUse")
            if use is not None:
                self._blocks[body.get("contentBlockIndex", 0)] = {
                    "toolUseId": use.get("toolUseId", ""),
                    "name": use.get("name", ""),
                    "input": "",
                }
        elif "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            delta = body.get("delta") or {}
            block = self._block(body.get("contentBlockIndex", 0))
            if "text" in delta:
                block["text"] = block.get("text", "") + delta["text"]
                return str(delta["text"])
            if "toolUse" in delta:
                block["input"] = block.get("input", "") + delta["toolUse"].get("input", "")
            elif "reasoningContent" in delta:
                reasoning = block.setdefault("reasoning", {})
                for key, value in delta["reasoningContent"].items():
                    reasoning[key] = reasoning.get(key, "" if key != "redactedContent" else b"")
                    reasoning[key] += value
        elif "messageStop" in event:
            self._stop = str(event["messageStop"].get("stopReason") or "")
        elif "metadata" in event:
            self._usage = _usage(event["metadata"].get("usage")) or self._usage
        return ""

    def response(self, model: str) -> ModelResponse:
        """The whole answer."""
        content: list[dict[str, Any]] = []
        for index in sorted(self._blocks):
            block = self._blocks[index]
            if "toolUseId" in block:
                content.append(
                    {
                        "toolUse": {
                            "toolUseId": block["toolUseId"],
                            "name": block["name"],
                            "input": _tool_input(block["input"]),
                        }
                    }
                )
            elif "reasoning" in block:
                reasoning = block["reasoning"]
                if "redactedContent" in reasoning:
                    body = {"redactedContent": reasoning["redactedContent"]}
                else:
                    body = {"reasoningText": dict(reasoning)}
                content.append({"reasoningContent": body})
            elif block.get("text"):
                content.append({"text": block["text"]})
        return ModelResponse(
            message=encode_bytes({"role": "assistant", "content": content}),
            usage=self._usage,
            stop_reason=self._stop,
            model=model,
        )
