"""Checks a bundle's contents and plans the import (blocking; run in a thread).

One streaming pass over ``sessions.json`` and the three ``.jsonl`` files,
which are all sorted by session, walks them in step: every line must parse
and validate, every id must be valid, counts must match the manifest, messages must
stay below their agents' counts, every message must belong to exactly one
turn, reviews and snapshots must be where their turns say. Only one
session's message keys are held at a time: the plan records where each
session's lines are (byte ranges), so the import reads one session at a time.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TextIO, TypeVar

from sessiond.errors import BundleInvalid
from sessiond.server.domain.bundle import lines
from sessiond.server.domain.bundle.format import (
    MESSAGES,
    REVIEWS,
    SESSIONS,
    TURNS,
    Manifest,
    classify,
    loads,
    snapshot_path,
)
from sessiond.server.domain.bundle.spool import Spool
from sessiond.server.domain.records import Head, Review, StoredMessage

T = TypeVar("T")


@dataclass
class SessionPlan:
    """What the import needs to restore one session.

    Attributes:
        head: The session as ``sessions.json`` has it (placeholder transient fields).
        messages: Byte range ``[start, end)`` of its lines in ``messages.jsonl``.
        turns: Byte range of its lines in ``turns.jsonl``.
        reviews: Byte range of its lines in ``reviews.jsonl``.
        strands: Bundle paths of its Strands files.
        message_count: Its messages.
    """

    head: Head
    messages: tuple[int, int] = (0, 0)
    turns: tuple[int, int] = (0, 0)
    reviews: tuple[int, int] = (0, 0)
    strands: list[str] = field(default_factory=list)
    message_count: int = 0

    @property
    def session_id(self) -> str:
        """The session."""
        return self.head.session_id


class _Lines(Generic[T]):
    """A ``.jsonl`` file read line by line, with one parsed line of look-ahead.

    Attributes:
        next: The look-ahead line as (session id, item), None at the end.
        count: Lines parsed so far.
        span: Byte range of the lines the last :meth:`take` yielded.
    """

    def __init__(self, spool: Spool, name: str, parse: Callable[[Any], tuple[str, T]]) -> None:
        self._name = name
        self._parse = parse
        self._file = open(spool.path(name), "rb")  # closed by close()
        self._start = 0
        self._offset = 0
        self.next: tuple[str, T] | None = None
        self.count = 0
        self.span = (0, 0)
        try:
            self._advance()
        except BaseException:
            self._file.close()
            raise

    def _advance(self) -> None:
        self._start = self._offset
        raw = self._file.readline()
        if not raw:
            self.next = None
            return
        self._offset += len(raw)
        if not raw.endswith(b"\n") or raw == b"\n":
            raise BundleInvalid(f"{self._name} has an empty or unterminated line", file=self._name)
        try:
            text = raw.decode()
        except UnicodeDecodeError as exc:
            raise BundleInvalid(f"{self._name} is not UTF-8", file=self._name) from exc
        self.next = self._parse(loads(text, what=self._name))
        self.count += 1

    def take(self, session_id: str) -> Iterator[T]:
        """Yields the lines of ``session_id`` that come next, then sets ``span``.

        Raises:
            BundleInvalid: The next line belongs to a session that sorts
                before ``session_id``: out of order, or of no bundled session.
        """
        if self.next is not None and self.next[0] < session_id:
            raise BundleInvalid(
                f"{self._name} is not sorted by session or names a session not in the bundle",
                file=self._name,
            )
        start = self._start
        while self.next is not None and self.next[0] == session_id:
            item = self.next[1]
            self._advance()
            yield item
        self.span = (start, self._start)

    def close(self) -> None:
        """Closes the file."""
        self._file.close()


class _ArrayReader:
    """Reads the elements of a JSON array one at a time (``sessions.json``)."""

    def __init__(self, file: TextIO) -> None:
        self._file = file
        self._buffer = ""
        self._pos = 0
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        try:
            chunk = self._file.read(READ_CHARS)
        except UnicodeDecodeError as exc:
            raise BundleInvalid("sessions.json is not UTF-8", file=SESSIONS) from exc
        if not chunk:
            self._eof = True
            return False
        self._buffer = self._buffer[self._pos :] + chunk
        self._pos = 0
        return True

    def peek(self) -> str:
        """The next non-blank character ("" at the end)."""
        while True:
            while self._pos < len(self._buffer) and self._buffer[self._pos] in " \t\r\n":
                self._pos += 1
            if self._pos < len(self._buffer):
                return self._buffer[self._pos]
            if not self._fill():
                return ""

    def expect(self, char: str) -> None:
        """Consumes ``char`` or raises."""
        if self.peek() != char:
            raise BundleInvalid("sessions.json is not a JSON array", file=SESSIONS)
        self._pos += 1

    def value(self) -> Any:
        """Decodes the next JSON value, reading more text until it is complete."""
        self.peek()  # raw_decode does not skip leading blanks
        while True:
            try:
                value, end = _DECODER.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as exc:
                if self._fill():
                    continue
                raise BundleInvalid("sessions.json is not valid JSON", file=SESSIONS) from exc
            except (ValueError, RecursionError) as exc:
                raise BundleInvalid("sessions.json is not valid JSON", file=SESSIONS) from exc
            self._pos = end
            return value


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse)
READ_CHARS = 1024 * 1024


def _session_entries(spool: Spool) -> Iterator[Any]:
    """The elements of ``sessions.json``, one at a time."""
    with open(spool.path(SESSIONS), encoding="utf-8") as file:
        reader = _ArrayReader(file)
        reader.expect("[")
        if reader.peek() == "]":
            reader.expect("]")
        else:
            while True:
                yield reader.value()
                if reader.peek() == ",":
                    reader.expect(",")
                    continue
                reader.expect("]")
                break
        if reader.peek():
            raise BundleInvalid("sessions.json has data after its array", file=SESSIONS)


# -- the checks -------------------------------------------------------------------


def _invalid(message: str, session_id: str, **metadata: object) -> BundleInvalid:
    return BundleInvalid(message, session_id=session_id, **metadata)


def _check_messages(head: Head, messages: Iterator[StoredMessage]) -> set[tuple[str, int]]:
    """Messages come by agent and index, below their agent's ``message_count``.

    Indices may have gaps (sessions adopted from Strands keep its numbering),
    so the count of an agent's messages can be below its ``message_count``.
    Returns the ``(agent_id, index)`` of every message.
    """
    sid = head.session_id
    found: set[tuple[str, int]] = set()
    last: tuple[str, int] | None = None
    for message in messages:
        agent = head.agents.get(message.agent_id)
        if agent is None:
            raise _invalid("a message names an agent the session lacks", sid)
        key = (message.agent_id, message.index)
        if last is not None and key <= last:
            raise _invalid("messages are not sorted by agent and index", sid)
        if message.index >= agent.message_count:
            raise _invalid("a message index is beyond its agent's message_count", sid)
        found.add(key)
        last = key
    return found


def _check_turns(
    head: Head,
    turns: list[lines.TurnLine],
    reviews: list[Review],
    messages: set[tuple[str, int]],
    files: set[str],
) -> None:
    """Turns are in order, own every message once, and find their reviews and snapshots."""
    sid = head.session_id
    used: set[tuple[str, int]] = set()
    turn_ids: set[str] = set()
    expected: list[tuple[str, str]] = []
    number = 0
    for position, line in enumerate(turns):
        turn = line.turn
        if turn.number <= number or turn.number > head.turn_count:
            raise _invalid("turn numbers are out of order or beyond turn_count", sid)
        if turn.turn_id in turn_ids or turn.agent_id not in head.agents:
            raise _invalid("a turn id repeats or a turn names an unknown agent", sid)
        if turn.status.is_open and position != len(turns) - 1:
            raise _invalid("only the last turn may be open", sid, turn_id=turn.turn_id)
        for ref in line.message_refs:
            if ref not in messages or ref in used:
                raise _invalid("a turn names a missing or shared message", sid)
            used.add(ref)
        if line.snapshot_name and snapshot_path(sid, line.snapshot_name) not in files:
            raise _invalid("a turn's snapshot is not in the bundle", sid, turn_id=turn.turn_id)
        expected.extend((turn.turn_id, review_id) for review_id in line.review_ids)
        number = turn.number
        turn_ids.add(turn.turn_id)
    if len(used) != len(messages):
        raise _invalid("a message belongs to no turn", sid)
    if [(review.turn_id, review.review_id) for review in reviews] != expected:
        raise _invalid("reviews do not match their turns", sid)


def verify(spool: Spool, manifest: Manifest) -> list[SessionPlan]:
    """Checks the bundle's contents; returns one plan per session, by session id.

    Raises:
        BundleInvalid: Anything malformed or inconsistent.
    """
    per_session: dict[str, list[str]] = {}
    for path in manifest.files:
        kind = classify(path)
        if kind.kind != "core":
            per_session.setdefault(kind.session_id, []).append(path)
    files = set(manifest.files)
    readers: list[_Lines[Any]] = []
    plans: list[SessionPlan] = []
    try:
        messages = _Lines(spool, MESSAGES, lines.parse_message)
        readers.append(messages)
        turns = _Lines(spool, TURNS, _turn_item)
        readers.append(turns)
        reviews = _Lines(spool, REVIEWS, lines.parse_review)
        readers.append(reviews)
        for entry in _session_entries(spool):
            head = lines.parse_session(entry)
            sid = head.session_id
            if plans and sid <= plans[-1].session_id:
                raise _invalid("sessions.json is not sorted by session_id", sid)
            plan = SessionPlan(head)
            found = _check_messages(head, messages.take(sid))
            plan.message_count = len(found)
            plan.messages = messages.span
            turn_lines = list(turns.take(sid))
            plan.turns = turns.span
            review_items = list(reviews.take(sid))
            plan.reviews = reviews.span
            _check_turns(head, turn_lines, review_items, found, files)
            del found, turn_lines, review_items
            plan.strands = sorted(
                path for path in per_session.pop(sid, []) if classify(path).kind == "strands"
            )
            plans.append(plan)
        for reader in readers:
            if reader.next is not None:
                raise _invalid("a line names a session not in the bundle", reader.next[0])
    finally:
        for reader in readers:
            reader.close()
    if per_session:
        raise _invalid("a file belongs to a session not in the bundle", min(per_session))
    counts = (len(plans), messages.count, turns.count, reviews.count)
    listed = (
        manifest.session_count,
        manifest.message_count,
        manifest.turn_count,
        manifest.review_count,
    )
    if counts != listed:
        raise BundleInvalid("the bundle's counts do not match its manifest")
    return plans


def _turn_item(value: Any) -> tuple[str, lines.TurnLine]:
    line = lines.parse_turn(value)
    return line.session_id, line
