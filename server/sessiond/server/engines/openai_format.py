"""Converse-shaped conversations to OpenAI chat-completions requests, and answers back.

Requests: an assistant message's text and ``toolUse`` blocks become one
assistant message with ``tool_calls``; a user message's ``toolResult`` blocks
become ``tool`` messages (placed first, right after the assistant message that
asked) and its text and images one user message. Blocks chat completions
cannot carry (reasoning, cache points, video...) are left out; a text-like
document (txt, md, csv, html) is sent as text, others as a one-line note.

Answers: streamed chunks (``choices[0].delta``: ``content``, ``tool_calls``
fragments by index; a last chunk with ``usage``) or a whole completion become
one Converse assistant message.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Any

from sessiond.server.domain.engines import ModelResponse, ToolSpec
from sessiond.server.domain.records import Usage

TEXT_DOCUMENTS = ("txt", "md", "csv", "html", "json", "xml", "yaml")

_STOP_REASONS = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "content_filtered",
}


def _bytes_b64(value: Any) -> str | None:
    """Base64 of a stored bytes value (``{"__bytes_encoded__": true, "data": ...}``)."""
    if isinstance(value, dict) and value.get("__bytes_encoded__") is True:
        return str(value.get("data", ""))
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    return None


def _document_part(document: dict[str, Any]) -> dict[str, Any]:
    name = document.get("name", "document")
    fmt = str(document.get("format", ""))
    data = _bytes_b64((document.get("source") or {}).get("bytes"))
    if fmt in TEXT_DOCUMENTS and data is not None:
        try:
            text = base64.b64decode(data).decode("utf-8")
            return {"type": "text", "text": f"[document {name}]\n{text}"}
        except (binascii.Error, UnicodeDecodeError):
            pass
    return {"type": "text", "text": f"[document {name} ({fmt}) not shown]"}


def _user_part(block: dict[str, Any]) -> dict[str, Any] | None:
    if isinstance(block.get("text"), str):
        return {"type": "text", "text": block["text"]}
    if isinstance(block.get("image"), dict):
        image = block["image"]
        data = _bytes_b64((image.get("source") or {}).get("bytes"))
        if data is not None:
            fmt = image.get("format", "png")
            return {"type": "image_url", "image_url": {"url": f"data:image/{fmt};base64,{data}"}}
    if isinstance(block.get("document"), dict):
        return _document_part(block["document"])
    return None


def result_text(result: dict[str, Any]) -> str:
    """A ``toolResult`` as the text of a ``tool`` message."""
    pieces = []
    for item in result.get("content") or []:
        if not isinstance(item, dict):
            continue
        if isinstance(item.get("text"), str):
            pieces.append(item["text"])
        elif "json" in item:
            pieces.append(json.dumps(item["json"], ensure_ascii=False))
        elif item:
            pieces.append(f"[{next(iter(item))}]")
    text = "\n".join(pieces) or "(no output)"
    return f"Error: {text}" if result.get("status") == "error" else text


def to_messages(messages: list[dict[str, Any]], system: str | None) -> list[dict[str, Any]]:
    """A Converse conversation as chat-completions ``messages``."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    for message in messages:
        blocks = [b for b in message.get("content") or [] if isinstance(b, dict)]
        if message.get("role") == "assistant":
            text = "".join(b["text"] for b in blocks if isinstance(b.get("text"), str))
            calls = [
                {
                    "id": use.get("toolUseId", ""),
                    "type": "function",
                    "function": {
                        "name": use.get("name", ""),
                        "arguments": json.dumps(use.get("input", {}), ensure_ascii=False),
                    },
                }
                for b in blocks
                if isinstance(use := b.get("toolUse"), dict)
            ]
            if text or calls:
                entry: dict[str, Any] = {"role": "assistant", "content": text or None}
                if calls:
                    entry["tool_calls"] = calls
                out.append(entry)
            continue
        parts = []
        for block in blocks:
            if isinstance(block.get("toolResult"), dict):
                result = block["toolResult"]
                out.append(
                    {
                        "role": "tool",
                        "tool_call_id": result.get("toolUseId", ""),
                        "content": result_text(result),
                    }
                )
            elif (part := _user_part(block)) is not None:
                parts.append(part)
        if parts:
            only_text = all(part["type"] == "text" for part in parts)
            content: Any = "\n".join(p["text"] for p in parts) if only_text else parts
            out.append({"role": "user", "content": content})
    return out


