"""Stored records ↔ bundle lines (``sessions.json`` entries and the ``.jsonl`` files).

Lines are built from the record models' own JSON dumps, so a field added to
``Head``, ``Turn``, ``StoredMessage`` or ``Review`` travels in bundles without
changes here; parsing validates them back through the same models
(``extra="forbid"``), so anything unexpected is ``BundleInvalid``.
"""

from __future__ import annotations

import posixpath
from datetime import datetime
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from sessiond.errors import BundleInvalid, SessiondError
from sessiond.server.domain.bundle.format import dumps
from sessiond.server.domain.content import check_message
from sessiond.server.domain.limits import Limits
from sessiond.server.domain.records import (
    Agent,
    Head,
    Review,
    SnapshotRef,
    StoredMessage,
    Turn,
)
from sessiond.server.domain.validation import (
    ID_PATTERN,
    check_labels,
    check_metadata,
    check_title,
)

#: Head fields that are transient or rebuilt by Import, never exported.
TRANSIENT_HEAD_FIELDS = frozenset(
    {
        "format",
        "incarnation",
        "revision",
        "lease",
        "epoch",
        "packs",
        "tail",
        "requests",
        "index_segment",
        "index_stamp",
        "inbox_stamp",
        "deleted",
        "commit_id",
        "recent_commits",
    }
)
#: Head fields a ``sessions.json`` entry carries (in the model's order).
SESSION_FIELDS = tuple(name for name in Head.model_fields if name not in TRANSIENT_HEAD_FIELDS)
_DATETIME: TypeAdapter[datetime] = TypeAdapter(datetime)


def _dump(model: BaseModel, *, exclude: set[str] | None = None) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude=exclude)


def _validate(cls: type[BaseModel], data: dict[str, Any], what: str) -> Any:
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise BundleInvalid(f"a record of {what} does not validate", file=what) from exc


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BundleInvalid(f"a line of {what} is not a JSON object", file=what)
    return value


def _session_of(value: dict[str, Any], what: str) -> str:
    sid = value.pop("session_id", None)
    if not isinstance(sid, str) or not ID_PATTERN.fullmatch(sid):
        raise BundleInvalid(f"a line of {what} has an invalid session_id", file=what)
    return sid


def _check_id(value: str, field: str, what: str) -> None:
    if not ID_PATTERN.fullmatch(value):
        raise BundleInvalid(f"{what} holds an invalid {field}", file=what, field=field)


# -- sessions -----------------------------------------------------------------


def session_line(head: Head) -> str:
    """A session's entry of ``sessions.json`` (agents as a list, in the head's order)."""
    data = _dump(head, exclude=set(TRANSIENT_HEAD_FIELDS))
    data["agents"] = [_dump(agent) for agent in head.agents.values()]
    return dumps(data)


def parse_session(value: Any, what: str = "sessions.json") -> Head:
    """A ``sessions.json`` entry as a head with placeholder transient fields."""
    data = dict(_object(value, what))
    unknown = set(data) - set(SESSION_FIELDS)
    if unknown:
        raise BundleInvalid("a session has fields a bundle must not carry", file=what)
    agents = data.get("agents")
    if not isinstance(agents, list) or not agents:
        raise BundleInvalid("a session has no agents", file=what)
    parsed = [_validate(Agent, _object(agent, what), what) for agent in agents]
    data["agents"] = {agent.agent_id: agent for agent in parsed}
    if len(data["agents"]) != len(parsed):
        raise BundleInvalid("a session lists an agent twice", file=what)
    head: Head = _validate(Head, {**data, "incarnation": "-", "revision": 1}, what)
    for agent_id in [head.session_id, head.agent_id, *head.agents]:
        _check_id(agent_id, "id", what)
    if head.agent_id not in head.agents:
        raise BundleInvalid("a session's agent_id names none of its agents", file=what)
    if head.parent_session_id is not None:
        _check_id(head.parent_session_id, "parent_session_id", what)
    try:
        check_labels(head.labels)
        check_metadata(head.metadata)
        check_title(head.title)
    except SessiondError as exc:
        raise BundleInvalid("a session's title, labels or metadata are invalid", file=what) from exc
    return head


# -- messages -----------------------------------------------------------------

#: Limits that check a message's shape only.
_SHAPE_ONLY = Limits(max_blocks_per_message=2**31, max_message_bytes=2**62)


def message_line(session_id: str, message: StoredMessage) -> str:
    """A line of ``messages.jsonl``."""
    return dumps({"session_id": session_id, **_dump(message)})


def parse_message(value: Any, what: str = "messages.jsonl") -> tuple[str, StoredMessage]:
    """A ``messages.jsonl`` line as (session id, message)."""
    data = dict(_object(value, what))
    sid = _session_of(data, what)
    message: StoredMessage = _validate(StoredMessage, data, what)
    _check_id(message.agent_id, "agent_id", what)
    if message.index < 0:
        raise BundleInvalid("a message has a negative index", file=what)
    # The same shape rules as Run and Chat: an import must not store a
    # message sessiond would have refused (and then served altered). Sizes
    # are not limited here: the bundle may come from a server with other limits.
    for body, field in ((message.message, "message"), (message.redact_message, "redact_message")):
        if body is not None:
            try:
                check_message(body, _SHAPE_ONLY, field=field)
            except SessiondError as error:
                raise BundleInvalid(
                    f"a message is not a valid Converse message: {error}",
                    file=what,
                    session_id=sid,
                    index=message.index,
                ) from None
    return sid, message


