"""Bounded parallelism over many items without one task per item."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")


async def for_each(items: Iterable[T], fn: Callable[[T], Awaitable[None]], limit: int) -> None:
    """Awaits ``fn(item)`` for every item, at most ``limit`` at a time.

    A fixed pool of workers pulls from one iterator, so a session with 100,000
    Strands files costs ``limit`` tasks, not 100,000. The first failure
    cancels the other workers and is raised as is (not as an ExceptionGroup).
    """
    iterator = iter(items)

    async def worker() -> None:
        for item in iterator:
            await fn(item)

    tasks = [asyncio.ensure_future(worker()) for _ in range(max(1, limit))]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
