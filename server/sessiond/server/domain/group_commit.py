"""Group commit: concurrent changes to one shared document in one write.

Tenant documents (index segments, the inbox) are shared by many sessions and
updated by read-change-compare-and-swap. Sessions started together land in
the same index segment, so concurrent writers on one replica used to keep
failing each other's CAS: n writers cost O(n²) requests. Here a replica runs
at most one read-change-write cycle per document at a time; changes that
arrive meanwhile wait and are applied together in the next cycle, one CAS for
all of them. Writers on other replicas still meet in the CAS, which the
cycle retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

#: Changes a document in place; returns False when there was nothing to do.
Change = Callable[[Any], bool]
#: Applies a batch of changes in one read-change-write cycle; one result each.
Write = Callable[[list[Change]], Awaitable[list[bool]]]


class GroupCommitter:
    """Serialises read-change-write cycles per key and batches waiting changes."""

    def __init__(self) -> None:
        self._queued: dict[str, list[tuple[Change, Write, asyncio.Future[bool]]]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}

    async def submit(self, key: str, change: Change, write: Write) -> bool:
        """Applies ``change`` to the document at ``key`` with the next cycle.

        Args:
            key: The document's key.
            change: The change; it may run more than once (each CAS retry
                re-reads the document), so it must depend only on the document.
            write: Runs one cycle for a batch of changes to this key.

        Returns:
            ``change``'s result in the cycle that wrote (False: nothing to do).

        Raises:
            Whatever the cycle raised: every change of a failed batch fails.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bool] = loop.create_future()
        self._queued.setdefault(key, []).append((change, write, future))
        if key not in self._writers:
            # A task of its own: a caller that gives up (deadline) must not
            # take the cycle of the changes batched with it down too.
            self._writers[key] = loop.create_task(self._drain(key))
        return await future

    async def _drain(self, key: str) -> None:
        try:
            while batch := self._queued.pop(key, None):
                write = batch[0][1]
                try:
                    results = await write([change for change, _, _ in batch])
                except asyncio.CancelledError:
                    _cancel(batch)
                    raise
                except Exception as exc:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, _, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._writers.pop(key, None)
            _cancel(self._queued.pop(key, []))


def _cancel(batch: list[tuple[Change, Write, asyncio.Future[bool]]]) -> None:
    for _, _, future in batch:
        future.cancel()
