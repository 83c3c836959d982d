"""Per-replica caches. Correctness never depends on them.

* Heads are cached with their ETag and always revalidated: a claim is a CAS
  with the cached ETag (a stale copy just fails and is re-read), and reads use
  a conditional GET (``If-None-Match``), so a warm restore costs one request.
* History packs are immutable (a new pack always gets a new key), so a cached
  pack is valid for as long as it is kept.

Both are LRU-bounded by an estimate of their size in memory. They hand out
the objects they hold, uncopied: cached documents are shared and never changed
in place (a writer changes ``Head.working_copy()``), which is what keeps a
turn's CPU cost independent of the head's size.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)

#: Decoded pydantic documents take about this many bytes of memory per byte of
#: their JSON (tracemalloc, a head of 16 short chat turns: 6.5).
MEMORY_PER_JSON_BYTE = 6


@dataclass
class _Entry(Generic[M]):
    etag: str
    value: M
    size: int


class LruCache(Generic[M]):
    """An LRU cache of shared, immutable pydantic documents bounded by memory size."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[object, _Entry[M]] = OrderedDict()

    def get(self, key: object) -> tuple[str, M] | None:
        """Returns ``(etag, value)`` for a cached key, marking it recently used.

        The value is the cached object itself: never change it in place.
        """
        entry = self._entries.get(key)
        if entry is None:
            return None
        self._entries.move_to_end(key)
        return entry.etag, entry.value

    def etag(self, key: object) -> str | None:
        """The cached ETag of a key, without copying the value."""
        entry = self._entries.get(key)
        return entry.etag if entry else None

    def put(self, key: object, etag: str, value: M, json_size: int) -> None:
        """Stores ``value`` (shared from now on) under ``key``; evicts least recently used entries.

        Args:
            key: The cache key.
            etag: The stored object's ETag.
            value: The decoded document; the caller must not change it afterwards.
            json_size: The size of its JSON encoding (the memory estimate's basis).
        """
        self.discard(key)
        size = json_size * MEMORY_PER_JSON_BYTE
        if size > self._max_bytes:
            return
        self._entries[key] = _Entry(etag, value, size)
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
        """Total estimated memory size of the cached entries."""
        return self._bytes
