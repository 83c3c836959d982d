"""The tenant's listing index and pending-review inbox.

``List`` and ``ListPendingReviews`` must never read every session, so commits
maintain two kinds of tenant objects:

* **Index segments** ``sessiond/index/sessions/seg_<k>.json``: sessions in
  creation order, up to ``SEGMENT_CAPACITY`` per segment (a soft cap). A
  session's segment is fixed at Start and recorded in its head. A page of
  ``List`` reads the newest segments first: one LIST to find the newest, then
  one GET per segment.
* **The inbox** ``sessiond/index/inbox.json``: every pending review of the
  tenant. One GET serves a page.

Entries are written only when a field the index filters or shows changes
(status, archived, title, labels, pending reviews) — a plain turn that leaves
a session FINISHED costs no index write. The head records a stamp of what was
last written; a commit whose stamp differs rewrites the entry, so an index
write lost to a crash is repaired by the session's next commit, by a takeover,
or when ``Get`` notices the difference. Entries carry the head revision, and
an older revision never replaces a newer one.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
from collections.abc import Callable
from datetime import datetime

from sessiond.errors import (
    CommitUnknown,
    ConcurrentModification,
    CorruptObject,
    StoreUnavailableError,
)
from sessiond.server.domain.codec import decode, encode
from sessiond.server.domain.group_commit import Change, GroupCommitter
from sessiond.server.domain.keys import TenantKeys
from sessiond.server.domain.records import (
    Head,
    Inbox,
    InboxItem,
    IndexEntry,
    IndexSegment,
    Status,
)
from sessiond.server.domain.repository import retrying, store_errors
from sessiond.server.storage.port import (
    CREATE,
    AlreadyExists,
    NotFound,
    ObjectStore,
    PreconditionFailed,
    Update,
)

log = logging.getLogger("sessiond.index")

SEGMENT_CAPACITY = 256
_TRANSIENT = (StoreUnavailableError, CommitUnknown)
CAS_ATTEMPTS = 12


def index_entry(head: Head, now: datetime) -> IndexEntry:
    """The listing entry of a session as of its head."""
    # A running session is listed with the status it will settle in only
    # after its commit; the index shows RUNNING only if that is what the head
    # committed (claims do not write the index).
    return IndexEntry(
        session_id=head.session_id,
        title=head.title,
        labels=head.labels,
        metadata=head.metadata,
        status=head.status,
        archived=head.archived,
        parent_session_id=head.parent_session_id,
        agent_id=head.agent_id,
        created_at=head.created_at,
        updated_at=head.updated_at,
        message_count=head.message_count,
        turn_count=head.turn_count,
        pending_review_count=len(head.pending_reviews(now)),
        usage=head.usage,
        revision=head.revision,
        incarnation=head.incarnation,
    )


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def index_stamp(head: Head, now: datetime) -> str:
    """A digest of the fields whose change requires an index write."""
    return _digest(
        [
            head.status,
            head.archived,
            head.title,
            head.labels,
            head.metadata,
            head.parent_session_id,
            len(head.pending_reviews(now)),
        ]
    )


def inbox_stamp(head: Head, now: datetime) -> str:
    """A digest of the session's pending reviews."""
    return _digest([(r.review_id, r.fingerprint) for r in head.pending_reviews(now)])


