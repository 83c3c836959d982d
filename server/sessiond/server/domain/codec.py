"""Encoding of stored documents, and the one place that turns bad bytes into ``CorruptObject``."""

from __future__ import annotations

import weakref
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from sessiond.errors import CorruptObject
from sessiond.server.domain.records import Head, Turn

M = TypeVar("M", bound=BaseModel)


def encode(document: BaseModel) -> bytes:
    """Serialises a stored document as compact UTF-8 JSON."""
    return document.model_dump_json(exclude_defaults=False).encode()


class _RememberedJson:
    """The JSON of records that never change, remembered by object identity.

    Every commit encodes the head, and much of a head is the ended turns of
    its tail, carried over from the previous one. Those are shared between
    successive heads and never change in place (see ``Head.working_copy``),
    so each is encoded once. Entries go with their record (weak references);
    a changed copy is a new object, encoded anew. (The request records keep
    their JSON in the head's ``RequestMemo``.)
    """

    def __init__(self) -> None:
        self._known: dict[int, tuple[weakref.ref[BaseModel], bytes]] = {}

    def encode(self, record: BaseModel) -> bytes:
        key = id(record)
        known = self._known.get(key)
        if known is not None and known[0]() is record:
            return known[1]
        body = record.model_dump_json().encode()
        self._known[key] = (weakref.ref(record, lambda _, key=key: self._forget(key)), body)
        return body

    def _forget(self, key: int) -> None:
        known = self._known.get(key)
        if known is not None and known[0]() is None:
            del self._known[key]


_remembered = _RememberedJson()


def turn_json(turn: Turn) -> bytes:
    """A turn's JSON (remembered for ended turns, which never change)."""
    if turn.status.is_open:
        return turn.model_dump_json().encode()
    return _remembered.encode(turn)


def encode_head(head: Head) -> bytes:
    """Serialises a head like ``encode``, reusing the remembered JSON of its records.

    The request records and the tail go last; key order means nothing to readers.
    """
    rest = head.model_dump_json(exclude={"tail", "requests"}).encode()
    requests = head.requests_memo().json
    tail = b",".join(turn_json(turn) for turn in head.tail)
    return rest[:-1] + b',"requests":[' + requests + b'],"tail":[' + tail + b"]}"


def decode(cls: type[M], body: bytes, *, session_id: str | None, what: str) -> M:
    """Parses a stored document, or raises ``CorruptObject`` naming only the session and kind.

    Args:
        cls: The document model.
        body: The stored bytes.
        session_id: The session the object belongs to (None for tenant objects).
        what: A short name of the object kind for the error ("head", "pack", ...).
    """
    try:
        return cls.model_validate_json(body)
    except (ValidationError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptObject(
            f"the stored {what} of this session cannot be read"
            if session_id
            else f"the stored {what} cannot be read",
            session_id=session_id,
            object=what,
        ) from exc
