"""Per-replica caches. Correctness never depends on them.

* Heads are cached with their ETag and always revalidated: a claim is a CAS
  with the cached ETag (a stale copy just fails and is re-read), and reads use
  a conditional GET (``If-None-Match``), so a warm restore costs one request.
* History packs are immutable (a new pack always gets a new key), so a cached
  pack is valid for as long as it is kept.

Both are LRU-bounded by an estimate of their size, and hand out deep copies so
callers can never change what is stored.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)


@dataclass
class _Entry(Generic[M]):
    etag: str
    value: M
    size: int


class LruCache(Generic[M]):
    """An LRU cache of pydantic documents bounded by total byte size."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[object, _Entry[M]] = OrderedDict()

    def get(self, key: object, *, copy: bool = True) -> tuple[str, M] | None:
        """Returns ``(etag, value)`` for a cached key, marking it recently used.

        Args:
            key: The cache key.
            copy: Return a deep copy (the default). Only callers that treat the
                value as immutable (history packs) pass False to skip the copy.
        """
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry.etag, entry.value.model_copy(deep=True) if copy else entry.value

    def etag(self, key: object) -> str | None:
        """The cached ETag of a key, without copying the value."""
        entry = self._entries.get(key)
        return entry.etag if entry else None

    def put(self, key: object, etag: str, value: M, size: int) -> None:
        """Stores a copy of ``value`` under ``key``; evicts least recently used entries."""
        self.discard(key)
        if size > self._max_bytes:
            return
        self._entries[key] = _Entry(etag, value.model_copy(deep=True), size)
        self._bytes += size
        while self._bytes > self._max_bytes and self._entries:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.size

    def discard(self, key: object) -> None:
        """Forgets a key."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """Total estimated size of the cached entries."""
        return self._bytes
