"""A claimed turn and its commits: the write half of the claim protocol.

Each commit of a turn (an append, the finish, a hibernate, a failure):

1. Applies the change to this runner's copy of the head (new messages get the
   indices ``>= message_count``; revision + 1).
2. In parallel: writes each new ``message_<n>.json`` create-only, the
   snapshot, any history pack, and the index / inbox entries that changed.
3. Compare-and-swaps the head with the ETag of the previous commit. Losing
   means this runner was fenced: its files are deleted (best effort) and
   ``ABORTED`` ``SESSION_FENCED`` is raised; readers never saw them anyway,
   because they trust the head.
4. After an ending commit: rewrites ``agent.json`` if the agent state changed,
   deletes packs a merge superseded.

A lease renewal is the same CAS with a later expiry; commits and renewals of a
turn are serialised by a lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sessiond.errors import (
    CommitUnknown,
    ConcurrentModification,
    CorruptObject,
    InvalidArgument,
    InvalidTransition,
    SessionFenced,
)
from sessiond.server.domain import history, strands
from sessiond.server.domain import turn_changes as changes
from sessiond.server.domain.clock import Clock, IdSource
from sessiond.server.domain.content import check_message
from sessiond.server.domain.index import TenantIndex, sync_listing
from sessiond.server.domain.keys import TenantKeys
from sessiond.server.domain.limits import Limits
from sessiond.server.domain.records import (
    Head,
    Pack,
    Review,
    SnapshotRef,
    StoredMessage,
    Turn,
    TurnError,
    TurnStatus,
)
from sessiond.server.domain.repository import (
    ForeignMessage,
    HeadChanged,
    SessionRepository,
    retrying,
    store_errors,
)
from sessiond.server.domain.turn_changes import SnapshotInput, TurnOutcome, TurnUpdate
from sessiond.server.storage.port import CREATE, OVERWRITE, NotFound

if TYPE_CHECKING:
    from sessiond.server.domain.adoption import AppendProbe

log = logging.getLogger("sessiond.turns")


@dataclass
class TurnDeps:
    """What an active turn needs from the service (shared by all turns)."""

    repo: SessionRepository
    index: TenantIndex
    clock: Clock
    ids: IdSource
    lease_ttl: timedelta
    limits: Limits
    on_lease_change: Callable[[int], None] = lambda delta: None
    background: Callable[[Awaitable[Any]], None] = lambda awaitable: None
    registry: Any = None  # an ActiveTurns, which shutdown uses to release leases
    #: Reads messages a Strands writer appended: (keys, head, agent_id, start)
    #: -> (messages, agent from agent.json or None).
    adopt_appended: Callable[..., Awaitable[tuple[list[StoredMessage], Any]]] | None = None
    #: Called after each ending commit with (keys, head, now, index_written).
    on_committed: Callable[[TenantKeys, Head, datetime, bool], None] | None = None


@dataclass
class _Change:
    """One commit's change: the new head and what must be written before it."""

    head: Head
    turn: Turn
    appended: list[StoredMessage]
    state_changed: bool
    writes: list[Awaitable[tuple[str, str] | None]]
    compaction: history.Compaction | None = None
    pack_sizes: dict[str, int] = field(default_factory=dict)


