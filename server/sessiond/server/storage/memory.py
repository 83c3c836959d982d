"""An in-memory object store with exact request counts and fault hooks.

Used by unit tests and benchmarks, and to prove the claim protocol under
concurrency: every check-and-apply runs without an ``await`` in between, so
concurrent conditional writes to one key have exactly one winner.

Fault hooks make races and failures deterministic::

    store = MemoryStore()
    pause = PauseOn("put", "/claim")
    store.hooks.append(pause)
    task = asyncio.create_task(store.put("s/claim", b"x", mode=CREATE))
    await pause.reached.wait()      # the put is now parked before it applies
    ...                             # let a competitor run
    pause.release.set()

    store.hooks.append(FailNext("put", "/claim", StoreUnavailable("boom")))
    store.hooks.append(FailNext("put", "/claim", AmbiguousWrite("lost"), after=True))
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sessiond.server.storage.port import (
    AlreadyExists,
    Create,
    GetResult,
    ListPage,
    NotFound,
    NotModified,
    ObjectMeta,
    ObjectStore,
    Overwrite,
    PreconditionFailed,
    PutMode,
    RequestObserver,
    StoreError,
    StoreUnavailable,
    Update,
)


def md5_etag(body: bytes) -> str:
    """Returns the S3-style ETag of ``body``: its MD5 hex digest in double quotes."""
    return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'


def same_etag(a: str, b: str) -> bool:
    """Compares ETags ignoring the surrounding quotes, as S3 does."""
    return a.strip('"') == b.strip('"')


def check_limit(limit: int) -> None:
    """Raises ``ValueError`` unless ``1 <= limit <= 1000`` (the S3 page bound)."""
    if not 1 <= limit <= 1000:
        raise ValueError(f"list limit must be within 1..1000, got {limit}")


class FaultHook(Protocol):
    """Intercepts :class:`MemoryStore` requests.

    ``op`` is "get", "head", "put", "list" or "delete"; ``key`` is the key (the
    prefix for "list").
    """

    async def before(self, op: str, key: str) -> None:
        """Runs before the request applies; may sleep, wait, or raise a ``StoreError``."""

    async def after(self, op: str, key: str) -> None:
        """Runs after the request applied; raising models "applied, response lost"."""


class FailNext:
    """Fails the next ``times`` matching requests with ``error``.

    Args:
        op: Operation to match, or ``"*"`` for any.
        key_substring: Matches keys containing it (``""`` matches every key).
        error: The exception to raise, or a zero-argument factory of one.
        times: How many matching requests to fail.
        after: Raise after the request applied (a write then *did* happen)
            instead of before it.
    """

    def __init__(
        self,
        op: str,
        key_substring: str = "",
        error: StoreError | Callable[[], StoreError] | None = None,
        *,
        times: int = 1,
        after: bool = False,
    ) -> None:
        self.op = op
        self.key_substring = key_substring
        self.error = error
        self.remaining = times
        self.when_after = after
        self.fired = 0

    def _fire(self, op: str, key: str) -> None:
        if self.remaining <= 0 or self.op not in ("*", op) or self.key_substring not in key:
            return
        self.remaining -= 1
        self.fired += 1
        error = self.error
        if error is None:
            error = StoreUnavailable(f"injected fault: {op} {key}")
        raise error() if callable(error) else error

    async def before(self, op: str, key: str) -> None:
        """Raises before applying unless ``after`` was requested."""
        if not self.when_after:
            self._fire(op, key)

    async def after(self, op: str, key: str) -> None:
        """Raises after applying when ``after`` was requested."""
        if self.when_after:
            self._fire(op, key)


class PauseOn:
    """Parks matching requests before they apply, until ``release`` is set.

    Attributes:
        reached: Set when a matching request has arrived and is parked.
        release: Set it to let parked (and later) matching requests proceed.
    """

    def __init__(self, op: str, key_substring: str = "", *, times: int = 1) -> None:
        self.op = op
        self.key_substring = key_substring
        self.remaining = times
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def before(self, op: str, key: str) -> None:
        """Waits on ``release`` for the first ``times`` matching requests."""
        if self.remaining <= 0 or self.op not in ("*", op) or self.key_substring not in key:
            return
        self.remaining -= 1
        self.reached.set()
        await self.release.wait()

    async def after(self, op: str, key: str) -> None:
        """Does nothing."""


@dataclass(frozen=True)
class _Record:
    body: bytes
    etag: str
    put_id: str
    last_modified: datetime

    def meta(self, key: str, *, with_put_id: bool = True) -> ObjectMeta:
        return ObjectMeta(
            key=key,
            etag=self.etag,
            size=len(self.body),
            last_modified=self.last_modified,
            put_id=self.put_id if with_put_id else None,
        )


class MemoryStore(ObjectStore):
    """A process-local object store; the fake used to test the domain.

    Attributes:
        hooks: Fault hooks, consulted in order for every request.
        request_counts: Requests made, by operation (a request failed by a
            hook still counts: it models a request that reached the store).
    """

    def __init__(self, *, observer: RequestObserver | None = None) -> None:
        """Creates an empty store.

        Args:
            observer: Called as ``observer(op, outcome)`` once per request.
        """
        self._objects: dict[str, _Record] = {}
        self._sorted: list[str] = []  # the keys in ascending order, for list()
        self._observer = observer
        self.hooks: list[FaultHook] = []
        self.request_counts: Counter[str] = Counter()

    def snapshot(self) -> dict[str, bytes]:
        """Returns a copy of every key and its body."""
        return {key: rec.body for key, rec in self._objects.items()}

    def _observe(self, op: str, outcome: str) -> None:
        if self._observer is not None:
            self._observer(op, outcome)

    async def _before(self, op: str, key: str) -> None:
        self.request_counts[op] += 1
        try:
            for hook in list(self.hooks):
                await hook.before(op, key)
        except BaseException:  # a StoreError, or cancellation while parked
            self._observe(op, "error")
            raise

    async def _after(self, op: str, key: str, outcome: str) -> None:
        try:
            for hook in list(self.hooks):
                await hook.after(op, key)
        except BaseException:
            self._observe(op, "error")
            raise
        self._observe(op, outcome)

    def _fail(self, op: str, outcome: str, error: StoreError) -> StoreError:
        self._observe(op, outcome)
        return error

    async def get(self, key: str, *, if_none_match: str | None = None) -> GetResult:
        """Reads an object (see :meth:`ObjectStore.get`)."""
        await self._before("get", key)
        rec = self._objects.get(key)
        if rec is None:
            raise self._fail("get", "not_found", NotFound(key))
        if if_none_match is not None and same_etag(if_none_match, rec.etag):
            raise self._fail("get", "not_modified", NotModified(key))
        await self._after("get", key, "ok")
        return GetResult(body=rec.body, meta=rec.meta(key))

    async def head(self, key: str) -> ObjectMeta:
        """Reads an object's metadata (see :meth:`ObjectStore.head`)."""
        await self._before("head", key)
        rec = self._objects.get(key)
        if rec is None:
            raise self._fail("head", "not_found", NotFound(key))
        await self._after("head", key, "ok")
        return rec.meta(key)

    async def put(
        self, key: str, body: bytes, *, mode: PutMode, put_id: str | None = None
    ) -> ObjectMeta:
        """Writes an object (see :meth:`ObjectStore.put`)."""
        body = bytes(body)
        put_id = put_id or os.urandom(16).hex()
        await self._before("put", key)
        # Check and apply with no await in between: this is the atomic CAS.
        current = self._objects.get(key)
        if isinstance(mode, Create):
            if current is not None:
                raise self._fail("put", "already_exists", AlreadyExists(key))
        elif isinstance(mode, Update):
            if current is None:
                raise self._fail("put", "not_found", NotFound(key))
            if not same_etag(current.etag, mode.etag):
                raise self._fail("put", "precondition_failed", PreconditionFailed(key))
        elif not isinstance(mode, Overwrite):
            raise TypeError(f"unknown put mode {mode!r}")
        rec = _Record(body, md5_etag(body), put_id, datetime.now(UTC))
        if current is None:
            bisect.insort(self._sorted, key)
        self._objects[key] = rec
        await self._after("put", key, "ok")
        return rec.meta(key)

    async def list(
        self, prefix: str, *, start_after: str | None = None, limit: int = 1000
    ) -> ListPage:
        """Lists objects by prefix (see :meth:`ObjectStore.list`)."""
        check_limit(limit)
        await self._before("list", prefix)
        lo = bisect.bisect_left(self._sorted, prefix)
        if start_after is not None and start_after >= prefix:
            lo = bisect.bisect_right(self._sorted, start_after)
        page: list[str] = []
        more = False
        for i in range(lo, len(self._sorted)):
            k = self._sorted[i]
            if not k.startswith(prefix):
                break
            if len(page) == limit:
                more = True
                break
            page.append(k)
        items = [self._objects[k].meta(k, with_put_id=False) for k in page]
        await self._after("list", prefix, "ok")
        return ListPage(items=items, next_start_after=page[-1] if more else None)

    async def list_prefixes(self, prefix: str) -> list[str]:
        """The child "directories" of ``prefix`` (see :meth:`ObjectStore.list_prefixes`)."""
        await self._before("list", prefix)
        found: set[str] = set()
        for key in self._sorted[bisect.bisect_left(self._sorted, prefix) :]:
            if not key.startswith(prefix):
                break
            rest = key[len(prefix) :]
            if "/" in rest:
                found.add(prefix + rest.split("/", 1)[0] + "/")
        await self._after("list", prefix, "ok")
        return sorted(found)

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Deletes an object; a missing key is fine unless ``if_match`` is given."""
        await self._before("delete", key)
        current = self._objects.get(key)
        if if_match is not None:
            if current is None:
                raise self._fail("delete", "not_found", NotFound(key))
            if not same_etag(current.etag, if_match):
                raise self._fail("delete", "precondition_failed", PreconditionFailed(key))
        if self._objects.pop(key, None) is not None:
            del self._sorted[bisect.bisect_left(self._sorted, key)]
        await self._after("delete", key, "ok")
