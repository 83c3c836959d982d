"""Output of the command line: stable JSON shapes, tables and readable values.

JSON mapping of the contract's messages (documented in docs/cli.md):

- every field is present, under its proto name (``session_id``), with its
  default when unset — except the fields of a ``oneof`` (a content block's
  ``text`` / ``tool_use`` ...), of which only the one set appears;
- integers (including 64-bit ones) are JSON numbers;
- enums are their value name without the type prefix (``"FINISHED"``, not
  ``"SESSION_STATUS_FINISHED"``);
- timestamps are RFC 3339 strings in UTC (``"2025-01-02T03:04:05.678Z"``),
  ``null`` when unset; any other message field that is unset is ``null``;
- bytes are base64 strings; maps are objects; repeated fields are arrays;
- fields ending in ``_json`` are kept as the JSON text they hold.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any, TextIO

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from sessiond.client.messages import message_text
from sessiond.v1 import content_pb2, session_pb2

_TIMESTAMP = Timestamp.DESCRIPTOR.full_name


def _enum_prefix(enum: EnumDescriptor) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"


def _value(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return to_json(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        enum = field.enum_type
        named = enum.values_by_number.get(value)
        return named.name.removeprefix(_enum_prefix(enum)) if named else value
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value


def to_json(message: Message) -> Any:
    """The stable JSON value of a message (see the module docstring)."""
    descriptor: Descriptor = message.DESCRIPTOR
    if descriptor.full_name == _TIMESTAMP:
        return message.ToJsonString()  # type: ignore[attr-defined]
    result: dict[str, Any] = {}
    for field in descriptor.fields:
        oneof = field.containing_oneof
        if oneof is not None and message.WhichOneof(oneof.name) != field.name:
            continue
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            result[field.name] = {k: _value(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            result[field.name] = [_value(field, item) for item in value]
        elif field.type == FieldDescriptor.TYPE_MESSAGE and not message.HasField(field.name):
            result[field.name] = None
        else:
            result[field.name] = _value(field, value)
    return result


def dump(value: Any, stream: TextIO | None = None) -> None:
    """Prints one JSON document (indented, keys in field order)."""
    stream = stream or sys.stdout
    stream.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


# -- readable values -------------------------------------------------------------------


def when(stamp: Timestamp) -> str:
    """A timestamp in local time, ``YYYY-MM-DD HH:MM:SS``; ``-`` when unset."""
    if not stamp.seconds and not stamp.nanos:
        return "-"
    return stamp.ToDatetime().astimezone().strftime("%Y-%m-%d %H:%M:%S")


def status_name(session: session_pb2.Session) -> str:
    """The session's status, e.g. ``FINISHED`` or ``WAITING (archived)``."""
    name = str(session_pb2.SessionStatus.Name(session.status)).removeprefix("SESSION_STATUS_")
    return f"{name} (archived)" if session.archived else name


def enum_name(value: int, enum: Any, prefix: str) -> str:
    """The short name of an enum value (``FINISHED``)."""
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:
        return str(value)


def size(count: int) -> str:
    """A byte count, e.g. ``1.5 MiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def shorten(text: str, width: int = 60) -> str:
    """One line of at most ``width`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def message_line(message: content_pb2.Message) -> str:
    """A readable one-message summary: its text, and a note per non-text block."""
    parts: list[str] = []
    if text := message_text(message):
        parts.append(text)
    for block in message.content:
        kind = block.WhichOneof("block")
        if kind == "tool_use":
            parts.append(f"[tool call {block.tool_use.name} {block.tool_use.input_json}]")
        elif kind == "tool_result":
            result = message_text(content_pb2.Message(content=block.tool_result.content))
            parts.append(f"[tool result {block.tool_result.status or 'done'}: {result}]")
        elif kind in ("image", "document", "raw_json"):
            parts.append(f"[{kind}]")
    return " ".join(parts)


def role_name(message: content_pb2.Message) -> str:
    """``user`` or ``assistant``."""
    return "user" if message.role == content_pb2.ROLE_USER else "assistant"


def table(
    headers: Sequence[str], rows: Iterable[Sequence[Any]], stream: TextIO | None = None
) -> None:
    """Prints aligned columns (the last one unpadded)."""
    stream = stream or sys.stdout
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        padded = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        stream.write("  ".join([*padded, row[-1]]).rstrip() + "\n")


def fields(pairs: Iterable[tuple[str, Any]], stream: TextIO | None = None) -> None:
    """Prints ``key  value`` lines with aligned values."""
    stream = stream or sys.stdout
    items = [(key, str(value)) for key, value in pairs]
    width = max((len(key) for key, _ in items), default=0)
    for key, value in items:
        stream.write(f"{key.ljust(width)}  {value}\n")


def session_fields(session: session_pb2.Session) -> list[tuple[str, Any]]:
    """The lines of a session's description (``show``, chat's ``/status``)."""
    labels = ", ".join(f"{k}={v}" for k, v in sorted(session.labels.items())) or "-"
    pairs: list[tuple[str, Any]] = [
        ("session", session.session_id),
        ("title", session.title or "-"),
        ("status", status_name(session)),
        ("messages", session.message_count),
        ("turns", session.turn_count),
        ("reviews", f"{session.pending_review_count} pending"),
        ("created", when(session.create_time)),
        ("last activity", when(session.update_time)),
        ("agent", session.agent_id),
        ("parent", session.parent_session_id or "-"),
        ("labels", labels),
    ]
    if session.HasField("lease") and session.lease.holder:
        pairs.append(("lease", f"{session.lease.holder} until {when(session.lease.expire_time)}"))
    return pairs
