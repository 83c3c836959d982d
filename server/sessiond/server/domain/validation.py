"""Validation of identifiers and small request fields, before any storage call.

Ids become parts of storage keys, so they are checked against a strict
allow-list: 1-63 characters (a DNS label's length) of ``[A-Za-z0-9._-]``,
starting with a letter or digit. That refuses ``..``, ``a/b``, ``%2e``, NUL,
non-ASCII (including confusable Unicode) and over-long ids alike.
"""

from __future__ import annotations

import re
from typing import Any

from sessiond import content
from sessiond.errors import InvalidArgument, InvalidId, MessageTooLarge

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")
LABEL_KEY_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
LABEL_VALUE_PATTERN = re.compile(r"[a-z0-9._-]{0,63}")

MAX_LABELS = 64
MAX_METADATA_BYTES = 16 * 1024
MAX_TITLE_CHARS = 256
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


def check_id(value: str, *, field: str) -> str:
    """Returns ``value`` if it is a valid id, else raises ``InvalidId``.

    Args:
        value: The id to check.
        field: The request field it came from, reported in the error.
    """
    if not isinstance(value, str) or not ID_PATTERN.fullmatch(value):
        raise InvalidId(
            f"{field} must be 1-63 characters of [A-Za-z0-9._-] starting with a letter or digit",
            field=field,
            length=len(value) if isinstance(value, str) else None,
        )
    return value


def check_optional_id(value: str, *, field: str) -> str | None:
    """Like :func:`check_id`, but an empty string means "not given"."""
    return check_id(value, field=field) if value else None


def check_request_id(value: str) -> str | None:
    """Validates an idempotency key; empty means none."""
    if not value:
        return None
    if not REQUEST_ID_PATTERN.fullmatch(value):
        raise InvalidId(
            "request_id must be 1-128 characters of [A-Za-z0-9._:-], starting alphanumeric",
            field="request_id",
        )
    return value


def check_labels(labels: dict[str, str], *, field: str = "labels") -> dict[str, str]:
    """Validates label keys and values (Kubernetes-like, lower case)."""
    if len(labels) > MAX_LABELS:
        raise InvalidArgument(f"at most {MAX_LABELS} labels", field=field, count=len(labels))
    for key, value in labels.items():
        if not LABEL_KEY_PATTERN.fullmatch(key):
            raise InvalidArgument(
                "label keys must be 1-63 characters of [a-z0-9._-] starting with a letter or digit",
                field=field,
            )
        if not LABEL_VALUE_PATTERN.fullmatch(value):
            raise InvalidArgument(
                "label values must be 0-63 characters of [a-z0-9._-]", field=field, label=key
            )
    return dict(labels)


def check_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """Validates free-form metadata: at most 16 KiB of UTF-8 in keys and values."""
    size = sum(len(k.encode()) + len(v.encode()) for k, v in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise InvalidArgument(
            f"metadata must total at most {MAX_METADATA_BYTES} bytes",
            field="metadata",
            size=size,
        )
    for key in metadata:
        if not key or "\x00" in key:
            raise InvalidArgument("metadata keys must be non-empty, without NUL", field="metadata")
    return dict(metadata)


def check_title(title: str) -> str:
    """Validates a session title."""
    if len(title) > MAX_TITLE_CHARS or "\x00" in title:
        raise InvalidArgument(
            f"title must be at most {MAX_TITLE_CHARS} characters, without NUL", field="title"
        )
    return title


def check_page_size(page_size: int) -> int:
    """Applies the AIP-158 page size rules: 0 → default, above max → max, negative → error."""
    if page_size < 0:
        raise InvalidArgument("page_size must not be negative", field="page_size")
    if page_size == 0:
        return DEFAULT_PAGE_SIZE
    return min(page_size, MAX_PAGE_SIZE)


def parse_json_object(text: str, *, field: str, max_bytes: int) -> dict[str, Any] | None:
    """Parses an optional JSON object field; empty means "not given"."""
    if not text:
        return None
    if len(text.encode()) > max_bytes:
        raise MessageTooLarge(f"{field} exceeds {max_bytes} bytes", field=field, limit=max_bytes)
    value = parse_json(text, field=field)
    if not isinstance(value, dict):
        raise InvalidArgument(f"{field} must be a JSON object", field=field)
    return value


def parse_json(text: str, *, field: str) -> Any:
    """Parses a JSON value, refusing NaN/Infinity (not portable JSON)."""
    return content.parse_json(text, field=field)
