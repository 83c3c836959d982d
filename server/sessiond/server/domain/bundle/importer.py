"""Import: a verified bundle → sessions, restored exactly, one at a time.

Order for each session, so that a crash at any point leaves nothing a reader
trusts and a retry of the same bundle completes the work:

1. the Strands files (exact bytes, overwritten) except ``session.json``, the
   snapshots, then the history as new packs under fresh unique keys;
2. the head, create-only: the commit point (revision 1, a new incarnation,
   a record of this bundle's import id);
3. leftovers of an interrupted earlier attempt are deleted;
4. Strands' ``session.json`` (only now: its presence without a head would
   let any reader adopt the half-written session as a Strands one);
5. the listing index entry and inbox items.

A head that exists and carries this bundle's import id was made by an
earlier attempt of the same import: only steps 4 and 5 run again. Any other
existing head, or a ``session.json`` without a head (a session only Strands
wrote, which sessiond serves), is a conflict (FAIL: ALREADY_EXISTS before
anything is written; SKIP: left alone).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from sessiond.errors import SessionAlreadyExists, Unavailable
from sessiond.server.domain import strands
from sessiond.server.domain.bundle import lines, unpack
from sessiond.server.domain.bundle.format import (
    MESSAGES,
    REVIEWS,
    TURNS,
    Manifest,
    loads,
    snapshot_path,
    strands_dir,
)
from sessiond.server.domain.bundle.parallel import for_each
from sessiond.server.domain.bundle.spool import Spool
from sessiond.server.domain.bundle.verify import SessionPlan, verify
from sessiond.server.domain.codec import decode, encode
from sessiond.server.domain.context import ServiceContext
from sessiond.server.domain.history import FANOUT, TAIL_MAX_BYTES
from sessiond.server.domain.index import inbox_stamp, index_stamp
from sessiond.server.domain.keys import TenantKeys, parse_message_index
from sessiond.server.domain.records import (
    Head,
    Pack,
    PackRef,
    RequestRecord,
    Review,
    StoredMessage,
    Turn,
)
from sessiond.server.domain.repository import store_errors
from sessiond.server.domain.validation import check_id
from sessiond.server.storage.port import CREATE, OVERWRITE, AlreadyExists, NotFound

IMPORT_OP = "import"
SESSION_JSON = "session.json"
#: Parallel PUTs of one session's files.
PARALLEL_PUTS = 16
#: Ended turns go into packs of about this much message JSON.
PACK_BYTES = 8 * 1024 * 1024


@dataclass
class ImportResult:
    """What an import did."""

    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    message_count: int = 0


@dataclass
class _Loaded:
    """One session's history read back from the spool."""

    turns: list[Turn]
    sizes: list[int]
    snapshots: list[tuple[str, str]]  # (bundle path, storage key)


