"""Step 1 of a turn's commit: the change, applied to the runner's copy of the head.

Also the change's vocabulary: ``TurnUpdate`` (what a runtime or an engine
sends), ``SnapshotInput`` and ``TurnOutcome`` (what a commit gives back).

Every function here changes a *working copy* (``Head.working_copy()``) in
place and touches no storage: which files the change needs written, and the
compare-and-swap that publishes it, are ``turns.ActiveTurn``'s business.
Keeping the change pure makes each commit's effect on the head readable in
one place and testable without a store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sessiond.errors import InvalidArgument
from sessiond.server.domain.content import check_message
from sessiond.server.domain.limits import Limits
from sessiond.server.domain.records import (
    Agent,
    Event,
    Head,
    Review,
    Status,
    StoredMessage,
    Turn,
    TurnError,
    TurnStatus,
    Usage,
)


@dataclass(frozen=True)
class TurnUpdate:
    """A batch of changes from a runtime or an engine."""

    messages: tuple[dict[str, Any], ...] = ()
    state: dict[str, Any] | None = None
    events: tuple[Event, ...] = ()
    usage: Usage | None = None
    #: (index, redacted message) pairs for earlier messages of the agent.
    redactions: tuple[tuple[int, dict[str, Any]], ...] = ()
    #: Strands' conversation manager state and internal state (agent.json).
    conversation_manager_state: dict[str, Any] | None = None
    internal_state: dict[str, Any] | None = None


@dataclass(frozen=True)
class SnapshotInput:
    """Runtime state saved at hibernation."""

    data: bytes
    content_type: str = ""


@dataclass
class TurnOutcome:
    """The result of a commit: the head and turn after it (shared: read-only)."""

    head: Head
    turn: Turn
    appended: list[StoredMessage] = field(default_factory=list)


#: The session status a turn's ending leaves.
END_STATUS = {
    TurnStatus.FINISHED: Status.FINISHED,
    TurnStatus.HIBERNATED: Status.HIBERNATED,
    TurnStatus.WAITING: Status.WAITING,
    TurnStatus.ERROR: Status.ERROR,
}

#: The timeline event a turn's ending records.
END_EVENT = {
    TurnStatus.FINISHED: "finished",
    TurnStatus.HIBERNATED: "hibernated",
    TurnStatus.WAITING: "hibernated",
    TurnStatus.ERROR: "failed",
}


def forget_turn_request(head: Head, turn_number: int) -> None:
    """Drops the request record of a turn that stored nothing.

    A retry with the same request id then runs the turn afresh instead of
    "replaying" a failure that acknowledged nothing.
    """
    head.requests = [
        r for r in head.requests if not (r.op == "turn" and r.turn_number == turn_number)
    ]


def append_messages(
    turn: Turn, agent: Agent, messages: list[dict[str, Any]], now: datetime
) -> list[StoredMessage]:
    """Gives ``messages`` the agent's next indices and records them in ``turn``."""
    appended = []
    for message in messages:
        record = StoredMessage(
            agent_id=agent.agent_id,
            index=agent.message_count,
            message=message,
            turn_id=turn.turn_id,
            created_at=now,
            updated_at=now,
        )
        agent.message_count += 1
        turn.messages.append(record)
        appended.append(record)
    if appended:
        turn.events.append(
            Event(
                time=now,
                type="messages.appended",
                data={"first": appended[0].index, "count": len(appended)},
            )
        )
    return appended


def update_agent(
    turn: Turn,
    agent: Agent,
    *,
    state: dict[str, Any] | None,
    conversation_manager_state: dict[str, Any] | None,
    internal_state: dict[str, Any] | None,
    now: datetime,
) -> bool:
    """Applies the agent's new state and Strands state; True when any of them changed."""
    changed = state is not None and state != agent.state
    if changed:
        agent.state = dict(state or {})
        turn.events.append(Event(time=now, type="state.changed"))
    for name, value in (
        ("conversation_manager_state", conversation_manager_state),
        ("internal_state", internal_state),
    ):
        if value is not None and value != getattr(agent, name):
            setattr(agent, name, dict(value))
            changed = True
    if changed:
        agent.updated_at = now
    return changed


