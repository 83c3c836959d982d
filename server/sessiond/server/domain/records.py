"""The documents sessiond stores, as pydantic models (``extra="forbid"``).

A stored object that does not validate is corrupt: readers raise
``CorruptObject`` for that session only (see ``codec.decode``).

Messages are kept as plain JSON-compatible dicts in the exact shape of a
Strands ``message_<n>.json`` "message" object (bytes already encoded as
``{"__bytes_encoded__": true, "data": ...}``), so they round-trip untouched.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from sessiond.server.domain.request_memo import RequestMemo, shape_of

HEAD_FORMAT = 1


class Model(BaseModel):
    """Base of stored documents: unknown fields are corruption, not data."""

    model_config = ConfigDict(extra="forbid", validate_assignment=False)


class Status(StrEnum):
    """Session status (mirrors ``sessiond.v1.SessionStatus``)."""

    NEW = "NEW"
    RUNNING = "RUNNING"
    HIBERNATED = "HIBERNATED"
    WAITING = "WAITING"
    FINISHED = "FINISHED"
    ERROR = "ERROR"


class TurnStatus(StrEnum):
    """Turn status (mirrors ``sessiond.v1.TurnStatus``)."""

    RUNNING = "RUNNING"
    HIBERNATED = "HIBERNATED"
    WAITING = "WAITING"
    FINISHED = "FINISHED"
    ERROR = "ERROR"

    @property
    def is_open(self) -> bool:
        """True while the turn may still continue (running or suspended)."""
        # A set lookup: hot (every commit asks it of every turn in the tail),
        # and an enum's tuple membership test is 20 times slower.
        return self in _OPEN_TURN_STATUSES


_OPEN_TURN_STATUSES = frozenset({TurnStatus.RUNNING, TurnStatus.HIBERNATED, TurnStatus.WAITING})


class ReviewAction(StrEnum):
    """A reviewer's decision (mirrors ``sessiond.v1.ReviewAction``)."""

    APPROVE = "APPROVE"
    REJECT = "REJECT"
    EDIT = "EDIT"


class Usage(Model):
    """Token usage."""

    input_tokens: int = 0
    output_tokens: int = 0
    total_tokens: int = 0

    def plus(self, other: Usage) -> Usage:
        """Returns the sum of two usages."""
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class Lease(Model):
    """The single-runner claim recorded in the head."""

    holder: str
    run_id: str
    epoch: int
    expires_at: datetime


class Agent(Model):
    """One agent of a session; the source of its Strands ``agent.json``."""

    agent_id: str
    message_count: int = 0
    state: dict[str, Any] = Field(default_factory=dict)
    conversation_manager_state: dict[str, Any] = Field(
        default_factory=lambda: {
            "__name__": "SlidingWindowConversationManager",
            "removed_message_count": 0,
            "model_call_count": 0,
        }
    )
    internal_state: dict[str, Any] = Field(
        default_factory=lambda: {
            "interrupt_state": {"interrupts": {}, "context": {}, "activated": False},
            "model_state": {},
        }
    )
    created_at: datetime
    updated_at: datetime
    #: Redactions of messages already moved into (immutable) history packs,
    #: by index; applied when the history is read.
    redactions: dict[int, dict[str, Any]] = Field(default_factory=dict)

    def working_copy(self) -> Agent:
        """A copy to change for one commit (see ``Head.working_copy``).

        Commits replace the state documents, never change them in place, so
        they are shared; the redaction overlay is changed in place, so copied.
        """
        copied = self.model_copy()
        copied.redactions = dict(self.redactions)
        return copied


class StoredMessage(Model):
    """One message of an agent's history, with its position."""

    agent_id: str
    index: int
    message: dict[str, Any]
    redact_message: dict[str, Any] | None = None
    turn_id: str | None = None
    created_at: datetime
    updated_at: datetime


class Decision(Model):
    """A recorded review decision."""

    action: ReviewAction
    edited_input: Any = None
    reviewer: str = ""
    comment: str = ""
    decided_at: datetime


