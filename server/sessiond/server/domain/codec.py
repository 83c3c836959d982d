"""Encoding of stored documents, and the one place that turns bad bytes into ``CorruptObject``."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from sessiond.errors import CorruptObject

M = TypeVar("M", bound=BaseModel)


def encode(document: BaseModel) -> bytes:
    """Serialises a stored document as compact UTF-8 JSON."""
    return document.model_dump_json(exclude_defaults=False).encode()


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