class TenantIndex:
    """Reads and maintains the listing index and the inbox of tenants."""

    def __init__(self, store: ObjectStore, *, capacity: int = SEGMENT_CAPACITY) -> None:
        self._store = store
        self._capacity = capacity
        self._newest: dict[str, tuple[int, int]] = {}  # tenant -> (segment, entry count)
        self._group = GroupCommitter()

    # -- generic compare-and-swap on a tenant document ----------------------

    async def _update(self, key: str, cls: type, empty: Callable[[], object], change) -> bool:
        """Applies ``change(doc) -> bool`` with CAS retries, batched with concurrent changes.

        Returns:
            True when written, False when ``change`` found nothing to do.

        Raises:
            StoreUnavailableError / CommitUnknown: The store kept failing.
            ConcurrentModification: Other writers kept winning the CAS.
        """
        return await self._group.submit(
            key, change, lambda changes: self._write(key, cls, empty, changes)
        )

    async def _write(
        self, key: str, cls: type, empty: Callable[[], object], changes: list[Change]
    ) -> list[bool]:
        """One read-change-CAS cycle for a batch of changes (see ``group_commit``)."""
        last: Exception | None = None
        for attempt in range(CAS_ATTEMPTS):
            try:
                with store_errors():
                    current = await retrying(lambda: self._store.get(key))
                document = decode(cls, current.body, session_id=None, what="index")
                mode = Update(current.meta.etag)
            except NotFound:
                document, mode = empty(), CREATE
            results = [change(document) for change in changes]
            if not any(results):
                return results
            try:
                with store_errors():
                    await self._store.put(key, encode(document), mode=mode)
                return results
            except (
                AlreadyExists,
                PreconditionFailed,
                NotFound,
                StoreUnavailableError,
                CommitUnknown,
            ) as exc:
                # Another replica updated the document first, or the store
                # hiccuped (an upsert is safe to redo): back off, re-read.
                last = exc
                await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        if isinstance(last, StoreUnavailableError | CommitUnknown):
            raise last
        raise ConcurrentModification("the listing index kept changing; try again")

    # -- segments ------------------------------------------------------------

    async def newest_segment(self, keys: TenantKeys, *, refresh: bool = False) -> tuple[int, int]:
        """The newest segment number and its entry count (cached per replica)."""
        if not refresh and keys.tenant in self._newest:
            return self._newest[keys.tenant]
        with store_errors():
            items = await self._store.list_all(keys.index_prefix)
        if not items:
            newest = (0, 0)
        else:
            number = _segment_number(items[-1].key)
            with store_errors():
                body = (await retrying(lambda: self._store.get(items[-1].key))).body
            try:
                segment = decode(IndexSegment, body, session_id=None, what="index")
                newest = (number, len(segment.entries))
            except CorruptObject:
                # Never add to (or overwrite) an unreadable segment: new
                # sessions go to the next one; List reports the damage.
                log.error("listing index segment is corrupt", extra={"segment": number})
                newest = (number, self._capacity)
        self._newest[keys.tenant] = newest
        return newest

    async def newest_number(self, keys: TenantKeys) -> int:
        """The newest segment's number from a fresh LIST; -1 when the tenant has none."""
        with store_errors():
            items = await self._store.list_all(keys.index_prefix)
        if not items:
            return -1
        return max(_segment_number(item.key) for item in items)

    async def segment_for_new_session(self, keys: TenantKeys) -> int:
        """The segment a new session goes to; opens the next one when full."""
        number, count = await self.newest_segment(keys)
        if count >= self._capacity:
            number, count = await self.newest_segment(keys, refresh=True)
            if count >= self._capacity:
                number, count = number + 1, 0
        self._newest[keys.tenant] = (number, count + 1)
        return number

    async def write_entry(self, keys: TenantKeys, head: Head, now: datetime) -> bool:
        """Upserts a session's entry (never replacing a newer revision)."""
        if head.index_segment is None:
            return False
        entry = index_entry(head, now)

        def change(segment: IndexSegment) -> bool:
            old = segment.entries.get(entry.session_id)
            if (
                old is not None
                and old.incarnation == entry.incarnation
                and old.revision > entry.revision
            ):
                return False
            segment.entries[entry.session_id] = entry
            return True

        number = head.index_segment
        return await self._update(
            keys.index_segment(number), IndexSegment, lambda: IndexSegment(number=number), change
        )

    async def remove_entry(self, keys: TenantKeys, head: Head) -> None:
        """Removes a session's entry (Delete)."""
        if head.index_segment is None:
            return

        def change(segment: IndexSegment) -> bool:
            return segment.entries.pop(head.session_id, None) is not None

        number = head.index_segment
        await self._update(
            keys.index_segment(number), IndexSegment, lambda: IndexSegment(number=number), change
        )

    async def read_segment(self, keys: TenantKeys, number: int) -> IndexSegment:
        """Reads one segment; a missing one is empty."""
        try:
            with store_errors():
                body = (await self._store.get(keys.index_segment(number))).body
        except NotFound:
            return IndexSegment(number=number)
        return decode(IndexSegment, body, session_id=None, what="index")

    # -- inbox ---------------------------------------------------------------

    async def sync_inbox(self, keys: TenantKeys, head: Head, now: datetime) -> bool:
        """Makes the inbox hold exactly the session's pending reviews."""
        pending = {f"{head.session_id}/{r.review_id}": r for r in head.pending_reviews(now)}

        def change(inbox: Inbox) -> bool:
            changed = False
            for key in [k for k in inbox.items if k.startswith(head.session_id + "/")]:
                item = inbox.items[key]
                if key not in pending and item.revision <= head.revision:
                    del inbox.items[key]
                    changed = True
            for key, review in pending.items():
                old = inbox.items.get(key)
                if old is None or old.revision < head.revision:
                    inbox.items[key] = InboxItem(
                        session_id=head.session_id, revision=head.revision, review=review
                    )
                    changed = True
            return changed

        return await self._update(keys.inbox, Inbox, Inbox, change)

    async def remove_from_inbox(self, keys: TenantKeys, session_id: str) -> None:
        """Drops every inbox item of a session (Delete)."""

        def change(inbox: Inbox) -> bool:
            doomed = [k for k in inbox.items if k.startswith(session_id + "/")]
            for key in doomed:
                del inbox.items[key]
            return bool(doomed)

        await self._update(keys.inbox, Inbox, Inbox, change)

    async def read_inbox(self, keys: TenantKeys) -> Inbox:
        """Reads the inbox; missing means empty."""
        try:
            with store_errors():
                body = (await self._store.get(keys.inbox)).body
        except NotFound:
            return Inbox()
        return decode(Inbox, body, session_id=None, what="inbox")