class ActiveTurn:
    """A turn that holds the session's lease, until it finishes, hibernates or fails."""

    def __init__(
        self,
        deps: TurnDeps,
        keys: TenantKeys,
        head: Head,
        etag: str,
        *,
        pending_input: dict[str, Any] | None,
    ) -> None:
        """Wraps a claimed head, or an unclaimed one for an optimistic turn.

        An *optimistic* turn (the head has no lease) holds no claim: it writes
        its message files create-only, marked with the head's current epoch,
        and commits once, by the same CAS; any concurrent change makes that
        CAS fail. A claimer always has a higher epoch, so it treats an
        optimistic writer's files as the leftovers of an older epoch.
        """
        self._deps = deps
        self.keys = keys
        self.head = head
        self._etag = etag
        self._pending_input = pending_input
        self._lock = asyncio.Lock()
        self._closed = False
        self._fenced = False
        self._renewer: asyncio.Task[None] | None = None
        assert head.tail
        self.optimistic = head.lease is None
        self.run_id = head.tail[-1].run_id if self.optimistic else head.lease.run_id
        self.epoch = head.epoch if self.optimistic else head.lease.epoch
        self.turn_number = head.tail[-1].number
        self._agent_id = head.tail[-1].agent_id
        #: Messages adopted from a Strands writer, not acknowledged yet.
        self._adopted: list[StoredMessage] = []
        self._last_turn = head.tail[-1]
        if not self.optimistic:
            deps.on_lease_change(+1)
            if deps.registry is not None:
                deps.registry.add(self)

    @property
    def session_id(self) -> str:
        """The session."""
        return self.head.session_id

    @property
    def turn(self) -> Turn:
        """The turn as last committed (shared: read-only)."""
        return self._last_turn

    @property
    def agent_id(self) -> str:
        """The agent the turn runs for."""
        return self._agent_id

    @property
    def pending_input(self) -> dict[str, Any] | None:
        """The turn's input, until the first commit records it."""
        return self._pending_input

    @property
    def closed(self) -> bool:
        """True once the turn ended (or was fenced)."""
        return self._closed

    def start_renewal(self) -> None:
        """Renews the lease every third of its duration until the turn ends."""
        if self._renewer is None and not self.optimistic:
            self._renewer = asyncio.get_running_loop().create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        interval = self._deps.lease_ttl.total_seconds() / 3
        while not self._closed:
            await self._deps.clock.sleep(interval)
            try:
                async with self._lock:
                    if self._closed:
                        return
                    head = self.head.working_copy()
                    assert head.lease is not None
                    head.lease.expires_at = self._deps.clock.now() + self._deps.lease_ttl
                    head.revision += 1
                    etag = await self._deps.repo.replace_head(self.keys, head, self._etag)
                    if etag is None:
                        raise HeadChanged()  # renewed, but already superseded
                    self._etag = etag
                    self.head = head
            except HeadChanged:
                self._mark_closed(fenced=True)
            except Exception:  # a failed renewal is retried; the lease may still be valid
                log.warning("lease renewal failed", extra={"session_id": self.session_id})

    def _mark_closed(self, *, fenced: bool = False) -> None:
        if not self._closed:
            self._closed = True
            self._fenced = fenced
            if not self.optimistic:
                self._deps.on_lease_change(-1)
                if self._deps.registry is not None:
                    self._deps.registry.discard(self)
        if self._renewer is not None and self._renewer is not asyncio.current_task():
            self._renewer.cancel()

    async def history(self, *, limit: int = 0) -> list[StoredMessage]:
        """The agent's history as committed (the last ``limit`` messages when > 0)."""
        messages = await self._deps.repo.messages(self.keys, self.head, self.agent_id)
        return messages[-limit:] if limit > 0 else messages

    async def snapshot(self) -> tuple[bytes, str] | None:
        """The snapshot saved when the turn hibernated, if any."""
        ref = self._last_turn.snapshot
        if ref is None:
            return None
        try:
            with store_errors():
                result = await retrying(lambda: self._deps.repo.store.get(ref.key))
        except NotFound:
            raise CorruptObject(
                "the snapshot of this session's hibernated turn is missing",
                session_id=self.session_id,
                object="snapshot",
            ) from None
        return result.body, ref.content_type

    # -- commits ---------------------------------------------------------------

    async def append(self, update: TurnUpdate) -> TurnOutcome:
        """Commits a batch of changes; the turn keeps the lease."""
        return await self._commit(update, end=None)

    async def finish(self, update: TurnUpdate) -> TurnOutcome:
        """Commits the last changes and ends the turn as FINISHED."""
        return await self._commit(update, end=TurnStatus.FINISHED)

    async def hibernate(
        self,
        update: TurnUpdate,
        *,
        snapshot: SnapshotInput | None,
        reviews: list[Review],
    ) -> TurnOutcome:
        """Ends the turn as HIBERNATED, or WAITING when it asks for reviews."""
        end = TurnStatus.WAITING if reviews else TurnStatus.HIBERNATED
        return await self._commit(update, end=end, snapshot=snapshot, reviews=reviews)

    async def fail(self, code: str, message: str) -> TurnOutcome:
        """Ends the turn as ERROR, keeping everything already committed."""
        return await self._commit(
            TurnUpdate(), end=TurnStatus.ERROR, error=TurnError(code=code, message=message)
        )

    async def _commit(
        self,
        update: TurnUpdate,
        *,
        end: TurnStatus | None,
        snapshot: SnapshotInput | None = None,
        reviews: list[Review] | None = None,
        error: TurnError | None = None,
    ) -> TurnOutcome:
        async with self._lock:
            if self._closed:
                if self._fenced:
                    raise SessionFenced(
                        "another runner took the session over", session_id=self.session_id
                    )
                raise InvalidTransition("the turn has already ended", session_id=self.session_id)
            return await self._commit_locked(update, end, snapshot, reviews or [], error)

    async def _commit_locked(
        self,
        update: TurnUpdate,
        end: TurnStatus | None,
        snapshot: SnapshotInput | None,
        reviews: list[Review],
        error: TurnError | None,
        adoptions: int = 0,
    ) -> TurnOutcome:
        deps = self._deps
        self._check_update(update)
        now = deps.clock.now()
        # 1. Apply the change to a copy of the head.
        change = await self._apply(update, end, snapshot, reviews, error, now)
        head = change.head
        # 2. Write every new object in parallel (redaction rewrites return
        # None: they replace committed files, so a failed commit keeps them).
        index_task = sync_listing(deps.index, self.keys, head, now, enabled=end is not None)
        results = await asyncio.gather(*change.writes, index_task, return_exceptions=True)
        written = [r for r in results[:-1] if isinstance(r, tuple)]
        failures = [r for r in results[:-1] if isinstance(r, BaseException)]
        if failures:
            await deps.repo.delete_own(written)
            foreign = next((f for f in failures if isinstance(f, ForeignMessage)), None)
            if foreign is not None and deps.adopt_appended is not None and adoptions < 3:
                # A Strands writer appended behind our back: take its messages
                # into the history, then write ours after them.
                await self._adopt_appended(foreign)
                return await self._commit_locked(
                    update, end, snapshot, reviews, error, adoptions + 1
                )
            self._raise_write_failure(failures[0])
        if change.compaction is not None:
            sizes = change.pack_sizes
            head.packs = [
                ref.model_copy(update={"size": sizes.get(ref.key, ref.size)}) for ref in head.packs
            ]
        stamps = results[-1]
        if isinstance(stamps, tuple):
            head.index_stamp, head.inbox_stamp = stamps
        previous_index_stamp = self.head.index_stamp
        # 3. Commit: one compare-and-swap of the head.
        await self._publish(head, written, end=end)
        self._last_turn = change.turn
        if end is not None and deps.on_committed is not None:
            deps.on_committed(self.keys, head, now, head.index_stamp != previous_index_stamp)
        if end is not None:
            self._mark_closed()
        # 4. After the commit: Strands' agent.json, superseded packs.
        if change.state_changed:
            await self._write_agent_json(head, change.turn.agent_id)
        if end is not None and change.compaction is not None and change.compaction.superseded:
            deps.background(deps.repo.delete_quietly(change.compaction.superseded))
        # ``turn`` is the committed turn object even if compaction moved it
        # from the tail into a pack. Messages adopted from a Strands writer
        # are acknowledged with the commit that recorded them, first.
        adopted, self._adopted = self._adopted, []
        return TurnOutcome(head=head, turn=change.turn, appended=adopted + change.appended)

    def _check_update(self, update: TurnUpdate) -> None:
        limits = self._deps.limits
        for position, message in enumerate(update.messages):
            check_message(message, limits, field=f"update.messages[{position}]")
        if len(update.messages) > limits.max_messages_per_update:
            raise InvalidArgument(
                f"at most {limits.max_messages_per_update} messages per update",
                field="update.messages",
            )

    async def _apply(
        self,
        update: TurnUpdate,
        end: TurnStatus | None,
        snapshot: SnapshotInput | None,
        reviews: list[Review],
        error: TurnError | None,
        now: datetime,
    ) -> _Change:
        """Step 1: the commit's head (a working copy) and the writes it needs."""
        deps = self._deps
        head = self.head.working_copy()
        turn = head.tail[-1]
        agent = head.agents[turn.agent_id]
        # A turn that fails before its first commit never acknowledged its
        # input: it goes into the failure event, not into the history.
        record_input = self._pending_input is not None and end is not TurnStatus.ERROR
        if self._pending_input is not None and not record_input:
            changes.forget_turn_request(head, turn.number)
        incoming = ([self._pending_input] if record_input else []) + list(update.messages)
        appended = changes.append_messages(turn, agent, incoming, now)
        redacted = await changes.apply_redactions(
            head,
            agent.agent_id,
            update.redactions,
            limits=deps.limits,
            load_history=self.history,
            now=now,
        )
        if redacted:
            # Redactions replace the tail's turns with copies: what is written
            # and acknowledged must be the copies (a redaction may name a
            # message of this very update).
            turn = head.tail[-1]
            appended = turn.messages[len(turn.messages) - len(appended) :]
            appended_keys = {(m.agent_id, m.index) for m in appended}
            redacted = [m for m in redacted if (m.agent_id, m.index) not in appended_keys]
        state_changed = changes.update_agent(
            turn,
            agent,
            state=update.state,
            conversation_manager_state=update.conversation_manager_state,
            internal_state=update.internal_state,
            now=now,
        )
        turn.events.extend(update.events)
        changes.add_usage(head, turn, update.usage)
        # Each write returns (key, etag) of what it stored, so a fenced
        # writer can remove exactly its own files and nobody else's.
        writes: list[Awaitable[tuple[str, str] | None]] = [
            deps.repo.write_message(
                self.keys, self.session_id, record, epoch=self.epoch, run_id=self.run_id
            )
            for record in appended
        ]
        if snapshot is not None:
            key = self.keys.snapshot(
                self.session_id, f"{turn.turn_id}-{turn.resume_count}-{deps.ids.random_hex(4)}"
            )
            turn.snapshot = SnapshotRef(
                key=key,
                content_type=snapshot.content_type,
                created_at=now,
                size=len(snapshot.data),
            )
            writes.append(deps.repo.put(key, snapshot.data, mode=CREATE))
        changes.request_reviews(turn, reviews, now)
        if end is not None:
            changes.end_turn(head, turn, end, error=error, data=self._end_data(error), now=now)
        elif head.lease is None:
            raise InvalidTransition("an unclaimed turn can only commit once, at its end")
        else:
            head.lease.expires_at = now + deps.lease_ttl
        head.revision += 1
        head.updated_at = now
        change = _Change(head, turn, appended, state_changed, writes)
        if end is not None:
            change.compaction = await history.plan_compaction(
                head,
                pack_key=lambda level, first, last: self.keys.pack(
                    self.session_id, f"p{level}-{first:06d}-{last:06d}-{deps.ids.random_hex(4)}"
                ),
                load=lambda ref: deps.repo.load_pack(self.keys, head, ref),
            )
        if change.compaction is not None:
            head.packs = change.compaction.packs
            head.tail = change.compaction.tail
            for key, pack in change.compaction.writes:
                writes.append(self._write_pack(pack, key, change.pack_sizes))
        writes.extend(self._rewrite_message(record) for record in redacted)
        return change

    async def _publish(
        self, head: Head, written: list[tuple[str, str]], *, end: TurnStatus | None
    ) -> None:
        """Step 3: compare-and-swaps the head; on success it is this turn's head.

        Raises:
            SessionFenced: Another writer changed the head (this turn's files
                are deleted; the turn is closed).
            CommitUnknown: The outcome could not be found out (the turn is closed).
        """
        try:
            etag = await self._deps.repo.replace_head(self.keys, head, self._etag)
        except HeadChanged:
            await self._deps.repo.delete_own(written)
            self._mark_closed(fenced=True)
            raise SessionFenced(
                "another runner took the session over; this turn's uncommitted work was discarded",
                session_id=self.session_id,
            ) from None
        except CommitUnknown:
            self._mark_closed()
            raise
        self.head = head
        self._pending_input = None
        if etag is None:
            # Committed, but another write already followed ours (a lost
            # response resolved late): this runner cannot write again.
            self._mark_closed(fenced=end is None)
        else:
            self._etag = etag

    def _end_data(self, error: TurnError | None) -> dict[str, Any]:
        if error is None:
            return {}
        data: dict[str, Any] = {"code": error.code, "message": error.message}
        if self._pending_input is not None:
            data["unrecorded_input"] = self._pending_input
        return data

    async def _rewrite_message(self, record: StoredMessage) -> None:
        body = strands.message_file(record, epoch=self.epoch, run_id=self.run_id)
        key = self.keys.message(self.session_id, record.agent_id, record.index)
        await self._deps.repo.replace(key, body, exists=True)

    async def _write_pack(self, pack: Pack, key: str, sizes: dict[str, int]) -> tuple[str, str]:
        etag, sizes[key] = await self._deps.repo.write_pack(pack, key)
        return key, etag

    async def _write_agent_json(self, head: Head, agent_id: str) -> None:
        with contextlib.suppress(Exception):  # repaired by the next state change
            await self._deps.repo.put(
                self.keys.agent_json(self.session_id, agent_id),
                strands.agent_file(head.agents[agent_id]),
                mode=OVERWRITE,
            )

    async def adopt_strands_appends(self, probe: AppendProbe | None = None) -> None:
        """Takes messages a Strands writer appended since the last commit into this turn.

        Called right after the claim, with the probe the claim started (one
        GET of ``message_<count>``, a 404 when nothing was appended), so the
        restored context and the input's index include them; the turn's
        first commit records them. Appends that land later are still caught
        at commit (the create-only write of ``message_<count>`` fails).
        """
        if self._deps.adopt_appended is None:
            return
        start = self.head.agents[self.agent_id].message_count
        if probe is not None and (probe.agent_id, probe.start) == (self.agent_id, start):
            messages, agent_file = await probe.result()
        else:
            if probe is not None:
                probe.cancel()
            messages, agent_file = await self._deps.adopt_appended(
                self.keys, self.head, self.agent_id, start
            )
        if messages:
            self._take_adopted(self.agent_id, messages, agent_file)

    async def _adopt_appended(self, foreign: ForeignMessage) -> None:
        """Adds a Strands writer's appended messages to this turn (committed by the caller)."""
        assert self._deps.adopt_appended is not None
        messages, agent_file = await self._deps.adopt_appended(
            self.keys, self.head, foreign.agent_id, foreign.index
        )
        if not messages:
            raise ConcurrentModification(
                "another writer changed this session's messages", session_id=self.session_id
            )
        self._take_adopted(foreign.agent_id, messages, agent_file)

    def _take_adopted(self, agent_id: str, messages: list, agent_file: Any) -> None:
        """Records adopted messages (and Strands' newest agent.json) in this turn."""
        self.head = self.head.working_copy()  # the committed head is shared
        changes.take_adopted(self.head, agent_id, messages, agent_file, self._deps.clock.now())
        self._adopted.extend(messages)

    def _raise_write_failure(self, failure: BaseException) -> None:
        if isinstance(failure, ForeignMessage):
            raise ConcurrentModification(
                "a message was appended to this session by another writer (not sessiond)",
                session_id=self.session_id,
                agent_id=failure.agent_id,
                index=failure.index,
            ) from failure
        if isinstance(failure, SessionFenced):
            self._mark_closed(fenced=True)
        raise failure

    async def release(self, code: str, message: str) -> None:
        """Ends the turn as ERROR if it is still open (best effort; used on broken streams).

        An optimistic turn claimed nothing and committed nothing: it just ends.
        """
        if self._closed:
            return
        if self.optimistic:
            self._mark_closed()
            return
        try:
            await self.fail(code, message)
        except InvalidTransition:
            return  # released meanwhile by someone else (the stream's end or shutdown)
        except Exception:
            log.warning(
                "could not release a broken turn; its lease will expire",
                extra={"session_id": self.session_id},
            )
            self._mark_closed()
