"""Reading and writing one session's objects: head, packs, Strands files.

This is the only domain module that calls the object store for session data.
It maps storage failures to the public errors (``STORE_UNAVAILABLE``,
``COMMIT_UNKNOWN``) and keeps the per-replica caches.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, TypeVar

from sessiond.errors import (
    CommitUnknown,
    ConcurrentModification,
    CorruptObject,
    SessionFenced,
    SessionNotFound,
    StoreUnavailableError,
)
from sessiond.server.domain import strands
from sessiond.server.domain.cache import LruCache
from sessiond.server.domain.codec import decode, encode, encode_head
from sessiond.server.domain.keys import TenantKeys
from sessiond.server.domain.records import Head, Pack, PackRef, StoredMessage, Turn
from sessiond.server.storage.port import (
    CREATE,
    AlreadyExists,
    AmbiguousWrite,
    NotFound,
    NotModified,
    ObjectStore,
    PreconditionFailed,
    PutMode,
    StoreUnavailable,
    Update,
)

T = TypeVar("T")

TRANSIENT_ATTEMPTS = 4
RECENT_COMMITS = 16


class HeadChanged(Exception):
    """A head CAS lost: the head is not the one this writer read (internal)."""


async def backoff(attempt: int) -> None:
    """Sleeps before retry ``attempt`` (exponential, jittered, a few ms to ~100 ms)."""
    await asyncio.sleep(random.uniform(0, 0.01 * 2**attempt))


async def retrying(call: Callable[[], Awaitable[T]]) -> T:
    """Runs a request that did not apply when it raised ``StoreUnavailable``, retrying it.

    Adapters already retry on the wire; this second layer covers stores
    whose failures surface as ``StoreUnavailable`` at once (and rides out a
    longer blip). Raises the last ``StoreUnavailable``.
    """
    for attempt in range(TRANSIENT_ATTEMPTS):
        try:
            return await call()
        except StoreUnavailable:
            if attempt == TRANSIENT_ATTEMPTS - 1:
                raise
            await backoff(attempt)
    raise AssertionError("unreachable")


class ForeignMessage(Exception):
    """A message file exists that sessiond did not write (a Strands writer's append)."""

    def __init__(self, agent_id: str, index: int) -> None:
        super().__init__(f"foreign message {agent_id}/{index}")
        self.agent_id = agent_id
        self.index = index


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    """Maps transient store failures to public errors with sanitised messages."""
    try:
        yield
    except AmbiguousWrite as exc:
        raise CommitUnknown(
            "the store did not confirm a write; retry with the same request_id"
        ) from exc
    except StoreUnavailable as exc:
        raise StoreUnavailableError("the object store is unavailable; nothing was changed") from exc


class SessionRepository:
    """Session objects on an object store, with per-replica caches.

    Heads and packs it returns are shared with its caches: treat them as
    read-only, and change a head through ``Head.working_copy()``. A head passed
    to ``create_head`` or ``replace_head`` is shared once written.
    ``head_cache_bytes`` and ``pack_cache_bytes`` bound the caches' estimated
    memory.
    """

    def __init__(
        self,
        store: ObjectStore,
        *,
        head_cache_bytes: int = 64 * 1024 * 1024,
        pack_cache_bytes: int = 96 * 1024 * 1024,
    ) -> None:
        self.store = store
        #: Called when a session has no head: may adopt a session Strands wrote
        #: and return its new head, or raise SessionNotFound.
        self.on_missing: Callable[[TenantKeys, str], Awaitable[tuple[Head, str]]] | None = None
        self._heads: LruCache[Head] = LruCache(head_cache_bytes)
        self._packs: LruCache[Pack] = LruCache(pack_cache_bytes)

    # -- heads -----------------------------------------------------------------

    def cached_head(self, keys: TenantKeys, session_id: str) -> tuple[Head, str] | None:
        """The cached head and its ETag, possibly stale (a CAS will tell)."""
        found = self._heads.get((keys.tenant, session_id))
        if found is None or found[1].deleted:
            return None
        etag, head = found
        return head, etag

    async def read_head(
        self, keys: TenantKeys, session_id: str, *, include_deleted: bool = False
    ) -> tuple[Head, str]:
        """Reads the current head (one conditional GET when cached).

        Args:
            keys: The tenant's keys.
            session_id: The session.
            include_deleted: Return a head marked deleted (Delete's own retries)
                instead of raising SessionNotFound.

        Raises:
            SessionNotFound: No head, or one marked deleted.
            CorruptObject: The head cannot be read.
        """
        head, etag = await self._read_head(keys, session_id)
        if head.deleted and not include_deleted:
            raise SessionNotFound("no such session", session_id=session_id)
        return head, etag

    async def _read_head(self, keys: TenantKeys, session_id: str) -> tuple[Head, str]:
        cache_key = (keys.tenant, session_id)
        cached_etag = self._heads.etag(cache_key)
        try:
            with store_errors():
                result = await retrying(
                    lambda: self.store.get(keys.head(session_id), if_none_match=cached_etag)
                )
        except NotModified:
            cached = self._heads.get(cache_key)
            if cached is not None:
                return cached[1], cached[0]
            return await self._read_head(keys, session_id)
        except NotFound:
            self._heads.discard(cache_key)
            if self.on_missing is not None:
                return await self.on_missing(keys, session_id)
            raise SessionNotFound("no such session", session_id=session_id) from None
        head = decode(Head, result.body, session_id=session_id, what="head")
        if head.session_id != session_id:
            raise CorruptObject(
                "the stored head belongs to another session", session_id=session_id, object="head"
            )
        self._heads.put(cache_key, result.meta.etag, head, len(result.body))
        return head, result.meta.etag

    async def head_for(self, keys: TenantKeys, session_id: str, *, fresh: bool) -> tuple[Head, str]:
        """The cached head when allowed and present, else a read."""
        if not fresh:
            cached = self.cached_head(keys, session_id)
            if cached is not None:
                return cached
        return await self.read_head(keys, session_id)

    async def create_head(self, keys: TenantKeys, head: Head) -> str:
        """Writes a new head create-only; raises the store's ``AlreadyExists``."""
        self._stamp_commit(head)
        body = encode_head(head)
        key = keys.head(head.session_id)
        for attempt in range(TRANSIENT_ATTEMPTS):
            try:
                meta = await self.store.put(key, body, mode=CREATE)
            except StoreUnavailable:
                await self._retry_or_raise(attempt)
                continue
            except (AmbiguousWrite, AlreadyExists) as exc:
                current = await self._current_head(keys, head.session_id)
                if current is not None and current[0].commit_id == head.commit_id:
                    meta_etag = current[1]
                    break
                if isinstance(exc, AlreadyExists) or current is not None:
                    raise AlreadyExists(key) from exc
                continue  # the ambiguous create did not apply: try again
            meta_etag = meta.etag
            break
        else:
            raise CommitUnknown("the store did not confirm a write; retry with the same request_id")
        self._heads.put((keys.tenant, head.session_id), meta_etag, head, len(body))
        return meta_etag

    async def replace_head(self, keys: TenantKeys, head: Head, etag: str) -> str | None:
        """Compare-and-swaps the head.

        Returns:
            The new ETag; or None when this write applied but another write
            already followed it (the caller's copy is no longer current).

        Raises:
            HeadChanged: Another write came first; this one did not apply.
            CommitUnknown: Whether it applied could not be determined.
        """
        previous_commit = head.commit_id
        self._stamp_commit(head)
        body = encode_head(head)
        key = keys.head(head.session_id)
        cache_key = (keys.tenant, head.session_id)
        self._heads.discard(cache_key)
        for attempt in range(TRANSIENT_ATTEMPTS):
            try:
                meta = await self.store.put(key, body, mode=Update(etag))
            except StoreUnavailable:
                await self._retry_or_raise(attempt)
                continue
            except (AmbiguousWrite, PreconditionFailed, NotFound) as exc:
                # The adapter may have hidden a lost response behind a retry
                # that then saw our own write: ask the head what happened.
                current = await self._current_head(keys, head.session_id)
                if current is None:
                    raise HeadChanged() from exc
                stored, stored_etag = current
                if stored.commit_id == head.commit_id:
                    self._heads.put(cache_key, stored_etag, head, len(body))
                    return stored_etag
                if head.commit_id in stored.recent_commits:
                    return None
                if isinstance(exc, AmbiguousWrite) and stored.commit_id == previous_commit:
                    etag = stored_etag  # nothing changed: the write did not apply
                    continue
                raise HeadChanged() from exc
            self._heads.put(cache_key, meta.etag, head, len(body))
            return meta.etag
        raise CommitUnknown("the store did not confirm a write; retry with the same request_id")

    @staticmethod
    def _stamp_commit(head: Head) -> None:
        head.commit_id = os.urandom(16).hex()  # uuid4().hex's shape, 4x cheaper
        head.recent_commits = [*head.recent_commits, head.commit_id][-RECENT_COMMITS:]

    @staticmethod
    async def _retry_or_raise(attempt: int) -> None:
        if attempt == TRANSIENT_ATTEMPTS - 1:
            raise StoreUnavailableError("the object store is unavailable; nothing was changed")
        await backoff(attempt)

    async def _current_head(self, keys: TenantKeys, session_id: str) -> tuple[Head, str] | None:
        """The stored head (no cache), None if missing; CommitUnknown if unreadable."""
        try:
            result = await retrying(lambda: self.store.get(keys.head(session_id)))
        except NotFound:
            return None
        except StoreUnavailable as exc:
            raise CommitUnknown(
                "the store did not confirm a write; retry with the same request_id"
            ) from exc
        return decode(Head, result.body, session_id=session_id, what="head"), result.meta.etag

    def forget(self, keys: TenantKeys, session_id: str) -> None:
        """Drops a session's cached head."""
        self._heads.discard((keys.tenant, session_id))

    # -- history ---------------------------------------------------------------

    async def load_pack(self, keys: TenantKeys, head: Head, ref: PackRef) -> Pack:
        """Reads a history pack (immutable, so cached without revalidation)."""
        cached = self._packs.get(ref.key)
        if cached is not None:
            return cached[1]
        try:
            with store_errors():
                result = await retrying(lambda: self.store.get(ref.key))
        except NotFound:
            raise CorruptObject(
                "a history pack of this session is missing",
                session_id=head.session_id,
                object="pack",
            ) from None
        pack = decode(Pack, result.body, session_id=head.session_id, what="pack")
        self._packs.put(ref.key, result.meta.etag, pack, len(result.body))
        return pack

    async def write_pack(self, pack: Pack, key: str) -> tuple[str, int]:
        """Writes a new pack create-only and caches it; returns its ETag and size."""
        body = encode(pack)
        _, etag = await self.put(key, body, mode=CREATE)
        self._packs.put(key, etag, pack, len(body))
        return etag, len(body)

    async def turns(self, keys: TenantKeys, head: Head) -> list[Turn]:
        """Every turn of the session, oldest first (packs in parallel, then the tail)."""
        packs = await asyncio.gather(*(self.load_pack(keys, head, ref) for ref in head.packs))
        turns = [turn for pack in packs for turn in pack.turns]
        turns.extend(head.tail)
        return turns

    async def messages(self, keys: TenantKeys, head: Head, agent_id: str) -> list[StoredMessage]:
        """An agent's whole history, oldest first (redactions applied)."""
        turns = await self.turns(keys, head)
        agent = head.agents.get(agent_id)
        return messages_of(turns, agent_id, agent.redactions if agent else None)

    # -- Strands files ---------------------------------------------------------

    async def write_message(
        self, keys: TenantKeys, session_id: str, record: StoredMessage, *, epoch: int, run_id: str
    ) -> tuple[str, str]:
        """Writes ``message_<n>.json`` create-only.

        A file already at that index is either a leftover of an older, fenced
        sessiond writer (replaced), one of this run's own earlier attempts
        (replaced), a newer writer's (this writer is fenced), or a foreign
        Strands append (``ForeignMessage``; never overwritten).
        """
        key = keys.message(session_id, record.agent_id, record.index)
        body = strands.message_file(record, epoch=epoch, run_id=run_id)
        fenced = SessionFenced("another runner took the session over", session_id=session_id)
        for _ in range(TRANSIENT_ATTEMPTS):
            try:
                with store_errors():
                    meta = await retrying(lambda: self.store.put(key, body, mode=CREATE))
                return key, meta.etag
            except AlreadyExists:
                pass
            except CommitUnknown:
                pass  # the create may have applied: the file tells us below
            try:
                with store_errors():
                    existing = await retrying(lambda: self.store.get(key))
            except NotFound:
                continue  # its writer removed it meanwhile: create again
            document = strands.parse_message_file(existing.body)
            marker = strands.marker_of(document) if document else None
            if document is not None and marker is None:
                raise ForeignMessage(record.agent_id, record.index)
            their_epoch = int((marker or {}).get("epoch", 0) or 0)
            same_epoch_other_run = their_epoch == epoch and (marker or {}).get("run_id") != run_id
            if their_epoch > epoch or same_epoch_other_run:
                raise fenced
            if their_epoch == epoch and existing.body == body:
                return key, existing.meta.etag  # our own write, whose response was lost
            try:
                with store_errors():
                    update = Update(existing.meta.etag)
                    meta = await retrying(
                        lambda update=update: self.store.put(key, body, mode=update)
                    )
            except (PreconditionFailed, NotFound, CommitUnknown):
                # The leftover changed or vanished meanwhile (its writer
                # cleaning up): look again.
                continue
            return key, meta.etag
        raise fenced

    async def put(self, key: str, body: bytes, *, mode: PutMode) -> tuple[str, str]:
        """A write with transient failures retried; returns the key and new ETag.

        A create whose response was lost and whose retry then finds the key
        present checks the stored bytes: identical bytes are its own write.
        """
        ambiguous = False
        for attempt in range(TRANSIENT_ATTEMPTS):
            try:
                with store_errors():
                    meta = await retrying(lambda: self.store.put(key, body, mode=mode))
                return key, meta.etag
            except CommitUnknown:
                ambiguous = True
                if attempt == TRANSIENT_ATTEMPTS - 1:
                    raise
            except AlreadyExists:
                if not ambiguous:
                    raise
                with store_errors():
                    existing = await retrying(lambda: self.store.get(key))
                if existing.body != body:
                    raise
                return key, existing.meta.etag
        raise AssertionError("unreachable")

    async def replace(self, key: str, body: bytes, *, exists: bool) -> tuple[str, str]:
        """Writes ``key`` whether or not it exists, but always conditionally.

        ``If-None-Match: *`` when it is absent, else ``If-Match`` on the ETag
        just read: a bucket policy that denies unconditional writes of message
        files (docs/security.md) still lets redactions and imports through.
        ``exists`` says which to try first (a redaction rewrites a file; an
        import usually creates one), so the likely case costs no extra read.
        Losing a race to another writer is retried a few times, then raised.
        """
        mode: PutMode = CREATE
        if exists:
            mode = await self._update_mode(key)
        for _ in range(TRANSIENT_ATTEMPTS):
            try:
                return await self.put(key, body, mode=mode)
            except (AlreadyExists, PreconditionFailed, NotFound):
                mode = await self._update_mode(key)  # changed meanwhile: read again
        raise ConcurrentModification("another writer keeps changing this object", key=key)

    async def _update_mode(self, key: str) -> PutMode:
        """``If-Match`` on the key's current ETag, or create-only if it is gone."""
        try:
            with store_errors():
                meta = await retrying(lambda: self.store.head(key))
        except NotFound:
            return CREATE
        return Update(meta.etag)

    async def delete_own(self, written: Sequence[tuple[str, str]]) -> None:
        """Best-effort removal of this writer's uncommitted files.

        Each delete is conditional on the ETag this writer stored, so a file
        another writer has since replaced is left alone. Failures leave
        orphans, which the next holder of the session cleans up.
        """
        await asyncio.gather(
            *(self.store.delete(key, if_match=etag) for key, etag in written),
            return_exceptions=True,
        )

    async def delete_quietly(self, keys: Sequence[str]) -> None:
        """Best-effort unconditional deletes (immutable objects nobody references)."""
        await asyncio.gather(*(self.store.delete(key) for key in keys), return_exceptions=True)


def messages_of(
    turns: Sequence[Turn],
    agent_id: str,
    redactions: dict[int, dict[str, Any]] | None = None,
) -> list[StoredMessage]:
    """The messages of one agent across turns, in index order.

    ``redactions`` (the agent's overlay for messages in packs) replaces their
    ``redact_message``.
    """
    found = [m for turn in turns for m in turn.messages if m.agent_id == agent_id]
    found.sort(key=lambda m: m.index)
    if redactions:
        found = [
            m.model_copy(update={"redact_message": redactions[m.index]})
            if m.index in redactions
            else m
            for m in found
        ]
    return found
