"""Conversation content between protobuf and the Converse / Strands JSON shape.

Shared by the server (stored messages) and clients (runtimes that hold
Converse dicts, like Strands). The JSON side is the dict Strands writes, with
bytes as ``{"__bytes_encoded__": true, "data": <base64>}``. A block becomes a
typed protobuf block only when that converts back to exactly the same JSON;
anything else goes in ``raw_json``, so every block round-trips.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from sessiond.errors import InvalidArgument, InvalidContent
from sessiond.v1 import content_pb2 as pb

_ROLE_TO_TEXT = {pb.ROLE_USER: "user", pb.ROLE_ASSISTANT: "assistant"}
_TEXT_TO_ROLE = {text: role for role, text in _ROLE_TO_TEXT.items()}


def _wrap(data: bytes) -> dict[str, Any]:
    return {"__bytes_encoded__": True, "data": base64.b64encode(data).decode()}


def _unwrap(value: Any) -> bytes | None:
    if (
        isinstance(value, dict)
        and set(value) == {"__bytes_encoded__", "data"}
        and value["__bytes_encoded__"] is True
        and isinstance(value["data"], str)
    ):
        try:
            return base64.b64decode(value["data"], validate=True)
        except (binascii.Error, ValueError):
            return None
    return None


def parse_json(text: str, *, field: str) -> Any:
    """Parses a JSON value, refusing NaN / Infinity (not portable JSON)."""

    def _refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidArgument(f"{field} is not valid JSON", field=field) from exc


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


# -- protobuf -> stored JSON ------------------------------------------------------


def block_to_dict(block: pb.ContentBlock, *, field: str) -> dict[str, Any]:
    """One content block as stored JSON; raises ``InvalidContent`` if malformed."""
    kind = block.WhichOneof("block")
    if kind == "text":
        return {"text": block.text}
    if kind == "image":
        return {
            "image": {"format": block.image.format, "source": {"bytes": _wrap(block.image.data)}}
        }
    if kind == "document":
        doc = block.document
        return {
            "document": {
                "format": doc.format,
                "name": doc.name,
                "source": {"bytes": _wrap(doc.data)},
            }
        }
    if kind == "tool_use":
        use = block.tool_use
        if not use.input_json:
            raise InvalidContent(f"{field}.tool_use.input_json is required", field=field)
        return {
            "toolUse": {
                "toolUseId": use.tool_use_id,
                "name": use.name,
                "input": parse_json(use.input_json, field=f"{field}.tool_use.input_json"),
            }
        }
    if kind == "tool_result":
        result = block.tool_result
        body: dict[str, Any] = {"toolUseId": result.tool_use_id}
        if result.status:
            body["status"] = result.status
        body["content"] = [
            block_to_dict(item, field=f"{field}.tool_result.content") for item in result.content
        ]
        return {"toolResult": body}
    if kind == "raw_json":
        value = parse_json(block.raw_json, field=f"{field}.raw_json")
        if not isinstance(value, dict) or len(value) != 1:
            raise InvalidContent(
                f"{field}.raw_json must be a JSON object with exactly one key", field=field
            )
        return value
    raise InvalidContent(f"{field} is an empty content block", field=field)


def message_to_dict(message: pb.Message, *, field: str = "message") -> dict[str, Any]:
    """A protobuf message as the stored Converse/Strands message dict."""
    role = _ROLE_TO_TEXT.get(message.role)
    if role is None:
        raise InvalidContent(f"{field}.role must be ROLE_USER or ROLE_ASSISTANT", field=field)
    stored: dict[str, Any] = {
        "role": role,
        "content": [
            block_to_dict(block, field=f"{field}.content[{i}]")
            for i, block in enumerate(message.content)
        ],
    }
    if message.metadata_json:
        metadata = parse_json(message.metadata_json, field=f"{field}.metadata_json")
        if not isinstance(metadata, dict):
            raise InvalidContent(f"{field}.metadata_json must be a JSON object", field=field)
        stored["metadata"] = metadata
    if message.extra_json:
        extra = parse_json(message.extra_json, field=f"{field}.extra_json")
        reserved = {"role", "content"} | ({"metadata"} if message.metadata_json else set())
        if not isinstance(extra, dict) or set(extra) & reserved:
            raise InvalidContent(
                f"{field}.extra_json must be a JSON object without role, content, metadata",
                field=field,
            )
        stored.update(extra)
    return stored


# -- stored JSON -> protobuf ------------------------------------------------------


def _typed_block(block: dict[str, Any]) -> pb.ContentBlock | None:
    ((kind, value),) = block.items()
    if kind == "text" and isinstance(value, str):
        return pb.ContentBlock(text=value)
    if not isinstance(value, dict):
        return None
    if kind == "image":
        data = _unwrap((value.get("source") or {}).get("bytes"))
        if data is not None and isinstance(value.get("format"), str):
            return pb.ContentBlock(image=pb.ImageBlock(format=value["format"], data=data))
    elif kind == "document":
        data = _unwrap((value.get("source") or {}).get("bytes"))
        if (
            data is not None
            and isinstance(value.get("format"), str)
            and isinstance(value.get("name"), str)
        ):
            return pb.ContentBlock(
                document=pb.DocumentBlock(format=value["format"], name=value["name"], data=data)
            )
    elif kind == "toolUse":
        if (
            isinstance(value.get("toolUseId"), str)
            and isinstance(value.get("name"), str)
            and "input" in value
        ):
            return pb.ContentBlock(
                tool_use=pb.ToolUseBlock(
                    tool_use_id=value["toolUseId"],
                    name=value["name"],
                    input_json=_dumps(value["input"]),
                )
            )
    elif kind == "toolResult":
        content = value.get("content")
        status = value.get("status", "")
        if (
            isinstance(value.get("toolUseId"), str)
            and isinstance(content, list)
            and isinstance(status, str)
        ):
            items = [
                block_from_dict(item)
                for item in content
                if isinstance(item, dict) and len(item) == 1
            ]
            if len(items) == len(content):
                return pb.ContentBlock(
                    tool_result=pb.ToolResultBlock(
                        tool_use_id=value["toolUseId"], status=status, content=items
                    )
                )
    return None


def block_from_dict(block: dict[str, Any]) -> pb.ContentBlock:
    """A stored block as protobuf: typed if that is exact, else ``raw_json``."""
    typed = _typed_block(block) if len(block) == 1 else None
    if typed is not None:
        try:
            if block_to_dict(typed, field="stored") == block:
                return typed
        except InvalidContent:
            pass
    return pb.ContentBlock(raw_json=_dumps(block))


def message_from_dict(stored: dict[str, Any]) -> pb.Message:
    """A stored message dict as protobuf, keeping unknown keys in ``extra_json``."""
    message = pb.Message(
        role=_TEXT_TO_ROLE.get(stored.get("role", ""), pb.ROLE_UNSPECIFIED),
        content=[
            block_from_dict(block) for block in stored.get("content", []) if isinstance(block, dict)
        ],
    )
    metadata = stored.get("metadata")
    extra = {k: v for k, v in stored.items() if k not in ("role", "content", "metadata")}
    if isinstance(metadata, dict):
        message.metadata_json = _dumps(metadata)
    elif "metadata" in stored:
        extra["metadata"] = metadata
    if extra:
        message.extra_json = _dumps(extra)
    return message