class Review(Model):
    """A review request on one tool call, and its outcome."""

    review_id: str
    turn_id: str
    tool_use_id: str = ""
    tool_name: str = ""
    input: Any = None
    description: str = ""
    fingerprint: str
    created_at: datetime
    expires_at: datetime | None = None
    default_action: ReviewAction | None = None
    decision: Decision | None = None

    def effective_decision(self, now: datetime) -> Decision | None:
        """The decision, or the default one once the request expired."""
        if self.decision is not None:
            return self.decision
        if self.expires_at is not None and now >= self.expires_at and self.default_action:
            return Decision(
                action=self.default_action, reviewer="sessiond:expired", decided_at=self.expires_at
            )
        return None

    def is_pending(self, now: datetime) -> bool:
        """True while the review waits for a human decision."""
        return self.effective_decision(now) is None


class Event(Model):
    """A timeline entry of a turn."""

    time: datetime
    type: str
    data: dict[str, Any] = Field(default_factory=dict)


class TurnError(Model):
    """Why a turn failed."""

    code: str
    message: str


class SnapshotRef(Model):
    """Where a hibernated turn's snapshot is stored."""

    key: str
    content_type: str = ""
    created_at: datetime
    size: int = 0


class Turn(Model):
    """One turn: stored in the head while recent, then in history packs."""

    turn_id: str
    number: int
    agent_id: str
    engine: str
    status: TurnStatus
    request_id: str | None = None
    run_id: str = ""
    started_at: datetime
    ended_at: datetime | None = None
    first_index: int
    messages: list[StoredMessage] = Field(default_factory=list)
    usage: Usage = Field(default_factory=Usage)
    events: list[Event] = Field(default_factory=list)
    reviews: list[Review] = Field(default_factory=list)
    error: TurnError | None = None
    resume_count: int = 0
    checkpoint: str = "NONE"
    snapshot: SnapshotRef | None = None

    def working_copy(self) -> Turn:
        """A copy of this (open) turn that one commit may change in place.

        Commits append to its lists and record review decisions in place, so
        those are new; the messages and events in them are shared (a
        redaction copies the whole tail first, see ``ActiveTurn``).
        """
        copied = self.model_copy()
        copied.messages = list(self.messages)
        copied.events = list(self.events)
        copied.reviews = [review.model_copy() for review in self.reviews]
        return copied


class PackRef(Model):
    """A history pack referenced by the head: turns ``[first_turn, last_turn]``."""

    key: str
    level: int
    first_turn: int
    last_turn: int
    message_count: int
    size: int


class Pack(Model):
    """An immutable history pack: a run of ended turns with their messages."""

    format: Literal[1] = 1
    session_id: str
    level: int
    turns: list[Turn]


class RequestRecord(Model):
    """A recently applied idempotency key."""

    request_id: str
    op: str
    turn_number: int | None = None
    review_id: str | None = None
    at: datetime