class BundleImporter:
    """Restores sessions from bundles."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    async def import_stream(
        self, keys: TenantKeys, chunks: AsyncIterator[bytes], *, skip_existing: bool
    ) -> ImportResult:
        """Imports a tar.gz received as chunks (an async iterator of bytes).

        Raises:
            BundleInvalid: The bundle is malformed or fails verification.
            SessionAlreadyExists: A session exists and ``skip_existing`` is False.
        """
        spool = await asyncio.to_thread(Spool)
        try:
            archive = await unpack.receive(chunks, spool)
            manifest = await asyncio.to_thread(unpack.extract, archive, spool)
            await asyncio.to_thread(archive.unlink)
            return await self._import(keys, spool, manifest, skip_existing)
        finally:
            await asyncio.to_thread(spool.remove)

    async def import_prefix(
        self, keys: TenantKeys, source: str, *, skip_existing: bool
    ) -> ImportResult:
        """Imports the bundle stored under ``exports/<source>/``."""
        check_id(source, field="source_prefix")
        spool = await asyncio.to_thread(Spool)
        try:
            prefix = keys.export_prefix(source)
            manifest = await unpack.fetch(self._ctx.repo.store, prefix, spool)
            return await self._import(keys, spool, manifest, skip_existing)
        finally:
            await asyncio.to_thread(spool.remove)

    async def _import(
        self, keys: TenantKeys, spool: Spool, manifest: Manifest, skip_existing: bool
    ) -> ImportResult:
        plans = await asyncio.to_thread(verify, spool, manifest)
        # The same bundle always has the same id, so a retry recognises its own heads.
        request_id = f"import:{manifest.digest[:40]}"
        states = await self._states(keys, plans, request_id)
        conflicts = sorted(sid for sid, state in states.items() if state == "exists")
        if conflicts and not skip_existing:
            raise SessionAlreadyExists(
                "a session of the bundle exists already",
                session_id=conflicts[0],
                count=len(conflicts),
            )
        result = ImportResult(skipped=conflicts)
        for plan in plans:
            state = states[plan.session_id]
            if state == "exists":
                continue
            if state == "new":
                head = await self._restore(keys, spool, plan, request_id)
            else:
                head, _ = await self._ctx.repo.read_head(keys, plan.session_id)
            await self._put_session_json(keys, spool, plan)
            await self._list(keys, head)
            result.imported.append(plan.session_id)
            result.message_count += plan.message_count
        return result

    # -- conflicts ---------------------------------------------------------------

    async def _states(
        self, keys: TenantKeys, plans: list[SessionPlan], request_id: str
    ) -> dict[str, str]:
        """For each session: "new", "ours" (an earlier attempt of this import) or "exists".

        Read straight from the store: the repository would adopt a session
        only Strands wrote (creating its head) on a missing head, and such a
        session exists for this purpose — its ``session.json`` says so.
        """
        store = self._ctx.repo.store
        states: dict[str, str] = {}

        async def state_of(plan: SessionPlan) -> None:
            sid = plan.session_id
            try:
                with store_errors():
                    body = (await store.get(keys.head(sid))).body
            except NotFound:
                states[sid] = "exists" if await self._exists(keys.session_json(sid)) else "new"
                return
            head = decode(Head, body, session_id=sid, what="head")
            if head.deleted:
                raise Unavailable("the session is being deleted; retry later", session_id=sid)
            # An earlier attempt of this import left the head it wrote
            # (revision 1) untouched; once the session changed, it is a
            # session like any other, even while its head still remembers
            # the import's request id.
            ours = head.revision == 1 and head.find_request(request_id, IMPORT_OP)
            states[sid] = "ours" if ours else "exists"

        await for_each(plans, state_of, PARALLEL_PUTS)
        return states

    async def _exists(self, key: str) -> bool:
        try:
            with store_errors():
                await self._ctx.repo.store.head(key)
        except NotFound:
            return False
        return True

    # -- one session -------------------------------------------------------------

    async def _restore(
        self, keys: TenantKeys, spool: Spool, plan: SessionPlan, request_id: str
    ) -> Head:
        """Writes a session's files, packs and head; returns the committed head."""
        ctx = self._ctx
        sid = plan.session_id
        with store_errors():
            # No head exists, so nothing here is referenced: leftovers of an
            # interrupted attempt, deleted once the new head is committed.
            leftovers = [
                item.key for item in await ctx.repo.store.list_all(keys.sessiond_prefix(sid))
            ]
        loaded = await asyncio.to_thread(_load_session, spool, plan, keys)
        epoch = await self._put_strands(keys, spool, plan)
        prefixes = [keys.messages_prefix(sid, aid) for aid in plan.head.agents]
        with store_errors():
            for prefix in [*prefixes, keys.multi_agents_prefix(sid)]:
                await ctx.repo.store.ensure_prefix(prefix)

        async def put_snapshot(item: tuple[str, str]) -> None:
            body = await asyncio.to_thread(spool.path(item[0]).read_bytes)
            await ctx.repo.put(item[1], body, mode=OVERWRITE)

        await for_each(loaded.snapshots, put_snapshot, PARALLEL_PUTS)
        packs, tail = await self._write_packs(keys, sid, loaded)
        now = ctx.clock.now()
        head = plan.head.model_copy(
            update={
                "incarnation": ctx.ids.random_hex(4),
                "revision": 1,
                # Above every epoch in the copied message files' markers, so
                # the next writer (optimistic or claiming) replaces files a
                # fenced writer left behind, instead of taking them as newer.
                "epoch": epoch,
                "packs": packs,
                "tail": tail,
                "requests": [RequestRecord(request_id=request_id, op=IMPORT_OP, at=now)],
                "index_segment": await ctx.index.segment_for_new_session(keys),
            }
        )
        head.index_stamp = index_stamp(head, now)
        head.inbox_stamp = inbox_stamp(head, now)
        try:
            await ctx.repo.create_head(keys, head)
        except AlreadyExists:
            current, _ = await ctx.repo.read_head(keys, sid, include_deleted=True)
            if current.deleted or current.find_request(request_id, IMPORT_OP) is None:
                raise SessionAlreadyExists(
                    "a session of the bundle was created meanwhile", session_id=sid
                ) from None
            return current  # a concurrent attempt of this same import committed first
        referenced = {ref.key for ref in packs} | {key for _, key in loaded.snapshots}
        await ctx.repo.delete_quietly([key for key in leftovers if key not in referenced])
        return head

    async def _put_session_json(self, keys: TenantKeys, spool: Spool, plan: SessionPlan) -> None:
        """Writes Strands' ``session.json`` once the head exists (create-only: a retry may
        find it written already)."""
        path = strands_dir(plan.session_id) + SESSION_JSON
        if path not in plan.strands:
            return
        body = await asyncio.to_thread(spool.path(path).read_bytes)
        try:
            await self._ctx.repo.put(keys.session_json(plan.session_id), body, mode=CREATE)
        except AlreadyExists:
            pass

    async def _put_strands(self, keys: TenantKeys, spool: Spool, plan: SessionPlan) -> int:
        """Copies the Strands files back, except ``session.json``; returns the epoch the
        head starts at: one above the highest in the message files' markers (0 if none).

        ``session.json`` is what makes a directory a Strands session, and what
        lets sessiond adopt one it has no head for: written before the head, a
        reader could adopt the half-imported session. It is written after the
        head (:meth:`_put_session_json`).
        """
        sid = plan.session_id
        prefix = keys.session_prefix(sid)
        strip = len(strands_dir(sid))
        epochs = [-1]

        async def put(path: str) -> None:
            if path[strip:] == SESSION_JSON:
                return
            body = await asyncio.to_thread(spool.path(path).read_bytes)
            key = prefix + path[strip:]
            if parse_message_index(key) is not None:
                # Conditional even when replacing a leftover of an earlier,
                # interrupted import: a bucket policy may deny unconditional
                # writes of message files (docs/security.md).
                await self._ctx.repo.replace(key, body, exists=False)
                epochs.append(_marker_epoch(body))
            else:
                await self._ctx.repo.put(key, body, mode=OVERWRITE)

        await for_each(plan.strands, put, PARALLEL_PUTS)
        return max(epochs) + 1

    async def _write_packs(
        self, keys: TenantKeys, sid: str, loaded: _Loaded
    ) -> tuple[list[PackRef], list[Turn]]:
        """Puts the ended turns into packs; an open last turn stays in the tail."""
        turns = loaded.turns
        split = len(turns) - 1 if turns and turns[-1].status.is_open else len(turns)
        groups: list[tuple[list[Turn], int]] = []
        current: list[Turn] = []
        size = 0
        for turn, turn_size in zip(turns[:split], loaded.sizes[:split], strict=True):
            if current and size + turn_size > PACK_BYTES:
                groups.append((current, size))
                current, size = [], 0
            current.append(turn)
            size += turn_size
        if current:
            groups.append((current, size))
        refs: list[PackRef] = []
        for group, group_size in groups:
            level = _level(group_size)
            first, last = group[0].number, group[-1].number
            key = keys.pack(sid, f"p{level}-{first:06d}-{last:06d}-{self._ctx.ids.random_hex(4)}")
            pack = Pack(session_id=sid, level=level, turns=group)
            body = await asyncio.to_thread(encode, pack)
            # Written past the repository's pack cache: an import would only
            # evict the packs live sessions need.
            await self._ctx.repo.put(key, body, mode=CREATE)
            refs.append(
                PackRef(
                    key=key,
                    level=level,
                    first_turn=first,
                    last_turn=last,
                    message_count=sum(len(turn.messages) for turn in group),
                    size=len(body),
                )
            )
        return refs, turns[split:]

    async def _list(self, keys: TenantKeys, head: Head) -> None:
        """Writes the session's listing entry and inbox items; failures fail the import."""
        now = self._ctx.clock.now()
        results = await asyncio.gather(
            self._ctx.index.write_entry(keys, head, now),
            self._ctx.index.sync_inbox(keys, head, now),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result


def _level(size: int) -> int:
    """The history level whose packs are about this size (see ``history``)."""
    level = 0
    while TAIL_MAX_BYTES * FANOUT**level < size:
        level += 1
    return level


def _marker_epoch(body: bytes) -> int:
    """The epoch in a message file's sessiond marker; -1 for a file without one."""
    document = strands.parse_message_file(body)
    marker = strands.marker_of(document) if document else None
    if marker is None:
        return -1
    try:
        return max(0, int(marker.get("epoch", 0) or 0))
    except (TypeError, ValueError):
        return 0


def _read_lines(spool: Spool, name: str, span: tuple[int, int]) -> Iterator[tuple[Any, int]]:
    """Yields (parsed JSON, line length) for the lines in ``span`` of a ``.jsonl`` file."""
    start, end = span
    with open(spool.path(name), "rb") as file:
        file.seek(start)
        position = start
        while position < end:
            raw = file.readline()
            position += len(raw)
            yield loads(raw, what=name), len(raw)


def _load_session(spool: Spool, plan: SessionPlan, keys: TenantKeys) -> _Loaded:
    """Reads a session's lines back (verified already) and rebuilds its turns (blocking)."""
    sid = plan.session_id
    messages: dict[tuple[str, int], tuple[StoredMessage, int]] = {}
    for value, size in _read_lines(spool, MESSAGES, plan.messages):
        _, message = lines.parse_message(value)
        messages[(message.agent_id, message.index)] = (message, size)
    reviews: dict[tuple[str, str], Review] = {}
    for value, _ in _read_lines(spool, REVIEWS, plan.reviews):
        _, review = lines.parse_review(value)
        reviews[(review.turn_id, review.review_id)] = review
    loaded = _Loaded(turns=[], sizes=[], snapshots=[])
    for value, size in _read_lines(spool, TURNS, plan.turns):
        line = lines.parse_turn(value)
        turn = line.turn
        picked = [messages.pop(ref) for ref in line.message_refs]
        turn.messages = [message for message, _ in picked]
        turn.reviews = [reviews.pop((turn.turn_id, rid)) for rid in line.review_ids]
        if line.snapshot_name is not None and turn.snapshot is not None:
            key = f"{keys.sessiond_prefix(sid)}snapshots/{line.snapshot_name}"
            turn.snapshot = lines.restored_snapshot(turn.snapshot, key)
            loaded.snapshots.append((snapshot_path(sid, line.snapshot_name), key))
        loaded.turns.append(turn)
        loaded.sizes.append(size + sum(message_size for _, message_size in picked))
    return loaded
