"""Adopting what Strands wrote, with no migration step.

* **Sessions with no sessiond files** (a prefix Strands' S3SessionManager or
  FileSessionManager filled): the first access (Get, Run, ListMessages,
  Export, Delete...) reads the Strands files once and creates the head — the
  Strands files are left exactly as they are. ``List`` discovers such sessions
  by listing the tenant's ``session_*`` prefixes (on its first call per replica,
  then every ``discovery_interval`` in the background).
* **Messages a Strands writer appended** to a session sessiond already serves:
  the next commit's create-only write of ``message_<count>`` fails, the file has
  no sessiond marker, so the messages from there on are read and committed as
  part of the history (never deleted as orphans), with the agent state Strands
  left in ``agent.json``.

Indices are kept as Strands wrote them, gaps included; Strands' conversation
manager state (e.g. ``removed_message_count``) is carried over untouched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import defaultdict
from datetime import datetime
from typing import Any

from sessiond.errors import CorruptObject, SessionAlreadyExists, SessionNotFound
from sessiond.server.domain import history, strands
from sessiond.server.domain.context import ServiceContext
from sessiond.server.domain.index import inbox_stamp, index_stamp
from sessiond.server.domain.keys import TenantKeys, parse_message_index
from sessiond.server.domain.records import (
    Agent,
    Event,
    Head,
    Status,
    StoredMessage,
    Turn,
    TurnStatus,
)
from sessiond.server.domain.repository import store_errors
from sessiond.server.domain.validation import ID_PATTERN
from sessiond.server.storage.port import AlreadyExists, NotFound

log = logging.getLogger("sessiond.adoption")

READ_CONCURRENCY = 16
MAX_APPENDED_PROBES = 4096
AGENT_JSON = "agent.json"


def _moment(value: Any, fallback: datetime) -> datetime:
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return fallback
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=fallback.tzinfo)
    return fallback


def _corrupt(session_id: str, what: str) -> CorruptObject:
    return CorruptObject(
        f"a Strands {what} of this session cannot be read", session_id=session_id, object=what
    )


def stored_message(
    document: dict[str, Any], *, agent_id: str, index: int, session_id: str, now: datetime
) -> StoredMessage:
    """A Strands message file as a stored message (``turn_id`` None: not a sessiond turn)."""
    message = document.get("message")
    if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
        raise _corrupt(session_id, "message")
    redaction = document.get("redact_message")
    created = _moment(document.get("created_at"), now)
    return StoredMessage(
        agent_id=agent_id,
        index=index,
        message=message,
        redact_message=redaction if isinstance(redaction, dict) else None,
        turn_id=None,
        created_at=created,
        updated_at=_moment(document.get("updated_at"), created),
    )


def _agent_from_file(agent_id: str, document: dict[str, Any] | None, now: datetime) -> Agent:
    agent = Agent(agent_id=agent_id, created_at=now, updated_at=now)
    if not document:
        return agent
    if isinstance(document.get("state"), dict):
        agent.state = document["state"]
    if isinstance(document.get("conversation_manager_state"), dict):
        agent.conversation_manager_state = document["conversation_manager_state"]
    if isinstance(document.get("_internal_state"), dict):
        agent.internal_state = document["_internal_state"]
    agent.created_at = _moment(document.get("created_at"), now)
    agent.updated_at = _moment(document.get("updated_at"), agent.created_at)
    return agent


class Adoption:
    """Adopts Strands sessions and Strands appends."""

    def __init__(self, ctx: ServiceContext, *, discovery_interval: float = 300.0) -> None:
        self._ctx = ctx
        self._interval = discovery_interval
        self._discovered: dict[str, float] = {}
        self._gate = asyncio.Semaphore(READ_CONCURRENCY)

    async def _read_json(self, key: str, session_id: str, what: str) -> dict[str, Any] | None:
        async with self._gate:
            try:
                with store_errors():
                    body = (await self._ctx.repo.store.get(key)).body
            except NotFound:
                return None
        try:
            document = json.loads(body)
        except ValueError:
            raise _corrupt(session_id, what) from None
        if not isinstance(document, dict):
            raise _corrupt(session_id, what)
        return document

    # -- whole sessions ------------------------------------------------------

    async def adopt_session(self, keys: TenantKeys, session_id: str) -> tuple[Head, str]:
        """Creates the head of a session only Strands has written, and returns it.

        Raises:
            SessionNotFound: There is no Strands session with this id either.
        """
        ctx = self._ctx
        session_doc = await self._read_json(keys.session_json(session_id), session_id, "session")
        if session_doc is None:
            raise SessionNotFound("no such session", session_id=session_id)
        now = ctx.clock.now()
        with store_errors():
            items = await ctx.repo.store.list_all(keys.session_prefix(session_id) + "agents/")
        files: dict[str, dict[int, str]] = defaultdict(dict)
        agent_files: dict[str, str] = {}
        base = keys.session_prefix(session_id) + "agents/agent_"
        for item in items:
            rest = item.key[len(base) :] if item.key.startswith(base) else ""
            agent_id, _, tail = rest.partition("/")
            if not ID_PATTERN.fullmatch(agent_id):
                continue
            if tail == AGENT_JSON:
                agent_files[agent_id] = item.key
            elif tail.startswith("messages/") and (index := parse_message_index(tail)) is not None:
                files[agent_id][index] = item.key
        head = await self._build_head(keys, session_id, session_doc, agent_files, files, now)
        return await self._commit_adopted(keys, head, now)

    async def _build_head(
        self,
        keys: TenantKeys,
        session_id: str,
        session_doc: dict[str, Any],
        agent_files: dict[str, str],
        files: dict[str, dict[int, str]],
        now: datetime,
    ) -> Head:
        agent_ids = sorted(set(agent_files) | set(files))
        agent_docs = await asyncio.gather(
            *(
                self._read_json(agent_files[a], session_id, "agent")
                for a in agent_ids
                if a in agent_files
            )
        )
        by_agent = dict(zip([a for a in agent_ids if a in agent_files], agent_docs, strict=True))
        created = _moment(session_doc.get("created_at"), now)
        head = Head(
            session_id=session_id,
            incarnation=self._ctx.ids.random_hex(4),
            revision=1,
            created_at=created,
            updated_at=_moment(session_doc.get("updated_at"), created),
            status=Status.NEW,
            agent_id="default" if "default" in agent_ids or not agent_ids else agent_ids[0],
            agents={},
        )
        for agent_id in agent_ids:
            agent = _agent_from_file(agent_id, by_agent.get(agent_id), now)
            messages = await self._read_messages(session_id, agent_id, files.get(agent_id, {}), now)
            agent.message_count = messages[-1].index + 1 if messages else 0
            head.agents[agent_id] = agent
            if messages:
                self._add_adopted_turn(head, agent_id, messages, now)
        if not head.agents:
            head.agents[head.agent_id] = Agent(
                agent_id=head.agent_id, created_at=now, updated_at=now
            )
        if head.turn_count:
            head.status = Status.FINISHED
        return head

    async def _read_messages(
        self, session_id: str, agent_id: str, files: dict[int, str], now: datetime
    ) -> list[StoredMessage]:
        indices = sorted(files)
        documents = await asyncio.gather(
            *(self._read_json(files[i], session_id, "message") for i in indices)
        )
        return [
            stored_message(doc, agent_id=agent_id, index=i, session_id=session_id, now=now)
            for i, doc in zip(indices, documents, strict=True)
            if doc is not None
        ]

    @staticmethod
    def _add_adopted_turn(
        head: Head, agent_id: str, messages: list[StoredMessage], now: datetime
    ) -> None:
        number = head.turn_count + 1
        head.turn_count = number
        head.tail.append(
            Turn(
                turn_id=f"t{number:06d}",
                number=number,
                agent_id=agent_id,
                engine="adopted",
                status=TurnStatus.FINISHED,
                started_at=messages[0].created_at,
                ended_at=messages[-1].updated_at,
                first_index=messages[0].index,
                messages=messages,
                events=[
                    Event(
                        time=now,
                        type="messages.adopted",
                        data={
                            "first": messages[0].index,
                            "count": len(messages),
                            "from": "strands",
                        },
                    )
                ],
            )
        )

    async def _commit_adopted(
        self, keys: TenantKeys, head: Head, now: datetime
    ) -> tuple[Head, str]:
        ctx = self._ctx
        compaction = await history.plan_compaction(
            head,
            pack_key=lambda level, first, last: keys.pack(
                head.session_id, f"p{level}-{first:06d}-{last:06d}-{ctx.ids.random_hex(4)}"
            ),
            load=lambda ref: ctx.repo.load_pack(keys, head, ref),
        )
        if compaction is not None:
            sizes = await asyncio.gather(*(ctx.repo.write_pack(p, k) for k, p in compaction.writes))
            size_of = {
                key: size for (key, _), (_, size) in zip(compaction.writes, sizes, strict=True)
            }
            head.packs = [
                r.model_copy(update={"size": size_of.get(r.key, r.size)}) for r in compaction.packs
            ]
            head.tail = compaction.tail
        head.index_segment = await ctx.index.segment_for_new_session(keys)
        head.index_stamp = index_stamp(head, now)
        head.inbox_stamp = inbox_stamp(head, now)  # no reviews yet: nothing in the inbox
        try:
            etag = await ctx.repo.create_head(keys, head)
        except AlreadyExists:
            # Another replica adopted it at the same time; use theirs.
            return await ctx.repo.read_head(keys, head.session_id)
        log.info("adopted a Strands session", extra={"session_id": head.session_id})
        if not await ctx.index.write_entry(keys, head, now):
            head.index_stamp = None  # repaired by the next commit or Get
        return head, etag

    # -- Strands appends to a known session -----------------------------------

    async def appended(
        self, keys: TenantKeys, head: Head, agent_id: str, start: int
    ) -> tuple[list[StoredMessage], Agent | None]:
        """Messages a Strands writer appended from ``start`` on, and its agent.json.

        Stops at the first missing index or at a file sessiond wrote (a fenced
        runner's leftover, which the caller handles as such).
        """
        now = self._ctx.clock.now()
        sid = head.session_id
        found: list[StoredMessage] = []
        for index in range(start, start + MAX_APPENDED_PROBES):
            document = await self._read_json(keys.message(sid, agent_id, index), sid, "message")
            if document is None or strands.marker_of(document) is not None:
                break
            found.append(
                stored_message(document, agent_id=agent_id, index=index, session_id=sid, now=now)
            )
        if not found:  # nothing appended: spare the agent.json read
            return found, None
        agent_doc = await self._read_json(keys.agent_json(sid, agent_id), sid, "agent")
        agent = _agent_from_file(agent_id, agent_doc, now) if agent_doc else None
        return found, agent

    # -- discovery for List --------------------------------------------------

    async def discover(self, keys: TenantKeys, *, wait: bool) -> None:
        """Adopts (or re-indexes) sessions the listing index does not know.

        Runs at most once per ``discovery_interval`` per tenant and replica.
        With ``wait`` the caller waits for it; otherwise it runs in the background.
        """
        last = self._discovered.get(keys.tenant)
        if last is not None and time.monotonic() - last < self._interval:
            return
        self._discovered[keys.tenant] = time.monotonic()
        if wait:
            await self._discover(keys)
        else:
            self._ctx.background.spawn(self._discover(keys))

    async def _discover(self, keys: TenantKeys) -> None:
        ctx = self._ctx
        with store_errors():
            prefixes = await ctx.repo.store.list_prefixes(keys.root + "session_")
        start = len(keys.root) + len("session_")
        ids = [p[start:-1] for p in prefixes if ID_PATTERN.fullmatch(p[start:-1])]
        if not ids:
            return
        newest = await ctx.index.newest_number(keys)
        segments = await asyncio.gather(
            *(ctx.index.read_segment(keys, n) for n in range(newest + 1))
        )
        known = {sid for segment in segments for sid in segment.entries}
        missing = [sid for sid in ids if sid not in known]
        gate = asyncio.Semaphore(4)

        async def one(sid: str) -> None:
            async with gate:
                try:
                    head, _ = await ctx.repo.read_head(keys, sid)  # adopts Strands sessions
                    await ctx.index.write_entry(keys, head, ctx.clock.now())
                except (SessionNotFound, SessionAlreadyExists):
                    pass
                except Exception:
                    log.warning(
                        "could not adopt a session", extra={"session_id": sid}, exc_info=True
                    )

        await asyncio.gather(*(one(sid) for sid in missing))


class AppendProbe:
    """A look for a Strands writer's appends at ``message_<start>``, running in a task."""

    def __init__(self, agent_id: str, start: int, task: asyncio.Task[Any]) -> None:
        self.agent_id = agent_id
        self.start = start
        self._task = task

    @classmethod
    def start(cls, adoption: Adoption, keys: TenantKeys, head: Head, agent_id: str) -> AppendProbe:
        """Starts probing from the agent's committed message count in ``head``."""
        start = head.agents[agent_id].message_count
        task = asyncio.ensure_future(adoption.appended(keys, head, agent_id, start))
        return cls(agent_id, start, task)

    async def result(self) -> tuple[list[StoredMessage], Any]:
        """The appended messages and Strands' agent.json (see ``Adoption.appended``)."""
        return await self._task

    def cancel(self) -> None:
        """Drops the probe (its result is not needed)."""
        self._task.cancel()
        # A cancelled or failed probe must not log "exception never retrieved".
        self._task.add_done_callback(lambda task: task.cancelled() or task.exception())
