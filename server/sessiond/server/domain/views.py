"""Read-only views the domain hands to the API layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sessiond.server.domain.records import Head, IndexEntry, Lease, Status, Usage


@dataclass(frozen=True)
class AgentView:
    """One agent of a session."""

    agent_id: str
    message_count: int
    state: dict[str, Any]
    conversation_manager_state: dict[str, Any] = field(default_factory=dict)
    internal_state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SessionView:
    """A session as returned by Get, List and every mutation."""

    session_id: str
    agent_id: str
    title: str
    labels: dict[str, str]
    metadata: dict[str, str]
    status: Status
    archived: bool
    parent_session_id: str | None
    message_count: int
    turn_count: int
    usage: Usage
    created_at: datetime
    updated_at: datetime
    etag: str
    lease: Lease | None
    pending_review_count: int
    agents: list[AgentView] = field(default_factory=list)


def view_of_head(head: Head, now: datetime) -> SessionView:
    """The full view of a session from its head."""
    live_lease = head.lease if head.lease and head.lease.expires_at > now else None
    return SessionView(
        session_id=head.session_id,
        agent_id=head.agent_id,
        title=head.title,
        labels=dict(head.labels),
        metadata=dict(head.metadata),
        status=head.status,
        archived=head.archived,
        parent_session_id=head.parent_session_id,
        message_count=head.message_count,
        turn_count=head.turn_count,
        usage=head.usage.model_copy(),
        created_at=head.created_at,
        updated_at=head.updated_at,
        etag=head.etag,
        lease=live_lease.model_copy() if live_lease else None,
        pending_review_count=len(head.pending_reviews(now)),
        agents=[
            AgentView(
                agent.agent_id,
                agent.message_count,
                dict(agent.state),
                dict(agent.conversation_manager_state),
                dict(agent.internal_state),
            )
            for agent in head.agents.values()
        ],
    )


def view_of_entry(entry: IndexEntry) -> SessionView:
    """The listing view of a session from its index entry (no lease, no agents)."""
    return SessionView(
        session_id=entry.session_id,
        agent_id=entry.agent_id,
        title=entry.title,
        labels=dict(entry.labels),
        metadata=dict(entry.metadata),
        status=entry.status,
        archived=entry.archived,
        parent_session_id=entry.parent_session_id,
        message_count=entry.message_count,
        turn_count=entry.turn_count,
        usage=entry.usage.model_copy(),
        created_at=entry.created_at,
        updated_at=entry.updated_at,
        etag=f"{entry.incarnation}.{entry.revision}",
        lease=None,
        pending_review_count=entry.pending_review_count,
    )