class IndexRefresher:
    """Keeps the counts shown by List fresh without an index write per turn.

    A commit that changes no listed field (a plain turn on a FINISHED session)
    writes no index entry. It marks the session here instead; a moment later
    one compare-and-swap per touched segment writes the newest entries of all
    marked sessions. Losing marks in a crash only delays the counts until the
    session's next commit.
    """

    def __init__(self, index: TenantIndex, *, delay: float = 2.0) -> None:
        self._index = index
        self._delay = delay
        self._pending: dict[tuple[TenantKeys, int], dict[str, IndexEntry]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def mark(self, keys: TenantKeys, head: Head, now: datetime) -> None:
        """Queues the session's current entry for the next flush."""
        if head.index_segment is None:
            return
        self._pending.setdefault((keys, head.index_segment), {})[head.session_id] = index_entry(
            head, now
        )
        if self._flusher is None or self._flusher.done():
            self._wake = asyncio.Event()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self._delay)
        except TimeoutError:
            pass
        await self.flush()

    async def flush(self) -> None:
        """Writes every queued entry now (one CAS per segment)."""
        pending, self._pending = self._pending, {}
        for (keys, number), entries in pending.items():

            def change(segment: IndexSegment, entries: dict[str, IndexEntry] = entries) -> bool:
                changed = False
                for sid, entry in entries.items():
                    old = segment.entries.get(sid)
                    # Only refresh entries that exist: a session deleted (or
                    # re-created) since it was marked must not come back.
                    if (
                        old is not None
                        and old.incarnation == entry.incarnation
                        and old.revision < entry.revision
                    ):
                        segment.entries[sid] = entry
                        changed = True
                return changed

            try:
                await self._index._update(
                    keys.index_segment(number),
                    IndexSegment,
                    lambda number=number: IndexSegment(number=number),
                    change,
                )
            except Exception:  # counts stay stale until the next commit
                continue

    async def close(self) -> None:
        """Flushes what is queued (called at shutdown)."""
        self._wake.set()
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._pending:
            await self.flush()


def _segment_number(key: str) -> int:
    return int(key.rsplit("seg_", 1)[1].split(".")[0])


def pending_items(inbox: Inbox, now: datetime, session_id: str | None) -> list[InboxItem]:
    """Inbox items still pending at ``now`` (expiry applies), oldest first."""
    items = [
        item
        for item in inbox.items.values()
        if (session_id is None or item.session_id == session_id) and item.review.is_pending(now)
    ]
    items.sort(key=lambda item: (item.review.created_at, item.session_id, item.review.review_id))
    return items


def matches(
    entry: IndexEntry,
    *,
    statuses: set[Status],
    labels: dict[str, str],
    archived: str,
) -> bool:
    """Whether an index entry passes List's filters (archived: exclude/include/only)."""
    if statuses and entry.status not in statuses:
        return False
    if any(entry.labels.get(k) != v for k, v in labels.items()):
        return False
    if archived == "exclude" and entry.archived:
        return False
    return not (archived == "only" and not entry.archived)


async def sync_listing(
    index: TenantIndex, keys: TenantKeys, head: Head, now: datetime, *, enabled: bool = True
) -> tuple[str | None, str | None]:
    """Writes the session's index entry and inbox items if their stamps changed.

    Runs beside a commit's other writes, before the head CAS; returns the
    stamps to record in the head. A write that fails keeps the old stamp, so
    the next commit tries again.
    """
    if not enabled:
        return head.index_stamp, head.inbox_stamp
    wanted = {"index": index_stamp(head, now), "inbox": inbox_stamp(head, now)}
    jobs = {}
    if wanted["index"] != head.index_stamp:
        jobs["index"] = index.write_entry(keys, head, now)
    if wanted["inbox"] != head.inbox_stamp:
        jobs["inbox"] = index.sync_inbox(keys, head, now)
    results = dict(
        zip(jobs, await asyncio.gather(*jobs.values(), return_exceptions=True), strict=True)
    )
    stamps = {"index": head.index_stamp, "inbox": head.inbox_stamp}
    for name, result in results.items():
        if not isinstance(result, BaseException):
            stamps[name] = wanted[name]
    return stamps["index"], stamps["inbox"]