class Head(Model):
    """The head object: the single commit point of a session."""

    format: Literal[1] = HEAD_FORMAT
    session_id: str
    incarnation: str
    revision: int
    created_at: datetime
    updated_at: datetime
    status: Status
    archived: bool = False
    archived_at: datetime | None = None
    title: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    parent_session_id: str | None = None
    agent_id: str
    agents: dict[str, Agent]
    lease: Lease | None = None
    epoch: int = 0
    turn_count: int = 0
    usage: Usage = Field(default_factory=Usage)
    packs: list[PackRef] = Field(default_factory=list)
    tail: list[Turn] = Field(default_factory=list)
    requests: list[RequestRecord] = Field(default_factory=list)
    index_segment: int | None = None
    index_stamp: str | None = None
    inbox_stamp: str | None = None
    deleted: bool = False
    #: A random id of the write that produced this head, and those of the
    #: last few writes: a writer whose response was lost finds out from them
    #: whether its write applied.
    commit_id: str = ""
    recent_commits: list[str] = Field(default_factory=list)
    #: The ids and JSON of ``requests`` for the list it was made for (see
    #: ``request_memo``); never stored.
    _requests_memo: RequestMemo | None = PrivateAttr(default=None)

    @property
    def message_count(self) -> int:
        """Messages over all agents."""
        return sum(agent.message_count for agent in self.agents.values())

    @property
    def open_turn(self) -> Turn | None:
        """The last turn if it has not ended (running, hibernated or waiting)."""
        if self.tail and self.tail[-1].status.is_open:
            return self.tail[-1]
        return None

    def pending_reviews(self, now: datetime) -> list[Review]:
        """Reviews of the open turn that still wait for a decision."""
        turn = self.open_turn
        if turn is None or turn.status is not TurnStatus.WAITING:
            return []
        return [review for review in turn.reviews if review.is_pending(now)]

    def find_request(self, request_id: str | None, op: str) -> RequestRecord | None:
        """The record of an already applied request id for ``op``, if any.

        Every turn asks, and the answer is almost always no: the memo's set
        of ids answers that without reading the records.
        """
        if not request_id or request_id not in self.requests_memo().ids:
            return None
        for record in self.requests:
            if record.request_id == request_id and record.op == op:
                return record
        return None

    def remember_request(self, record: RequestRecord, *, keep: int) -> None:
        """Records an applied request id, keeping the most recent ``keep`` records."""
        memo = self.requests_memo()
        self.requests.append(record)
        del self.requests[:-keep]
        self._requests_memo = memo.appended(record, self.requests)

    def requests_memo(self) -> RequestMemo:
        """The ids and JSON of ``requests``, rebuilt when the list was changed elsewhere."""
        memo = self._requests_memo
        if memo is None or memo.shape != shape_of(self.requests):
            memo = RequestMemo.of(self.requests)
            self._requests_memo = memo
        return memo

    @property
    def etag(self) -> str:
        """The session's public etag: incarnation and revision."""
        return f"{self.incarnation}.{self.revision}"

    def working_copy(self) -> Head:
        """A copy of this head that one writer may change in place for its commit.

        Committed heads are shared (the per-replica cache hands out the very
        object it holds), so nobody changes one in place. A deep copy of a head
        with a full tail costs milliseconds; this copies only what commits
        change in place — the containers, the agents, the counters, the lease
        and the open turn — and shares the ended turns of the tail and the
        records in the lists, which are never changed in place (code that must
        change an ended turn, a redaction, replaces it with a copy first).
        """
        copied = self.model_copy()
        copied.labels = dict(self.labels)
        copied.metadata = dict(self.metadata)
        copied.agents = {aid: agent.working_copy() for aid, agent in self.agents.items()}
        copied.lease = self.lease.model_copy() if self.lease is not None else None
        copied.usage = self.usage.model_copy()
        copied.packs = list(self.packs)
        copied.tail = [turn.working_copy() if turn.status.is_open else turn for turn in self.tail]
        copied.requests = list(self.requests)
        memo = self._requests_memo
        if memo is not None and memo.shape == shape_of(self.requests):
            copied._requests_memo = memo.moved_to(copied.requests)
        else:
            copied._requests_memo = None
        copied.recent_commits = list(self.recent_commits)
        return copied


class IndexEntry(Model):
    """What the listing index knows about one session."""

    session_id: str
    title: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, str] = Field(default_factory=dict)
    status: Status
    archived: bool = False
    parent_session_id: str | None = None
    agent_id: str
    created_at: datetime
    updated_at: datetime
    message_count: int = 0
    turn_count: int = 0
    pending_review_count: int = 0
    usage: Usage = Field(default_factory=Usage)
    revision: int
    incarnation: str


class IndexSegment(Model):
    """A listing index segment: up to a fixed number of sessions, by creation order."""

    format: Literal[1] = 1
    number: int
    entries: dict[str, IndexEntry] = Field(default_factory=dict)


class InboxItem(Model):
    """A pending review as listed in the tenant's inbox."""

    session_id: str
    revision: int
    review: Review


class Inbox(Model):
    """The tenant's pending-review inbox, keyed ``<session_id>/<review_id>``."""

    format: Literal[1] = 1
    items: dict[str, InboxItem] = Field(default_factory=dict)


class Tombstone(Model):
    """Left behind by Delete so a retry with the same request id succeeds."""

    session_id: str
    deleted_at: datetime
    request_ids: list[str] = Field(default_factory=list)
