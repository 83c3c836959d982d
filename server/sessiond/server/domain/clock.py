"""Time and id sources, injectable so tests control them."""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """A source of the current time (UTC)."""

    def now(self) -> datetime:
        """Returns the current time, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Waits ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        """Returns the current UTC time."""
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        """Sleeps on the event loop."""
        await asyncio.sleep(seconds)


class ManualClock:
    """A clock that only moves when a test advances it.

    ``sleep`` returns once the clock has been advanced past the wake-up time,
    so lease renewal loops can be driven deterministically.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._changed = asyncio.Event()

    def now(self) -> datetime:
        """Returns the clock's current time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Moves the clock forward and wakes sleepers."""
        self._now += timedelta(seconds=seconds)
        self._changed.set()
        self._changed = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        """Waits until the clock has advanced by ``seconds``."""
        wake = self._now + timedelta(seconds=seconds)
        while self._now < wake:
            await self._changed.wait()


class IdSource:
    """Makes the random and derived ids the service needs."""

    def random_hex(self, nbytes: int = 8) -> str:
        """Returns ``2 * nbytes`` random hex characters."""
        return secrets.token_hex(nbytes)

    def session_id(self, *, request_id: str | None) -> str:
        """A new session id; derived from ``request_id`` so a retried Start is idempotent."""
        if request_id:
            return "s-" + hashlib.sha256(request_id.encode()).hexdigest()[:24]
        return "s-" + secrets.token_hex(12)


def default_replica_id() -> str:
    """An id for this server process: host name, pid and a random suffix."""
    host = os.uname().nodename.split(".")[0][:32] or "host"
    return f"{host}-{os.getpid()}-{secrets.token_hex(3)}"
