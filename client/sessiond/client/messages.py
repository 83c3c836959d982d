"""Small helpers for the contract's messages: text messages, events, enum names."""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.internal.enum_type_wrapper import EnumTypeWrapper

from sessiond.v1 import content_pb2, session_pb2, session_service_pb2, turn_pb2

#: A status, review action, ... given as its number, its full name
#: (``"SESSION_STATUS_FINISHED"``) or its short name (``"finished"``).
EnumLike = int | str


def text_message(role: str, text: str) -> content_pb2.Message:
    """A message with one text block.

    Args:
        role: ``"user"`` or ``"assistant"``.
        text: The text.

    Raises:
        ValueError: ``role`` is neither.
    """
    if role not in ("user", "assistant"):
        raise ValueError(f"role must be 'user' or 'assistant', not {role!r}")
    return content_pb2.Message(
        role=content_pb2.ROLE_USER if role == "user" else content_pb2.ROLE_ASSISTANT,
        content=[content_pb2.ContentBlock(text=text)],
    )


def message_text(message: content_pb2.Message | content_pb2.SessionMessage) -> str:
    """The text of a message: its text blocks joined by newlines."""
    if isinstance(message, content_pb2.SessionMessage):
        message = message.message
    return "\n".join(block.text for block in message.content if block.WhichOneof("block") == "text")


def event(type: str, data: Any = None) -> turn_pb2.TurnEvent:
    """A runtime event for a turn's timeline.

    Args:
        type: The event type, e.g. ``"tool.called"`` (not starting with
            ``turn.``, ``messages.``, ``state.``, ``review.`` or ``sessiond.``).
        data: Anything JSON-serialisable; stored as ``data_json``.
    """
    return turn_pb2.TurnEvent(type=type, data_json="" if data is None else json.dumps(data))


def enum_value(enum: EnumTypeWrapper, prefix: str, value: EnumLike) -> int:
    """The number of an enum value given by number, full name or short name.

    Args:
        enum: The generated enum, e.g. ``session_pb2.SessionStatus``.
        prefix: The prefix of its value names, e.g. ``"SESSION_STATUS_"``.
        value: ``3``, ``"SESSION_STATUS_HIBERNATED"`` or ``"hibernated"``.

    Raises:
        ValueError: No such value.
    """
    if isinstance(value, int):
        return value
    name = value.strip().upper().replace("-", "_")
    for candidate in (name, prefix + name):
        try:
            return int(enum.Value(candidate))
        except ValueError:
            continue
    choices = ", ".join(short_name(enum, prefix, v) for v in enum.values() if v)
    raise ValueError(f"unknown value {value!r}; one of: {choices}")


def short_name(enum: EnumTypeWrapper, prefix: str, value: int) -> str:
    """The name of an enum value without its prefix (``FINISHED``); the number if unknown."""
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:
        return str(value)


def session_status(value: EnumLike) -> int:
    """A ``SessionStatus`` from a number or a name such as ``"waiting"``."""
    return enum_value(session_pb2.SessionStatus, "SESSION_STATUS_", value)


def review_action(value: EnumLike) -> int:
    """A ``ReviewAction`` from a number or a name such as ``"approve"``."""
    return enum_value(turn_pb2.ReviewAction, "REVIEW_ACTION_", value)


def checkpoint_policy(value: EnumLike) -> int:
    """A ``CheckpointPolicy`` from a number or a name such as ``"after_prompt"``."""
    return enum_value(turn_pb2.CheckpointPolicy, "CHECKPOINT_POLICY_", value)


def archived_filter(value: EnumLike | bool | None) -> int:
    """An ``ArchivedFilter``: a number, ``"exclude"`` / ``"include"`` / ``"only"``.

    ``True`` means ``include`` and ``False`` / ``None`` mean the default (exclude).
    """
    if value is None or value is False:
        return session_service_pb2.ARCHIVED_FILTER_UNSPECIFIED
    if value is True:
        return session_service_pb2.ARCHIVED_FILTER_INCLUDE
    return enum_value(session_service_pb2.ArchivedFilter, "ARCHIVED_FILTER_", value)


def conflict_policy(value: EnumLike) -> int:
    """An ``ImportConflictPolicy`` from a number, ``"fail"`` or ``"skip"``."""
    return enum_value(session_service_pb2.ImportConflictPolicy, "IMPORT_CONFLICT_POLICY_", value)
