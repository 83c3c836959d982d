"""Mutations that need no lease (archive, review decisions, delete marks).

Each is one compare-and-swap of the head, refused while a runner holds the
lease (a runner's commit would otherwise be fenced by a bystander). Index and
inbox entries whose stamps change are written beside it, before the CAS.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from sessiond.errors import ConcurrentModification, EtagMismatch, SessiondError
from sessiond.server.domain.claims import busy_error, lease_is_live
from sessiond.server.domain.context import ServiceContext
from sessiond.server.domain.index import sync_listing
from sessiond.server.domain.keys import TenantKeys
from sessiond.server.domain.records import Head, RequestRecord
from sessiond.server.domain.repository import HeadChanged

T = TypeVar("T")

MUTATE_ATTEMPTS = 8
MAX_REQUEST_RECORDS = 64


class AlreadyApplied(Exception):
    """Raised by a change function when its request id was already applied."""


def remember_request(head: Head, record: RequestRecord) -> None:
    """Records an applied request id in the head (the most recent 64 are kept)."""
    head.remember_request(record, keep=MAX_REQUEST_RECORDS)


async def mutate(
    ctx: ServiceContext,
    keys: TenantKeys,
    session_id: str,
    *,
    op: str,
    request_id: str | None,
    etag: str | None,
    change: Callable[[Head, datetime], T],
    allow_while_running: bool = False,
) -> tuple[Head, T | None]:
    """Applies ``change`` to the session's head with compare-and-swap retries.

    Args:
        ctx: Service dependencies.
        keys: The tenant's keys.
        session_id: The session.
        op: The operation name, for request-id records.
        request_id: Idempotency key; if already applied, the current head is
            returned and ``change`` does not run.
        etag: When set, the session's etag must still equal it.
        change: Changes the head copy in place and returns a result; may raise
            a ``SessiondError`` (re-checked against a fresh head first).
        allow_while_running: Skip the busy check (for changes that do not
            touch what a runner commits).

    Returns:
        The committed head (a copy) and ``change``'s result (None on replay).
    """
    fresh = False
    for attempt in range(MUTATE_ATTEMPTS):
        current, current_etag = await ctx.repo.head_for(keys, session_id, fresh=fresh)
        now = ctx.clock.now()
        head = current.model_copy(deep=True)
        try:
            if current.find_request(request_id, op) is not None:
                return head, None
            if etag and etag != current.etag:
                raise EtagMismatch(
                    "the session changed since this etag",
                    session_id=session_id,
                    etag=etag,
                    current_etag=current.etag,
                )
            if not allow_while_running and lease_is_live(current, now):
                raise busy_error(current)
            result = change(head, now)
        except SessiondError:
            if not fresh:
                fresh = True
                continue
            raise
        head.revision = current.revision + 1
        head.updated_at = now
        if request_id:
            remember_request(head, RequestRecord(request_id=request_id, op=op, at=now))
        head.index_stamp, head.inbox_stamp = await sync_listing(ctx.index, keys, head, now)
        try:
            await ctx.repo.replace_head(keys, head, current_etag)
        except HeadChanged:
            ctx.metrics.claim_conflict()
            fresh = True
            await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
            continue
        return head.model_copy(deep=True), result
    raise ConcurrentModification(
        "the session kept changing; try again", session_id=session_id, op=op
    )
