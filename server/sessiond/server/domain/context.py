"""What every domain service shares: storage, caches, clock, ids, limits, engines."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, TypeVar

from sessiond.server.domain.clock import Clock, IdSource
from sessiond.server.domain.engines import EngineRegistry
from sessiond.server.domain.index import TenantIndex
from sessiond.server.domain.limits import Limits
from sessiond.server.domain.pagination import PageTokens
from sessiond.server.domain.repository import SessionRepository
from sessiond.server.domain.turns import TurnDeps

log = logging.getLogger("sessiond.domain")
T = TypeVar("T")


class DomainMetrics(Protocol):
    """Counters the domain reports; the server wires them to Prometheus."""

    def claim_conflict(self) -> None:
        """A claim or commit CAS lost to another writer."""
        ...

    def lease_change(self, delta: int) -> None:
        """Leases held by this replica went up or down by ``delta``."""
        ...


class NullMetrics:
    """Metrics that go nowhere (tests, tools)."""

    def claim_conflict(self) -> None:
        """Ignores the event."""

    def lease_change(self, delta: int) -> None:
        """Ignores the event."""


class BackgroundTasks:
    """Work that outlives the call that started it, which shutdown can still wait for.

    Fire-and-forget cleanups (lease releases of broken streams, index
    flushes), and with ``--on-disconnect complete`` server-engine turns that
    run on after their caller went away (:meth:`outlive`).
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._drain_hooks: list[Any] = []

    def on_drain(self, hook: Any) -> None:
        """Registers a coroutine function to await first when draining (flushes)."""
        self._drain_hooks.append(hook)

    def spawn(self, awaitable: Awaitable[Any]) -> asyncio.Task[None]:
        """Runs ``awaitable`` in the background, logging (not raising) failures."""

        async def guarded() -> None:
            try:
                await awaitable
            except Exception:
                log.warning("background task failed", exc_info=True)

        task = asyncio.get_running_loop().create_task(guarded())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def outlive(self, work: Coroutine[Any, Any, T]) -> T:
        """Runs ``work`` to its end even if the awaiting call is cancelled.

        The caller gets the result (or the error) while it waits; once it is
        cancelled, the work goes on in the background.
        """
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._settled)
        return await asyncio.shield(task)

    def _settled(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Retrieved, so a caller that went away leaves no "exception never
            # retrieved" noise; the turn itself records what failed.
            log.debug("background work ended with %r", task.exception())

    async def drain(self, seconds: float) -> None:
        """Waits up to ``seconds`` for background work to finish."""
        for hook in self._drain_hooks:
            try:
                await asyncio.wait_for(hook(), timeout=seconds)
            except Exception:
                log.warning("a drain hook failed", exc_info=True)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=seconds)


class ActiveTurns:
    """The turns this replica holds a lease for, so shutdown can release them."""

    def __init__(self) -> None:
        self._turns: set[Any] = set()

    def add(self, turn: Any) -> None:
        """Registers an open turn."""
        self._turns.add(turn)

    def discard(self, turn: Any) -> None:
        """Forgets a turn that ended."""
        self._turns.discard(turn)

    def __len__(self) -> int:
        return len(self._turns)

    async def release_all(self, code: str, message: str) -> None:
        """Ends every open turn as ERROR (releasing its lease)."""
        await asyncio.gather(
            *(turn.release(code, message) for turn in list(self._turns)), return_exceptions=True
        )


@dataclass
class ServiceContext:
    """The shared dependencies of the domain services."""

    repo: SessionRepository
    index: TenantIndex
    clock: Clock
    ids: IdSource
    tokens: PageTokens
    limits: Limits
    engines: EngineRegistry
    holder: str
    lease_ttl: timedelta
    #: Look for a Strands writer's appends at every claim (``--adopt-on-claim``).
    adopt_on_claim: bool = False
    metrics: DomainMetrics = field(default_factory=NullMetrics)
    background: BackgroundTasks = field(default_factory=BackgroundTasks)
    active_turns: ActiveTurns = field(default_factory=ActiveTurns)
    #: The Adoption service (set by the composition root; adopts Strands appends).
    adoption: Any = None
    #: Keeps List's counts fresh after commits that wrote no index entry.
    refresher: Any = None

    def __post_init__(self) -> None:
        if self.refresher is None:
            from sessiond.server.domain.index import IndexRefresher

            self.refresher = IndexRefresher(self.index)
        self.background.on_drain(self.refresher.close)

    def _committed(self, keys: Any, head: Any, now: Any, wrote_index: bool) -> None:
        if not wrote_index:
            self.refresher.mark(keys, head, now)

    def turn_deps(self) -> TurnDeps:
        """The subset an active turn needs."""
        return TurnDeps(
            repo=self.repo,
            index=self.index,
            clock=self.clock,
            ids=self.ids,
            lease_ttl=self.lease_ttl,
            limits=self.limits,
            on_lease_change=self.metrics.lease_change,
            background=self.background.spawn,
            registry=self.active_turns,
            adopt_appended=self.adoption.appended if self.adoption is not None else None,
            on_committed=self._committed,
        )
