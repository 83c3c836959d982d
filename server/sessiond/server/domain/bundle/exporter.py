"""Export: sessions → a bundle, streamed as tar.gz chunks or written under a store prefix.

Sessions are read one at a time (head, history packs, snapshots, then the
Strands files with bounded parallel GETs) and appended to files in a spool
directory, hashing as they are written. Only then is the manifest known, and
the bundle is streamed from disk: memory stays bounded by one session and a
few chunks, whatever the bundle's size.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sessiond.errors import BundleInvalid, CorruptObject, SessionNotFound
from sessiond.server.domain.bundle import lines
from sessiond.server.domain.bundle.format import (
    MANIFEST,
    PART_BYTES,
    Manifest,
    check_member_path,
    part_key,
    snapshot_path,
    strands_dir,
)
from sessiond.server.domain.bundle.parallel import for_each
from sessiond.server.domain.bundle.spool import Spool, stream_tar
from sessiond.server.domain.bundle.writer import BundleWriter
from sessiond.server.domain.codec import decode
from sessiond.server.domain.context import ServiceContext
from sessiond.server.domain.keys import TenantKeys
from sessiond.server.domain.records import Head, Pack, Turn
from sessiond.server.domain.repository import store_errors
from sessiond.server.domain.validation import check_id
from sessiond.server.storage.port import OVERWRITE, NotFound

log = logging.getLogger("sessiond.bundle")

#: Parallel GETs per session (Strands files, packs) and parallel PUTs to a prefix.
PARALLEL_REQUESTS = 16
#: Parallel part-sized PUTs to a destination prefix (bounds memory to this many parts).
PARALLEL_PUTS = 8
#: Progress is sent at most this often (plus once at the start and the end).
PROGRESS_SECONDS = 0.25


@dataclass(frozen=True)
class ExportProgress:
    """Sessions read so far."""

    done: int
    total: int


@dataclass(frozen=True)
class ExportChunk:
    """The next bytes of the tar.gz."""

    data: bytes


@dataclass(frozen=True)
class ExportDone:
    """The export is complete; the last event."""

    manifest: Manifest
    manifest_json: str


ExportEvent = ExportProgress | ExportChunk | ExportDone


class BundleExporter:
    """Builds bundles from a tenant's sessions."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    async def export(
        self,
        keys: TenantKeys,
        *,
        session_ids: Sequence[str],
        include_archived: bool,
        destination: str,
    ) -> AsyncIterator[ExportEvent]:
        """Exports sessions; yields progress, then chunks (streamed exports), then done.

        Args:
            keys: The tenant's keys.
            session_ids: The sessions to export; every session of the tenant when empty.
            include_archived: With no ``session_ids``, export archived sessions too.
            destination: Write the files under ``exports/<destination>/`` instead of
                streaming them (empty: stream).

        Raises:
            InvalidId: A session id or the destination is malformed.
            SessionNotFound: A requested session does not exist.
        """
        explicit = bool(session_ids)
        for sid in session_ids:
            check_id(sid, field="session_ids")
        if destination:
            check_id(destination, field="destination_prefix")
        if explicit:
            ids = sorted(set(session_ids))
            await self._check_exist(keys, ids)
        else:
            ids = await self._listed(keys, include_archived)
        # The spool lives under TMPDIR: point it at a disk, not a tmpfs.
        spool = await asyncio.to_thread(Spool)
        writer: BundleWriter | None = None
        try:
            writer = await asyncio.to_thread(BundleWriter, spool)
            yield ExportProgress(0, len(ids))
            last = time.monotonic()
            for done, sid in enumerate(ids, start=1):
                await self._add_session(keys, writer, sid, explicit, include_archived)
                if done == len(ids) or time.monotonic() - last >= PROGRESS_SECONDS:
                    last = time.monotonic()
                    yield ExportProgress(done, len(ids))
            now = self._ctx.clock.now()
            manifest = await asyncio.to_thread(writer.finish, lines.iso(now))
            text = await asyncio.to_thread(spool.path(MANIFEST).read_text, "utf-8")
            paths = [MANIFEST, *sorted(manifest.files)]
            if destination:
                await self._write_prefix(keys, destination, spool, paths)
            else:
                async for chunk in stream_tar(spool, paths, int(now.timestamp())):
                    yield ExportChunk(chunk)
            yield ExportDone(manifest, text)
        finally:
            if writer is not None:
                writer.abandon()
            await asyncio.to_thread(spool.remove)

    # -- choosing sessions -----------------------------------------------------

    async def _check_exist(self, keys: TenantKeys, ids: list[str]) -> None:
        """Fails with NOT_FOUND before anything is streamed if a requested session is missing."""

        async def check(sid: str) -> None:
            await self._ctx.repo.read_head(keys, sid)

        await for_each(ids, check, PARALLEL_REQUESTS)

    async def _listed(self, keys: TenantKeys, include_archived: bool) -> list[str]:
        """Every session of the listing index (archived ones only when asked), sorted."""
        adoption = getattr(self._ctx, "adoption", None)
        if adoption is not None:
            # As for List: sessions only Strands wrote enter the index when adopted.
            await adoption.discover(keys, wait=True)
        index = self._ctx.index
        newest = await index.newest_number(keys)
        ids: set[str] = set()
        for number in range(newest + 1):
            segment = await index.read_segment(keys, number)
            ids.update(
                entry.session_id
                for entry in segment.entries.values()
                if include_archived or not entry.archived
            )
        return sorted(ids)

    # -- one session -----------------------------------------------------------

    async def _add_session(
        self,
        keys: TenantKeys,
        writer: BundleWriter,
        sid: str,
        explicit: bool,
        include_archived: bool,
    ) -> None:
        try:
            head, _ = await self._ctx.repo.read_head(keys, sid)
        except SessionNotFound:
            if explicit:
                raise
            return  # deleted since the index was read
        if not explicit and head.archived and not include_archived:
            return  # archived since its index entry was written
        turns = await self._turns(keys, head)
        await self._snapshots(keys, writer, sid, turns)
        await asyncio.to_thread(writer.add_session, head, turns)
        del turns
        await self._strands(keys, writer, sid)

    async def _turns(self, keys: TenantKeys, head: Head) -> list[Turn]:
        """Every turn, oldest first; packs are read past the repository's cache.

        An export reads each pack once: caching it would only evict the
        packs live sessions need and hold up to the cache's size.
        """
        limit = asyncio.Semaphore(PARALLEL_REQUESTS)

        async def load(key: str) -> Pack:
            async with limit:
                try:
                    with store_errors():
                        body = (await self._ctx.repo.store.get(key)).body
                except NotFound:
                    raise CorruptObject(
                        "a history pack of this session is missing",
                        session_id=head.session_id,
                        object="pack",
                    ) from None
            return decode(Pack, body, session_id=head.session_id, what="pack")

        packs = await asyncio.gather(*(load(ref.key) for ref in head.packs))
        return [turn for pack in packs for turn in pack.turns] + list(head.tail)

    async def _snapshots(
        self, keys: TenantKeys, writer: BundleWriter, sid: str, turns: list[Turn]
    ) -> None:
        """Copies the snapshots the turns reference, one at a time (each is bounded)."""
        for turn in turns:
            if turn.snapshot is None:
                continue
            try:
                with store_errors():
                    body = (await self._ctx.repo.store.get(turn.snapshot.key)).body
            except NotFound:
                raise CorruptObject(
                    "a snapshot of this session is missing", session_id=sid, object="snapshot"
                ) from None
            path = snapshot_path(sid, lines.snapshot_name(turn))
            await asyncio.to_thread(writer.add_file, path, body)

    async def _strands(self, keys: TenantKeys, writer: BundleWriter, sid: str) -> None:
        """Copies every Strands file of the session byte for byte (not sessiond's own)."""
        prefix = keys.session_prefix(sid)
        own = keys.sessiond_prefix(sid)
        with store_errors():
            listed = await self._ctx.repo.store.list_all(prefix)

        async def copy(key: str) -> None:
            path = strands_dir(sid) + key[len(prefix) :]
            try:
                check_member_path(path)
            except BundleInvalid:
                log.warning("skipping a Strands file whose key cannot be exported: %r", key)
                return
            try:
                with store_errors():
                    body = (await self._ctx.repo.store.get(key)).body
            except NotFound:
                return  # deleted since it was listed
            await asyncio.to_thread(writer.add_file, path, body)

        wanted = [item.key for item in listed if not item.key.startswith(own)]
        del listed
        await for_each(wanted, copy, PARALLEL_REQUESTS)

    # -- destination prefix -----------------------------------------------------

    async def _write_prefix(
        self, keys: TenantKeys, destination: str, spool: Spool, paths: list[str]
    ) -> None:
        """Writes the files as objects, the manifest last, then removes stale objects.

        Files over :data:`PART_BYTES` become parts, so no write holds more than
        a part. Objects left from an earlier export to the same prefix are
        deleted once the new manifest is in place, so the prefix holds exactly
        one bundle.
        """
        store = self._ctx.repo.store
        prefix = keys.export_prefix(destination)
        with store_errors():
            before = {item.key for item in await store.list_all(prefix)}
        written: set[str] = set()

        async def put(bundle_path: str) -> None:
            local = spool.path(bundle_path)
            size = (await asyncio.to_thread(local.stat)).st_size
            # The manifest, the bundle's entry point, always stays whole.
            part = max(size, 1) if size <= PART_BYTES or bundle_path == MANIFEST else PART_BYTES
            if part >= size:
                names = [bundle_path]
            else:
                names = [part_key(bundle_path, n) for n in range(-(-size // part))]
            for number, name in enumerate(names):
                body = await asyncio.to_thread(_read_part, local, number, part)
                with store_errors():
                    await store.put(prefix + name, body, mode=OVERWRITE)
                written.add(prefix + name)

        # Each worker holds at most one part in memory.
        await for_each([p for p in paths if p != MANIFEST], put, PARALLEL_PUTS)
        await put(MANIFEST)

        async def delete(key: str) -> None:
            with store_errors():
                await store.delete(key)

        await for_each(sorted(before - written), delete, PARALLEL_REQUESTS)


def _read_part(path: Path, number: int, part_bytes: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(number * part_bytes)
        return file.read(part_bytes)
