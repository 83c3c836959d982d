"""The Strands Agents file shapes sessiond writes and reads.

Rules (measured against strands-agents 1.62, see docs/storage-layout.md):
``session.json`` must exist before agents and messages; ``agent.json`` carries
no sessiond fields (Strands rewrites it, dropping unknown keys); message files
may carry unknown top-level keys, so sessiond marks its own with ``"sessiond"``
to tell a fenced writer's leftovers from messages a Strands writer appended.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic_core import to_json

from sessiond.server.domain.records import Agent, StoredMessage

#: Top-level key of sessiond's marker in message files.
MARKER_KEY = "sessiond"


def _iso(moment: datetime) -> str:
    # Strands writes datetime.isoformat() of an aware UTC time: "...+00:00".
    return moment.isoformat()


def _dump(document: dict[str, Any]) -> bytes:
    # Strands writes indent=2, ensure_ascii=False; mirror it so files look
    # alike. pydantic-core's encoder writes the same layout ~10x faster (a
    # turn writes two of these); only float spelling may differ (0.00001 for
    # 1e-05), which any JSON reader parses to the same value.
    return to_json(document, indent=2)


def session_file(session_id: str, created_at: datetime, updated_at: datetime) -> bytes:
    """The body of ``session.json``."""
    return _dump(
        {
            "session_id": session_id,
            "session_type": "AGENT",
            "created_at": _iso(created_at),
            "updated_at": _iso(updated_at),
        }
    )


def agent_file(agent: Agent) -> bytes:
    """The body of ``agent.json``, exactly the fields Strands' SessionAgent has."""
    return _dump(
        {
            "agent_id": agent.agent_id,
            "state": agent.state,
            "conversation_manager_state": agent.conversation_manager_state,
            "_internal_state": agent.internal_state,
            "created_at": _iso(agent.created_at),
            "updated_at": _iso(agent.updated_at),
        }
    )


def message_file(record: StoredMessage, *, epoch: int, run_id: str) -> bytes:
    """The body of ``message_<n>.json``, marked as written by sessiond.

    ``message_id`` equals the index: Strands numbers the next message from the
    last file's ``message_id``.
    """
    return _dump(
        {
            "message": record.message,
            "message_id": record.index,
            "redact_message": record.redact_message,
            "created_at": _iso(record.created_at),
            "updated_at": _iso(record.updated_at),
            MARKER_KEY: {"turn_id": record.turn_id, "epoch": epoch, "run_id": run_id},
        }
    )


def parse_message_file(body: bytes) -> dict[str, Any] | None:
    """Parses a message file; None if it is not a JSON object with a message."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("message"), dict):
        return None
    return document


def marker_of(document: dict[str, Any]) -> dict[str, Any] | None:
    """sessiond's marker in a parsed message file, or None for a foreign (Strands) file."""
    marker = document.get(MARKER_KEY)
    return marker if isinstance(marker, dict) else None
