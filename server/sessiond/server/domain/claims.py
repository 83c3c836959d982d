"""Claiming a session: the lease protocol on the head object.

1. Read the head (the cached copy first: a stale copy only makes the CAS in
   step 4 fail, and any refusal is re-checked against a fresh read).
2. If another runner's lease is live, refuse at once: ``ABORTED``
   ``SESSION_BUSY`` with the lease expiry.
3. Let the operation check its preconditions and shape the new head (a new
   turn, a resumed turn); an expired lease is taken over the same way.
4. Compare-and-swap the head with ``epoch + 1`` and a fresh lease. Losing the
   CAS means someone else changed the head: go back to 1 with a fresh read.

Lease expiry only affects liveness: a writer that outlives its lease is fenced
by the epoch (its message files and its commit CAS fail), never trusted.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sessiond.errors import ConcurrentModification, SessionBusy, SessiondError
from sessiond.server.domain.clock import Clock
from sessiond.server.domain.keys import TenantKeys
from sessiond.server.domain.records import Head, Lease, Status
from sessiond.server.domain.repository import HeadChanged, SessionRepository

CLAIM_ATTEMPTS = 8


@dataclass
class Claimed:
    """A successful claim.

    Attributes:
        head: The head as committed by the claim (this runner's copy).
        etag: Its ETag, the If-Match of the next commit.
        previous: The head the claim replaced.
        took_over: True when an expired lease of another runner was taken over.
    """

    head: Head
    etag: str
    previous: Head
    took_over: bool


class Replay(Exception):
    """Raised by a claim's ``shape`` when the request id was already applied."""

    def __init__(self, head: Head, etag: str) -> None:
        super().__init__("request already applied")
        self.head = head
        self.etag = etag


def lease_is_live(head: Head, now: datetime) -> bool:
    """True while a lease is held and unexpired."""
    return head.lease is not None and head.lease.expires_at > now


def busy_error(head: Head) -> SessionBusy:
    """The SESSION_BUSY error for a head whose lease is live."""
    assert head.lease is not None
    return SessionBusy(
        "another runner holds this session",
        session_id=head.session_id,
        lease_expire_time=head.lease.expires_at.isoformat(),
    )


async def claim(
    repo: SessionRepository,
    keys: TenantKeys,
    session_id: str,
    *,
    holder: str,
    run_id: str,
    clock: Clock,
    ttl: timedelta,
    shape: Callable[[Head, datetime], None],
    on_conflict: Callable[[], None] = lambda: None,
) -> Claimed:
    """Claims the session for one run.

    Args:
        repo: The session repository.
        keys: The tenant's keys.
        session_id: The session.
        holder: This replica's id.
        run_id: The run's id.
        clock: The clock.
        ttl: Lease duration.
        shape: Checks preconditions and changes the copied head in place (adds
            or resumes the turn). It may raise a ``SessiondError`` (re-checked
            on a fresh head before it is reported) or ``Replay``.
        on_conflict: Called on each lost CAS (metrics).

    Raises:
        SessionBusy: Another runner's lease is live.
        Replay: The request was already applied (from ``shape``).
        ConcurrentModification: The CAS kept losing.
    """
    fresh = False
    for attempt in range(CLAIM_ATTEMPTS):
        previous, etag = await repo.head_for(keys, session_id, fresh=fresh)
        now = clock.now()
        head = previous.working_copy()
        try:
            if lease_is_live(previous, now):
                raise busy_error(previous)
            shape(head, now)
        except (SessiondError, Replay):
            if not fresh:
                # Decided on a cached head: confirm against the store first.
                fresh = True
                continue
            raise
        head.epoch = previous.epoch + 1
        head.lease = Lease(holder=holder, run_id=run_id, epoch=head.epoch, expires_at=now + ttl)
        head.status = Status.RUNNING
        head.revision = previous.revision + 1
        head.updated_at = now
        try:
            new_etag = await repo.replace_head(keys, head, etag)
            if new_etag is None:
                # Our claim applied but was already overwritten: re-read.
                raise HeadChanged()
        except HeadChanged:
            on_conflict()
            fresh = True
            await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
            continue
        return Claimed(
            head=head, etag=new_etag, previous=previous, took_over=previous.lease is not None
        )
    raise ConcurrentModification(
        "the session kept changing while claiming it", session_id=session_id
    )
