"""A readable Markdown transcript of a session, written into every bundle.

The transcript is for people: Import never reads it. It depends only on the
bundle's data (never on the current time), so it is as deterministic as the
rest of the bundle. Attachments appear as placeholders, tool calls and
results as short summaries, and a message's redacted form replaces it when
the session has one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from sessiond.server.domain.records import Head, Review, StoredMessage, Turn

#: Longest tool input / result text quoted before it is cut.
SUMMARY_CHARS = 500


def _cut(text: str, limit: int = SUMMARY_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(value: Any) -> str:
    return _cut(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _byte_count(source: Any) -> str:
    data = source.get("bytes") if isinstance(source, dict) else None
    if isinstance(data, dict) and isinstance(data.get("data"), str):
        encoded = data["data"]
        return f"{len(encoded) * 3 // 4 - encoded[-2:].count('=')} bytes"
    return "external source"


def _block(block: Any) -> str:
    """One content block as Markdown."""
    if not isinstance(block, dict) or len(block) != 1:
        return "_[unreadable block]_"
    ((kind, value),) = block.items()
    if kind == "text" and isinstance(value, str):
        return value
    if not isinstance(value, dict):
        return f"_[{kind}]_"
    if kind == "image":
        return f"_[image: {value.get('format', '?')}, {_byte_count(value.get('source'))}]_"
    if kind == "document":
        name, fmt = value.get("name", "?"), value.get("format", "?")
        return f"_[document: {name} ({fmt}, {_byte_count(value.get('source'))})]_"
    if kind == "toolUse":
        return (
            f"> **tool call** `{value.get('name', '?')}` (id `{value.get('toolUseId', '?')}`): "
            f"`{_one_line(value.get('input'))}`"
        )
    if kind == "toolResult":
        parts = []
        for item in value.get("content") or []:
            if isinstance(item, dict) and isinstance(item.get("text"), str):
                parts.append(item["text"])
            elif isinstance(item, dict) and "json" in item:
                parts.append(_one_line(item["json"]))
            elif isinstance(item, dict) and item:
                parts.append(f"[{next(iter(item))}]")
        status = value.get("status")
        suffix = f" ({status})" if status else ""
        summary = _cut(" ".join(parts).replace("\n", " "))
        return f"> **tool result** for `{value.get('toolUseId', '?')}`{suffix}: {summary}"
    return f"_[{kind} block]_"


def _message(record: StoredMessage) -> Iterator[str]:
    message = record.redact_message if record.redact_message is not None else record.message
    role = message.get("role", "?")
    note = " (redacted)" if record.redact_message is not None else ""
    yield f"**{role}** · message {record.agent_id}/{record.index}{note}\n\n"
    for block in message.get("content") or []:
        yield _block(block) + "\n\n"


def _review(review: Review) -> str:
    if review.decision is None:
        outcome = "no decision"
    else:
        who = f" by {review.decision.reviewer}" if review.decision.reviewer else ""
        outcome = f"{review.decision.action.value}{who}"
    return f"- review `{review.review_id}` of `{review.tool_name}`: {outcome}\n"


def _turn(turn: Turn) -> Iterator[str]:
    ended = f", ended {turn.ended_at.isoformat()}" if turn.ended_at else ""
    yield (
        f"## Turn {turn.number} · {turn.status.value}\n\n"
        f"Turn `{turn.turn_id}`, agent `{turn.agent_id}`, engine `{turn.engine}`, "
        f"started {turn.started_at.isoformat()}{ended}.\n\n"
    )
    for record in turn.messages:
        yield from _message(record)
    if turn.reviews:
        yield "Reviews:\n\n"
        yield from (_review(review) for review in turn.reviews)
        yield "\n"
    if turn.snapshot is not None:
        content_type = turn.snapshot.content_type or "no content type"
        yield f"_Snapshot: {turn.snapshot.size} bytes ({content_type})._\n\n"
    if turn.error is not None:
        yield f"_Error {turn.error.code}: {turn.error.message}_\n\n"


def render(head: Head, turns: Sequence[Turn]) -> Iterator[str]:
    """Yields the transcript of a session in pieces (a long history is never one string)."""
    title = head.title or head.session_id
    archived = " (archived)" if head.archived else ""
    agents = ", ".join(f"`{a.agent_id}` ({a.message_count} messages)" for a in head.agents.values())
    yield (
        f"# {title}\n\n"
        f"- Session: `{head.session_id}`\n"
        f"- Status: {head.status.value}{archived}\n"
        f"- Created: {head.created_at.isoformat()}\n"
        f"- Updated: {head.updated_at.isoformat()}\n"
        f"- Agents: {agents}\n"
        f"- Turns: {head.turn_count}\n\n"
    )
    for turn in turns:
        yield from _turn(turn)
