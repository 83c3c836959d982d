"""A seeded fault-injecting wrapper around any object store (for reliability tests).

Every request may, by the configured probabilities and a seeded random
generator, be delayed, fail before it applies (S3's ``503 SlowDown`` or a
connection reset before sending: ``StoreUnavailable``, nothing written), be
refused as a ``409 ConditionalRequestConflict`` (conditional writes only;
also nothing written), or apply and then fail (a timeout / 500 / reset after
the store applied it: ``AmbiguousWrite`` for writes, ``StoreUnavailable`` for
reads). The seed is part of every injected error's message, so a failing run
can be replayed.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass

from sessiond.server.storage.port import (
    AmbiguousWrite,
    Create,
    GetResult,
    ListPage,
    ObjectMeta,
    ObjectStore,
    PutMode,
    StoreUnavailable,
    Update,
)


@dataclass(frozen=True)
class FaultRates:
    """Probabilities per request (0..1) and the latency range in seconds."""

    slowdown: float = 0.0
    reset: float = 0.0
    conflict: float = 0.0
    ambiguous: float = 0.0
    latency: tuple[float, float] = (0.0, 0.0)


class FaultInjectingStore(ObjectStore):
    """Wraps a store and injects seeded faults into its requests.

    Attributes:
        seed: The random seed (printed in every injected error).
        injected: Faults injected so far, by kind.
        enabled: Set False to pass every request through untouched.
    """

    def __init__(self, inner: ObjectStore, *, seed: int, rates: FaultRates) -> None:
        self.inner = inner
        self.seed = seed
        self.rates = rates
        self.enabled = True
        self.injected: Counter[str] = Counter()
        self._random = random.Random(seed)

    def _roll(self, probability: float) -> bool:
        return probability > 0 and self._random.random() < probability

    def _error(self, kind: str, op: str, key: str) -> str:
        self.injected[kind] += 1
        return f"injected {kind} on {op} {key!r} (seed {self.seed})"

    async def _before(self, op: str, key: str, *, conditional: bool = False) -> bool:
        """Latency and pre-apply faults; returns True if the call must fail after applying."""
        if not self.enabled:
            return False
        low, high = self.rates.latency
        if high > 0:
            await asyncio.sleep(self._random.uniform(low, high))
        if self._roll(self.rates.slowdown):
            raise StoreUnavailable(self._error("503", op, key))
        if self._roll(self.rates.reset):
            raise StoreUnavailable(self._error("reset", op, key))
        if conditional and self._roll(self.rates.conflict):
            raise StoreUnavailable(self._error("409", op, key))
        return self._roll(self.rates.ambiguous)

    async def get(self, key: str, *, if_none_match: str | None = None) -> GetResult:
        """Reads, with faults."""
        fail_after = await self._before("get", key)
        result = await self.inner.get(key, if_none_match=if_none_match)
        if fail_after:
            raise StoreUnavailable(self._error("timeout", "get", key))
        return result

    async def head(self, key: str) -> ObjectMeta:
        """Reads metadata, with faults."""
        fail_after = await self._before("head", key)
        meta = await self.inner.head(key)
        if fail_after:
            raise StoreUnavailable(self._error("timeout", "head", key))
        return meta

    async def put(
        self, key: str, body: bytes, *, mode: PutMode, put_id: str | None = None
    ) -> ObjectMeta:
        """Writes, with faults; an "ambiguous" fault applies the write, then fails."""
        conditional = isinstance(mode, Create | Update)
        fail_after = await self._before("put", key, conditional=conditional)
        meta = await self.inner.put(key, body, mode=mode, put_id=put_id)
        if fail_after:
            raise AmbiguousWrite(self._error("ambiguous", "put", key))
        return meta

    async def list(
        self, prefix: str, *, start_after: str | None = None, limit: int = 1000
    ) -> ListPage:
        """Lists, with faults."""
        fail_after = await self._before("list", prefix)
        page = await self.inner.list(prefix, start_after=start_after, limit=limit)
        if fail_after:
            raise StoreUnavailable(self._error("timeout", "list", prefix))
        return page

    async def list_prefixes(self, prefix: str) -> list[str]:
        """Lists child prefixes, with faults."""
        fail_after = await self._before("list", prefix)
        found = await self.inner.list_prefixes(prefix)
        if fail_after:
            raise StoreUnavailable(self._error("timeout", "list", prefix))
        return found

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Deletes, with faults (a lost response after a delete is harmless to retry)."""
        fail_after = await self._before("delete", key, conditional=if_match is not None)
        await self.inner.delete(key, if_match=if_match)
        if fail_after:
            raise StoreUnavailable(self._error("timeout", "delete", key))

    async def ensure_prefix(self, prefix: str) -> None:
        """Passes through (no request)."""
        await self.inner.ensure_prefix(prefix)

    async def start(self) -> None:
        """Starts the inner store."""
        await self.inner.start()

    async def close(self) -> None:
        """Closes the inner store."""
        await self.inner.close()
