"""Work that must outlive the call that started it.

A broken ``Run`` stream still has to release its lease, and with
``--on-disconnect complete`` a server-engine turn runs on after its caller
went away. Such work runs as tasks kept here, so they are not garbage
collected mid-flight and shutdown can wait for them (:meth:`drain`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger("sessiond.turns")

T = TypeVar("T")


class BackgroundTasks:
    """Tasks that outlive their caller, awaited at shutdown."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Starts ``work`` as a task that a cancelled caller does not cancel."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    async def outlive(self, work: Coroutine[Any, Any, T]) -> T:
        """Runs ``work`` to its end even if the awaiting call is cancelled.

        The caller gets the result while it waits; once it is cancelled the
        work goes on in the background.
        """
        return await asyncio.shield(self.spawn(work))

    async def drain(self, seconds: float) -> None:
        """Waits up to ``seconds`` for the tasks still running."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=seconds)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        # Retrieve the error, so a caller that went away leaves no "exception
        # never retrieved" noise; the turn itself records what failed.
        error = task.exception()
        if error is not None:
            log.debug("background work ended with %r", error)