# -- turns ----------------------------------------------------------------------


def snapshot_name(turn: Turn) -> str:
    """The file name a turn's snapshot gets in the bundle (its key's last segment)."""
    assert turn.snapshot is not None
    name = posixpath.basename(turn.snapshot.key)
    return name if ID_PATTERN.fullmatch(name) else f"{turn.turn_id}.bin"


def turn_line(session_id: str, turn: Turn) -> str:
    """A line of ``turns.jsonl``: the turn without messages and reviews.

    ``message_refs`` (``[agent_id, index]`` pairs, in the turn's order) and
    ``review_ids`` say which lines of ``messages.jsonl`` and ``reviews.jsonl``
    belong to the turn. Pairs rather than indices: a turn can hold messages
    of another agent (those a Strands writer appended, adopted into the turn
    that found them). The snapshot is named by its file under
    ``snapshots/<session_id>/``, not by its storage key (which holds the tenant).
    """
    data = {"session_id": session_id, **_dump(turn, exclude={"messages", "reviews"})}
    if turn.snapshot is not None:
        snapshot = _dump(turn.snapshot, exclude={"key"})
        data["snapshot"] = {"name": snapshot_name(turn), **snapshot}
    data["message_refs"] = [[message.agent_id, message.index] for message in turn.messages]
    data["review_ids"] = [review.review_id for review in turn.reviews]
    return dumps(data)


class TurnLine:
    """A parsed ``turns.jsonl`` line.

    Attributes:
        session_id: The session.
        turn: The turn, without messages and reviews, its snapshot key unset.
        message_refs: ``(agent_id, index)`` of the turn's messages, in order.
        review_ids: Ids of the turn's reviews, in order.
        snapshot_name: The snapshot's file name, if the turn has one.
    """

    def __init__(
        self,
        session_id: str,
        turn: Turn,
        message_refs: list[tuple[str, int]],
        review_ids: list[str],
        snapshot_name: str | None,
    ) -> None:
        self.session_id = session_id
        self.turn = turn
        self.message_refs = message_refs
        self.review_ids = review_ids
        self.snapshot_name = snapshot_name


def _refs(value: Any, what: str) -> list[tuple[str, int]]:
    refs: list[tuple[str, int]] = []
    for item in value if isinstance(value, list) else [None]:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not ID_PATTERN.fullmatch(item[0])
            or not isinstance(item[1], int)
            or isinstance(item[1], bool)
            or item[1] < 0
        ):
            raise BundleInvalid("a turn's message_refs are malformed", file=what)
        refs.append((item[0], item[1]))
    return refs


def parse_turn(value: Any, what: str = "turns.jsonl") -> TurnLine:
    """A ``turns.jsonl`` line."""
    data = dict(_object(value, what))
    sid = _session_of(data, what)
    refs = _refs(data.pop("message_refs", None), what)
    review_ids = data.pop("review_ids", None)
    if not isinstance(review_ids, list) or not all(isinstance(r, str) for r in review_ids):
        raise BundleInvalid("a turn's review_ids are malformed", file=what)
    for review_id in review_ids:
        _check_id(review_id, "review_id", what)
    name = None
    snapshot = data.get("snapshot")
    if snapshot is not None:
        snapshot = dict(_object(snapshot, what))
        name = snapshot.pop("name", None)
        if not isinstance(name, str) or not ID_PATTERN.fullmatch(name):
            raise BundleInvalid("a turn's snapshot name is invalid", file=what)
        # A placeholder key until Import knows the tenant's key for it.
        data["snapshot"] = {"key": "-", **snapshot}
    if "messages" in data or "reviews" in data:
        raise BundleInvalid("a turn line must not carry messages or reviews", file=what)
    turn: Turn = _validate(Turn, data, what)
    for ident, field in ((turn.turn_id, "turn_id"), (turn.agent_id, "agent_id")):
        _check_id(ident, field, what)
    if turn.number < 1:
        raise BundleInvalid("a turn number must be positive", file=what)
    return TurnLine(sid, turn, refs, review_ids, name)


def restored_snapshot(ref: SnapshotRef, key: str) -> SnapshotRef:
    """A snapshot reference pointing at its new storage key."""
    return ref.model_copy(update={"key": key})


# -- reviews --------------------------------------------------------------------


def review_line(session_id: str, review: Review) -> str:
    """A line of ``reviews.jsonl``."""
    return dumps({"session_id": session_id, **_dump(review)})


def parse_review(value: Any, what: str = "reviews.jsonl") -> tuple[str, Review]:
    """A ``reviews.jsonl`` line as (session id, review)."""
    data = dict(_object(value, what))
    sid = _session_of(data, what)
    review: Review = _validate(Review, data, what)
    for ident, field in ((review.review_id, "review_id"), (review.turn_id, "turn_id")):
        _check_id(ident, field, what)
    return sid, review


def iso(moment: datetime) -> str:
    """A datetime as the bundle writes it (pydantic's JSON form, like every record)."""
    return _DATETIME.dump_python(moment, mode="json")