def add_usage(head: Head, turn: Turn, usage: Usage | None) -> None:
    """Adds token usage to the turn and the session."""
    if usage is not None:
        turn.usage = turn.usage.plus(usage)
        head.usage = head.usage.plus(usage)


def request_reviews(turn: Turn, reviews: list[Review], now: datetime) -> None:
    """Records the reviews a hibernating turn waits for.

    The reviews of earlier rounds of the same turn stay, decisions and all:
    the timeline shows every round, and a retried decision still finds its
    review. A new review with an earlier one's id replaces it.
    """
    if not reviews:
        return
    new_ids = {review.review_id for review in reviews}
    turn.reviews = [r for r in turn.reviews if r.review_id not in new_ids] + reviews
    for review in reviews:
        turn.events.append(
            Event(
                time=now,
                type="review.requested",
                data={"review_id": review.review_id, "tool_name": review.tool_name},
            )
        )


def end_turn(
    head: Head,
    turn: Turn,
    end: TurnStatus,
    *,
    error: TurnError | None,
    data: dict[str, Any],
    now: datetime,
) -> None:
    """Ends the turn with ``end`` and releases the lease."""
    turn.status = end
    turn.ended_at = now
    turn.error = error
    turn.events.append(Event(time=now, type=END_EVENT[end], data=data))
    head.status = END_STATUS[end]
    head.lease = None


async def apply_redactions(
    head: Head,
    agent_id: str,
    redactions: tuple[tuple[int, dict[str, Any]], ...],
    *,
    limits: Limits,
    load_history: Callable[[], Awaitable[list[StoredMessage]]],
    now: datetime,
) -> list[StoredMessage]:
    """Records redactions in ``head``; returns the messages whose Strands files change.

    A message still in the head's tail is changed in place (in a copy of
    its turn: ended turns are shared with the committed head); one already
    in an immutable pack gets an entry in the agent's redaction overlay.

    Raises:
        InvalidArgument: A redaction names no stored message, or is not a
            valid message.
    """
    if not redactions:
        return []
    head.tail = [turn.model_copy(deep=True) for turn in head.tail]
    agent = head.agents[agent_id]
    in_tail = {m.index: m for t in head.tail for m in t.messages if m.agent_id == agent_id}
    older: dict[int, StoredMessage] = {}
    if any(index not in in_tail for index, _ in redactions):
        older = {m.index: m for m in await load_history()}
    changed: list[StoredMessage] = []
    for index, redacted in redactions:
        check_message(redacted, limits, field="update.redactions.message")
        record = in_tail.get(index) or older.get(index)
        if record is None:
            raise InvalidArgument(
                "a redaction names a message that does not exist",
                field="update.redactions.index",
                index=index,
            )
        if index in in_tail:
            record.redact_message = redacted
            record.updated_at = now
            stored = record
        else:
            agent.redactions[index] = redacted
            stored = record.model_copy(update={"redact_message": redacted, "updated_at": now})
        head.tail[-1].events.append(
            Event(time=now, type="messages.redacted", data={"index": index})
        )
        changed.append(stored)
    return changed


def take_adopted(
    head: Head, agent_id: str, messages: list[StoredMessage], agent_file: Any, now: datetime
) -> None:
    """Records messages a Strands writer appended (and its newest agent.json) in the open turn."""
    turn = head.tail[-1]
    agent = head.agents[agent_id]
    turn.messages.extend(messages)
    agent.message_count = messages[-1].index + 1
    if agent_file is not None:
        # What Strands last wrote to agent.json is the agent's newest state.
        agent.state = agent_file.state
        agent.conversation_manager_state = agent_file.conversation_manager_state
        agent.internal_state = agent_file.internal_state
    turn.events.append(
        Event(
            time=now,
            type="messages.adopted",
            data={"first": messages[0].index, "count": len(messages), "from": "strands"},
        )
    )
