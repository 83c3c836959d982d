"""Session lifecycle and reads: Start, Get, List, ListMessages, Replay, Archive, Delete."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from sessiond.errors import (
    EtagMismatch,
    InvalidArgument,
    InvalidTransition,
    SessionAlreadyExists,
    SessionNotFound,
    Unavailable,
)
from sessiond.server.domain import strands
from sessiond.server.domain.claims import busy_error, lease_is_live
from sessiond.server.domain.codec import decode, encode
from sessiond.server.domain.context import ServiceContext
from sessiond.server.domain.index import inbox_stamp, index_stamp, matches
from sessiond.server.domain.keys import TenantKeys
from sessiond.server.domain.mutations import mutate
from sessiond.server.domain.pagination import filter_digest
from sessiond.server.domain.records import (
    Agent,
    Head,
    IndexEntry,
    RequestRecord,
    Status,
    StoredMessage,
    Tombstone,
    Turn,
)
from sessiond.server.domain.repository import HeadChanged, store_errors
from sessiond.server.domain.validation import (
    check_id,
    check_labels,
    check_metadata,
    check_optional_id,
    check_page_size,
    check_request_id,
    check_title,
)
from sessiond.server.domain.views import SessionView, view_of_entry, view_of_head
from sessiond.server.storage.port import CREATE, OVERWRITE, AlreadyExists, NotFound

DEFAULT_AGENT_ID = "default"
LIST_SEGMENTS_PER_PAGE = 4


class SessionLifecycle:
    """Creates, reads, lists, archives and deletes sessions."""

    def __init__(self, ctx: ServiceContext, *, adoption: Any = None) -> None:
        self._ctx = ctx
        self._adoption = adoption

    # -- Start ---------------------------------------------------------------

    async def start(
        self,
        keys: TenantKeys,
        *,
        session_id: str,
        agent_id: str,
        title: str,
        labels: dict[str, str],
        metadata: dict[str, str],
        parent_session_id: str,
        request_id: str,
        return_existing: bool,
        agent_state: dict[str, Any] | None,
    ) -> tuple[SessionView, bool]:
        """Starts a session; returns its view and whether it was created."""
        ctx = self._ctx
        request = check_request_id(request_id)
        sid = check_optional_id(session_id, field="session_id") or ctx.ids.session_id(
            request_id=request
        )
        aid = check_optional_id(agent_id, field="agent_id") or DEFAULT_AGENT_ID
        parent = check_optional_id(parent_session_id, field="parent_session_id")
        labels = check_labels(labels)
        metadata = check_metadata(metadata)
        title = check_title(title)
        if parent is not None:
            try:
                await ctx.repo.read_head(keys, parent)
            except SessionNotFound:
                raise InvalidArgument(
                    "parent_session_id names no session", field="parent_session_id"
                ) from None
        now = ctx.clock.now()
        head = Head(
            session_id=sid,
            incarnation=ctx.ids.random_hex(4),
            revision=1,
            created_at=now,
            updated_at=now,
            status=Status.NEW,
            title=title,
            labels=labels,
            metadata=metadata,
            parent_session_id=parent,
            agent_id=aid,
            agents={
                aid: Agent(agent_id=aid, state=agent_state or {}, created_at=now, updated_at=now)
            },
            index_segment=await ctx.index.segment_for_new_session(keys),
            requests=[RequestRecord(request_id=request, op="start", at=now)] if request else [],
        )
        # The index write below is expected to succeed; if it fails, the stamp
        # is cleared so the next commit (or a Get) repairs the entry.
        head.index_stamp = index_stamp(head, now)
        head.inbox_stamp = inbox_stamp(head, now)  # no reviews yet: nothing in the inbox
        # 1. The head, create-only: the commit point of the new session.
        try:
            head_etag = await ctx.repo.create_head(keys, head)
        except AlreadyExists:
            return await self._existing(keys, sid, request, return_existing)
        # 2. Strands' files, the empty directories, and the listing entry.
        # Both Strands files are create-only: a session Strands wrote alone
        # has no head, so creating ours succeeded, and its files must survive.
        results = await asyncio.gather(
            ctx.repo.put(keys.session_json(sid), strands.session_file(sid, now, now), mode=CREATE),
            ctx.repo.put(
                keys.agent_json(sid, aid), strands.agent_file(head.agents[aid]), mode=CREATE
            ),
            ctx.repo.store.ensure_prefix(keys.messages_prefix(sid, aid)),
            ctx.repo.store.ensure_prefix(keys.multi_agents_prefix(sid)),
            ctx.index.write_entry(keys, head, now),
            return_exceptions=True,
        )
        if isinstance(results[0], AlreadyExists):
            # Strands' files were there before sessiond: this id belongs to a
            # session Strands wrote. Undo what we wrote, never its files, and
            # answer as for any existing session (adopting it on the way).
            ours = [(keys.head(sid), head_etag)]
            if isinstance(results[1], tuple):
                ours.append(results[1])
            await ctx.repo.delete_own(ours)
            ctx.repo.forget(keys, sid)
            return await self._existing(keys, sid, None, return_existing)
        if isinstance(results[1], AlreadyExists):
            # A leftover of an earlier session with this id (ours: session.json
            # was not there): the new agent's state replaces it.
            results[1] = await ctx.repo.put(
                keys.agent_json(sid, aid), strands.agent_file(head.agents[aid]), mode=OVERWRITE
            )
        for result in results[:4]:
            if isinstance(result, BaseException):
                raise result
        if isinstance(results[4], BaseException) or results[4] is False:
            ctx.background.spawn(self._clear_stamp(keys, sid))
        return view_of_head(head, now), True

    async def _existing(
        self, keys: TenantKeys, sid: str, request_id: str | None, return_existing: bool
    ) -> tuple[SessionView, bool]:
        head, _ = await self._ctx.repo.read_head(keys, sid, include_deleted=True)
        if head.deleted:
            raise Unavailable("the session is being deleted; retry later", session_id=sid)
        now = self._ctx.clock.now()
        if head.find_request(request_id, "start") is not None:
            await self._ensure_strands_files(keys, head)
            return view_of_head(head, now), True
        if return_existing:
            return view_of_head(head, now), False
        raise SessionAlreadyExists("a session with this id exists already", session_id=sid)

    async def _ensure_strands_files(self, keys: TenantKeys, head: Head) -> None:
        """Re-creates Strands' files a crashed Start may have left out."""
        sid = head.session_id
        try:
            await self._ctx.repo.put(
                keys.session_json(sid),
                strands.session_file(sid, head.created_at, head.created_at),
                mode=CREATE,
            )
        except AlreadyExists:
            return
        for agent in head.agents.values():
            await self._ctx.repo.put(
                keys.agent_json(sid, agent.agent_id), strands.agent_file(agent), mode=OVERWRITE
            )

    async def _clear_stamp(self, keys: TenantKeys, sid: str) -> None:
        def clear(head: Head, now: datetime) -> None:
            head.index_stamp = None

        await mutate(
            self._ctx,
            keys,
            sid,
            op="index",
            request_id=None,
            etag=None,
            change=clear,
            allow_while_running=True,
        )

    # -- reads ---------------------------------------------------------------

    async def get(self, keys: TenantKeys, session_id: str) -> SessionView:
        """One session (one conditional GET when cached); repairs a stale index entry."""
        check_id(session_id, field="session_id")
        head, _ = await self._ctx.repo.read_head(keys, session_id)
        now = self._ctx.clock.now()
        if head.lease is None and head.index_stamp != index_stamp(head, now):
            self._ctx.background.spawn(self.repair_index(keys, session_id))
        return view_of_head(head, now)

    async def repair_index(self, keys: TenantKeys, session_id: str) -> None:
        """Rewrites a session's index and inbox entries and records the stamps."""

        def noop(head: Head, now: datetime) -> None:
            head.index_stamp = head.inbox_stamp = None  # forces sync_listing to write

        await mutate(
            self._ctx, keys, session_id, op="index", request_id=None, etag=None, change=noop
        )

    async def list_sessions(
        self,
        keys: TenantKeys,
        *,
        statuses: list[Status],
        labels: dict[str, str],
        archived: str,
        page_size: int,
        page_token: str,
    ) -> tuple[list[SessionView], str]:
        """A page of sessions, newest first, from the listing index."""
        size = check_page_size(page_size)
        labels = check_labels(labels, field="labels")
        status_set = set(statuses)
        filters = filter_digest([sorted(status_set), labels, archived])
        tokens = self._ctx.tokens
        position = tokens.read(page_token, kind="list", tenant=keys.tenant, filters=filters)
        if position is None and self._adoption is not None:
            # Sessions Strands wrote alone are not in the index until adopted.
            await self._adoption.discover(keys, wait=True)
        if position is None:
            segment, after = await self._ctx.index.newest_number(keys), None
        else:
            segment, after = int(position["segment"]), tuple(position["after"] or ()) or None
        found: list[IndexEntry] = []
        next_position: dict[str, Any] | None = None
        for _ in range(LIST_SEGMENTS_PER_PAGE):
            if segment < 0:
                break
            entries = list((await self._ctx.index.read_segment(keys, segment)).entries.values())
            entries.sort(key=_order, reverse=True)
            for entry in entries:
                if after is not None and _order(entry) >= after:
                    continue
                if not matches(entry, statuses=status_set, labels=labels, archived=archived):
                    continue
                found.append(entry)
                if len(found) == size:
                    next_position = {"segment": segment, "after": list(_order(entry))}
                    break
            if next_position is not None:
                break
            segment, after = segment - 1, None
        if next_position is None and segment >= 0:
            next_position = {"segment": segment, "after": None}
        token = (
            tokens.make(kind="list", tenant=keys.tenant, filters=filters, position=next_position)
            if next_position is not None
            else ""
        )
        return [view_of_entry(entry) for entry in found], token

    async def list_messages(
        self,
        keys: TenantKeys,
        *,
        session_id: str,
        agent_id: str,
        page_size: int,
        page_token: str,
    ) -> tuple[list[StoredMessage], str]:
        """A page of one agent's messages, oldest first."""
        size = check_page_size(page_size)
        filters = filter_digest([session_id, agent_id])
        tokens = self._ctx.tokens
        # The token is checked before any read: a forged one costs nothing.
        position = tokens.read(page_token, kind="messages", tenant=keys.tenant, filters=filters)
        after = int(position["after"]) if position else -1
        _, messages = await self.history(keys, session_id, agent_id)
        page = [m for m in messages if m.index > after][:size]
        more = bool(page) and page[-1].index < messages[-1].index
        token = (
            tokens.make(
                kind="messages",
                tenant=keys.tenant,
                filters=filters,
                position={"after": page[-1].index},
            )
            if more
            else ""
        )
        return page, token

    async def replay(
        self, keys: TenantKeys, *, session_id: str, page_size: int, page_token: str
    ) -> tuple[list[Turn], str]:
        """A page of the session's turns, oldest first, with events and reviews."""
        size = check_page_size(page_size)
        filters = filter_digest([session_id])
        tokens = self._ctx.tokens
        position = tokens.read(page_token, kind="replay", tenant=keys.tenant, filters=filters)
        after = int(position["after"]) if position else 0
        _, turns = await self.turns(keys, session_id)
        page = [turn for turn in turns if turn.number > after][:size]
        more = bool(page) and page[-1].number < turns[-1].number
        token = (
            tokens.make(
                kind="replay",
                tenant=keys.tenant,
                filters=filters,
                position={"after": page[-1].number},
            )
            if more
            else ""
        )
        return [turn.model_copy(deep=True) for turn in page], token

    async def history(
        self, keys: TenantKeys, session_id: str, agent_id: str
    ) -> tuple[Head, list[StoredMessage]]:
        """A session's head and one agent's whole history."""
        check_id(session_id, field="session_id")
        head, _ = await self._ctx.repo.read_head(keys, session_id)
        aid = check_optional_id(agent_id, field="agent_id") or head.agent_id
        if aid not in head.agents:
            raise InvalidArgument("the session has no such agent", field="agent_id", agent_id=aid)
        return head, await self._ctx.repo.messages(keys, head, aid)

    async def turns(self, keys: TenantKeys, session_id: str) -> tuple[Head, list[Turn]]:
        """A session's head and every turn, oldest first."""
        check_id(session_id, field="session_id")
        head, _ = await self._ctx.repo.read_head(keys, session_id)
        return head, await self._ctx.repo.turns(keys, head)

    # -- Archive / Unarchive -------------------------------------------------

    async def set_archived(
        self, keys: TenantKeys, *, session_id: str, archived: bool, etag: str, request_id: str
    ) -> SessionView:
        """Archives or unarchives a session."""
        check_id(session_id, field="session_id")
        request = check_request_id(request_id)

        def change(head: Head, now: datetime) -> None:
            if head.archived == archived:
                raise InvalidTransition(
                    "the session is already archived"
                    if archived
                    else "the session is not archived",
                    session_id=session_id,
                )
            head.archived = archived
            head.archived_at = now if archived else None

        head, _ = await mutate(
            self._ctx,
            keys,
            session_id,
            op="archive" if archived else "unarchive",
            request_id=request,
            etag=etag or None,
            change=change,
        )
        return view_of_head(head, self._ctx.clock.now())

    # -- Delete --------------------------------------------------------------

    async def delete(
        self, keys: TenantKeys, *, session_id: str, etag: str, request_id: str
    ) -> None:
        """Deletes a session and every object under its prefix.

        1. Mark the head deleted (one CAS): claims and reads now see NOT_FOUND.
        2. Leave a tombstone with the request id, so a retry succeeds.
        3. Remove the index entry and inbox items.
        4. Delete every object under the session's prefix, the head last.
        """
        ctx = self._ctx
        check_id(session_id, field="session_id")
        request = check_request_id(request_id)
        try:
            head, head_etag = await ctx.repo.read_head(keys, session_id, include_deleted=True)
        except SessionNotFound:
            if request and request in (await self._tombstone(keys, session_id)).request_ids:
                return
            raise
        now = ctx.clock.now()
        if not head.deleted:
            if etag and etag != head.etag:
                raise EtagMismatch("the session changed since this etag", session_id=session_id)
            if lease_is_live(head, now):
                raise busy_error(head)
            marked = head.model_copy(deep=True)
            marked.deleted = True
            marked.revision += 1
            marked.updated_at = now
            try:
                await ctx.repo.replace_head(keys, marked, head_etag)
            except HeadChanged:
                return await self.delete(
                    keys, session_id=session_id, etag=etag, request_id=request_id
                )
        tombstone = await self._tombstone(keys, session_id)
        tombstone.deleted_at = now
        if request and request not in tombstone.request_ids:
            tombstone.request_ids = [*tombstone.request_ids, request][-16:]
        await asyncio.gather(
            ctx.repo.put(keys.tombstone(session_id), encode(tombstone), mode=OVERWRITE),
            ctx.index.remove_entry(keys, head),
            ctx.index.remove_from_inbox(keys, session_id),
        )
        with store_errors():
            objects = await ctx.repo.store.list_all(keys.session_prefix(session_id))
        head_key = keys.head(session_id)
        doomed = [item.key for item in objects if item.key != head_key]
        for start in range(0, len(doomed), 64):
            with store_errors():
                await asyncio.gather(
                    *(ctx.repo.store.delete(k) for k in doomed[start : start + 64])
                )
        with store_errors():
            await ctx.repo.store.delete(head_key)
        ctx.repo.forget(keys, session_id)

    async def _tombstone(self, keys: TenantKeys, session_id: str) -> Tombstone:
        try:
            with store_errors():
                body = (await self._ctx.repo.store.get(keys.tombstone(session_id))).body
        except NotFound:
            return Tombstone(session_id=session_id, deleted_at=self._ctx.clock.now())
        return decode(Tombstone, body, session_id=session_id, what="tombstone")


def _order(entry: IndexEntry) -> tuple[str, str]:
    return (entry.created_at.isoformat(), entry.session_id)
