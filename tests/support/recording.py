"""An object-store wrapper that records every key it is asked about.

Hostile-input tests put it under a real server and then check that no
request ever left the caller's tenant prefix::

    store = RecordingStore(MemoryStore())
    ... drive the server ...
    assert store.outside("tenants/default/") == []

Every operation (``get``, ``head``, ``put``, ``list``, ``list_prefixes``,
``delete``, ``ensure_prefix``) is recorded as ``(op, key)`` before it is
forwarded, so a request that fails is recorded too.
"""

from __future__ import annotations

from collections import Counter

from sessiond.server.storage.port import (
    GetResult,
    ListPage,
    ObjectMeta,
    ObjectStore,
    PutMode,
)

#: Keys the server may touch outside any tenant: S3's startup probe and the
#: local store's scratch directories (at the store root, never a tenant's).
INFRASTRUCTURE_PREFIXES = (".sessiond-probe/", ".sessiond-tmp/", ".sessiond-locks/")


class RecordingStore(ObjectStore):
    """Forwards to ``inner`` and records ``(op, key)`` of every request.

    Attributes:
        inner: The wrapped store.
        requests: Every request, in order, as ``(op, key)`` (the prefix for lists).
        counts: Requests by operation.
    """

    def __init__(self, inner: ObjectStore) -> None:
        self.inner = inner
        self.requests: list[tuple[str, str]] = []
        self.counts: Counter[str] = Counter()

    def _record(self, op: str, key: str) -> None:
        self.requests.append((op, key))
        self.counts[op] += 1

    def clear(self) -> None:
        """Forgets what was recorded so far."""
        self.requests.clear()
        self.counts.clear()

    def keys(self) -> list[str]:
        """Every key (or listed prefix) recorded, in order."""
        return [key for _, key in self.requests]

    def outside(self, prefix: str) -> list[tuple[str, str]]:
        """Recorded requests whose key is not under ``prefix``, or looks like a traversal.

        A key under ``prefix`` still counts as outside when it contains ``..``
        as a path segment, an empty segment (``//``), a backslash or a NUL:
        a store (or a proxy in front of it) might normalise those away.
        """
        found = []
        for op, key in self.requests:
            if key.startswith(INFRASTRUCTURE_PREFIXES):
                continue
            if not key.startswith(prefix) or suspicious(key):
                found.append((op, key))
        return found

    async def get(self, key: str, *, if_none_match: str | None = None) -> GetResult:
        """Records and forwards a GET."""
        self._record("get", key)
        return await self.inner.get(key, if_none_match=if_none_match)

    async def head(self, key: str) -> ObjectMeta:
        """Records and forwards a HEAD."""
        self._record("head", key)
        return await self.inner.head(key)

    async def put(
        self, key: str, body: bytes, *, mode: PutMode, put_id: str | None = None
    ) -> ObjectMeta:
        """Records and forwards a PUT."""
        self._record("put", key)
        return await self.inner.put(key, body, mode=mode, put_id=put_id)

    async def list(
        self, prefix: str, *, start_after: str | None = None, limit: int = 1000
    ) -> ListPage:
        """Records and forwards a LIST (``start_after`` is recorded too when given)."""
        self._record("list", prefix)
        if start_after is not None:
            self._record("list.start_after", start_after)
        return await self.inner.list(prefix, start_after=start_after, limit=limit)

    async def list_prefixes(self, prefix: str) -> list[str]:
        """Records and forwards a delimiter LIST."""
        self._record("list_prefixes", prefix)
        return await self.inner.list_prefixes(prefix)

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Records and forwards a DELETE."""
        self._record("delete", key)
        await self.inner.delete(key, if_match=if_match)

    async def ensure_prefix(self, prefix: str) -> None:
        """Records and forwards (a directory for the local store; nothing for S3)."""
        self._record("ensure_prefix", prefix)
        await self.inner.ensure_prefix(prefix)

    async def start(self) -> None:
        """Starts the inner store."""
        await self.inner.start()

    async def close(self) -> None:
        """Closes the inner store."""
        await self.inner.close()


def suspicious(key: str) -> bool:
    """True for a key with a ``..`` segment, an empty segment, a backslash or a NUL."""
    segments = key.split("/")
    inner_segments = segments[:-1] if key.endswith("/") else segments
    return (
        ".." in segments
        or "" in inner_segments
        or "\\" in key
        or "\x00" in key
        or "%2e" in key.lower()
        or "%2f" in key.lower()
    )