def to_tools(tools: tuple[ToolSpec, ...]) -> list[dict[str, Any]]:
    """Tool specs as chat-completions function tools."""
    return [
        {
            "type": "function",
            "function": {
                "name": tool.name,
                "description": tool.description or tool.name,
                "parameters": tool.input_schema,
            },
        }
        for tool in tools
    ]


def _tool_input(arguments: str) -> Any:
    """Parsed tool arguments; text that is not JSON is kept as a string (the loop refuses it)."""
    if not arguments.strip():
        return {}
    try:
        return json.loads(arguments)
    except ValueError:
        return arguments


def _message(text: str, calls: list[tuple[str, str, str]]) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"text": text}] if text else []
    for call_id, name, arguments in calls:
        content.append(
            {
                "toolUse": {
                    "toolUseId": call_id or f"call_{secrets.token_hex(8)}",
                    "name": name,
                    "input": _tool_input(arguments),
                }
            }
        )
    return {"role": "assistant", "content": content}


def _usage(usage: Any) -> Usage | None:
    if usage is None:
        return None
    prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
    completion = int(getattr(usage, "completion_tokens", 0) or 0)
    total = int(getattr(usage, "total_tokens", 0) or 0) or prompt + completion
    return Usage(input_tokens=prompt, output_tokens=completion, total_tokens=total)


class ChatStream:
    """Accumulates streamed chat-completion chunks into one answer."""

    def __init__(self) -> None:
        self._text: list[str] = []
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]
        self._finish = ""
        self._usage: Usage | None = None
        self._model = ""

    def add(self, chunk: Any) -> str:
        """Takes one chunk; returns its new text (may be empty)."""
        if getattr(chunk, "usage", None) is not None:
            self._usage = _usage(chunk.usage)
        self._model = getattr(chunk, "model", None) or self._model
        text = ""
        for choice in getattr(chunk, "choices", None) or []:
            if (getattr(choice, "index", 0) or 0) != 0:
                continue
            delta = choice.delta
            if delta is not None and getattr(delta, "content", None):
                text += delta.content
            for position, call in enumerate(getattr(delta, "tool_calls", None) or []):
                index = call.index if call.index is not None else position
                entry = self._calls.setdefault(index, ["", "", ""])
                entry[0] = call.id or entry[0]
                function = call.function
                if function is not None:
                    entry[1] = function.name or entry[1]
                    entry[2] += function.arguments or ""
            if choice.finish_reason:
                self._finish = choice.finish_reason
        self._text.append(text)
        return text

    def response(self, model: str) -> ModelResponse:
        """The whole answer."""
        calls = [tuple(self._calls[i]) for i in sorted(self._calls)]
        return ModelResponse(
            message=_message("".join(self._text), calls),  # type: ignore[arg-type]
            usage=self._usage,
            stop_reason=_STOP_REASONS.get(self._finish, self._finish),
            model=self._model or model,
        )


def from_completion(completion: Any, model: str) -> ModelResponse:
    """A non-streamed completion as the answer."""
    choice = completion.choices[0] if completion.choices else None
    message = choice.message if choice is not None else None
    calls = [
        (call.id, call.function.name, call.function.arguments or "")
        for call in (getattr(message, "tool_calls", None) or [])
        if getattr(call, "function", None) is not None
    ]
    finish = (choice.finish_reason if choice is not None else "") or ""
    return ModelResponse(
        message=_message(getattr(message, "content", None) or "", calls),
        usage=_usage(getattr(completion, "usage", None)),
        stop_reason=_STOP_REASONS.get(finish, finish),
        model=getattr(completion, "model", None) or model,
    )
