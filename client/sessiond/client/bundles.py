"""Export bundles to files and import them from files, chunk by chunk.

Neither direction holds the bundle in memory: an export writes each chunk to
the file as it arrives (into ``<file>.part``, renamed when the manifest
arrives, removed on failure); an import reads and sends the file one chunk at
a time.
"""

# ruff: noqa: ASYNC109 - `timeout` is the gRPC deadline sent with the call, not a local wait.

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import grpc

from sessiond.client.calls import CallBase
from sessiond.client.errors import from_rpc_error
from sessiond.client.messages import EnumLike, conflict_policy
from sessiond.errors import SessiondError
from sessiond.v1 import session_service_pb2

pb = session_service_pb2

#: Size of the chunks an import sends (the server streams exports in chunks of
#: at most 256 KiB too).
CHUNK_BYTES = 256 * 1024


@dataclass(frozen=True)
class TransferProgress:
    """Progress of an export or an import, given to ``on_progress`` callbacks.

    Attributes:
        sessions_done: Export: sessions read so far.
        sessions_total: Export: sessions to read.
        bytes_done: Bytes written (export) or sent (import) so far.
        bytes_total: Import: size of the file, when known; None for an export.
    """

    sessions_done: int = 0
    sessions_total: int = 0
    bytes_done: int = 0
    bytes_total: int | None = None


#: Called after every progress message or chunk.
ProgressCallback = Callable[[TransferProgress], None]


@dataclass(frozen=True)
class ExportedBundle:
    """The outcome of :meth:`AsyncClient.export_to_file`.

    Attributes:
        path: The file written; None when written to a file object.
        size: Bytes written.
        manifest: The bundle's manifest (counts, and the whole manifest.json).
    """

    path: str | None
    size: int
    manifest: pb.ExportManifest


async def write_export(
    responses: AsyncIterator[pb.ExportResponse],
    destination: str | os.PathLike[str] | BinaryIO,
    on_progress: ProgressCallback | None = None,
) -> ExportedBundle:
    """Writes an ``Export`` stream to a file, chunk by chunk.

    Args:
        responses: The ``Export`` responses.
        destination: A path (written atomically through ``<path>.part``) or a
            binary file object (e.g. ``sys.stdout.buffer``).
        on_progress: Called after every progress message and chunk.

    Raises:
        SessiondError: The export failed, or ended without a manifest.
    """
    if isinstance(destination, str | os.PathLike):
        path = Path(destination)
        part = path.with_name(path.name + ".part")
        file = await asyncio.to_thread(open, part, "wb")
        try:
            try:
                done = await _write_stream(responses, file, on_progress)
                await asyncio.to_thread(_sync_to_disk, file)
            finally:
                file.close()
            os.replace(part, path)
        except BaseException:
            with contextlib.suppress(OSError):
                part.unlink()
            raise
        return ExportedBundle(str(path), done[0], done[1])
    size, manifest = await _write_stream(responses, destination, on_progress)
    await asyncio.to_thread(destination.flush)
    return ExportedBundle(None, size, manifest)


def _write(file: BinaryIO, chunk: bytes) -> None:
    file.write(chunk)
    file.flush()


def _sync_to_disk(file: BinaryIO) -> None:
    file.flush()
    os.fsync(file.fileno())


async def _write_stream(
    responses: AsyncIterator[pb.ExportResponse],
    file: BinaryIO,
    on_progress: ProgressCallback | None,
) -> tuple[int, pb.ExportManifest]:
    written, done, total = 0, 0, 0
    manifest: pb.ExportManifest | None = None
    async for response in responses:
        kind = response.WhichOneof("event")
        if kind == "chunk":
            await asyncio.to_thread(_write, file, response.chunk)
            written += len(response.chunk)
        elif kind == "progress":
            done, total = response.progress.sessions_done, response.progress.sessions_total
        elif kind == "manifest":
            manifest = response.manifest
        if on_progress is not None:
            on_progress(TransferProgress(done, total, written))
    if manifest is None:
        raise SessiondError("the export stream ended without a manifest")
    return written, manifest


async def read_chunks(
    source: str | os.PathLike[str] | BinaryIO,
    *,
    chunk_size: int = CHUNK_BYTES,
    on_progress: ProgressCallback | None = None,
) -> AsyncIterator[bytes]:
    """Reads a file one chunk at a time, reporting the bytes handed on.

    Args:
        source: A path, or a binary file object (e.g. ``sys.stdin.buffer``).
        chunk_size: Bytes per chunk.
        on_progress: Called after every chunk with the bytes read so far.
    """
    if isinstance(source, str | os.PathLike):
        file = await asyncio.to_thread(open, source, "rb")
        try:
            async for chunk in read_chunks(file, chunk_size=chunk_size, on_progress=on_progress):
                yield chunk
        finally:
            file.close()
        return
    total: int | None = None
    with contextlib.suppress(OSError, ValueError, AttributeError):
        info = os.fstat(source.fileno())
        total = info.st_size if stat.S_ISREG(info.st_mode) else None
    sent = 0
    while chunk := await asyncio.to_thread(source.read, chunk_size):
        sent += len(chunk)
        yield chunk
        if on_progress is not None:
            on_progress(TransferProgress(bytes_done=sent, bytes_total=total))


class BundleMethods(CallBase):
    """Export and Import, streamed or through files (part of ``AsyncClient``)."""

    async def export(
        self,
        *,
        session_ids: Iterable[str] = (),
        include_archived: bool = False,
        destination_prefix: str = "",
        timeout: float | None = None,
    ) -> AsyncIterator[pb.ExportResponse]:
        """Streams an export: progress, tar.gz chunks, then the manifest.

        Args:
            session_ids: Sessions to export; every session of the tenant when empty.
            include_archived: With no ``session_ids``: archived sessions too.
            destination_prefix: Write the bundle under this prefix of the
                server's store instead of streaming chunks.
            timeout: Deadline of the stream in seconds (none by default).
        """
        request = pb.ExportRequest(
            session_ids=list(session_ids),
            include_archived=include_archived,
            destination_prefix=destination_prefix,
        )
        call = self.stub.Export(request, timeout=timeout, metadata=self._call_metadata())
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
        finally:
            call.cancel()

    async def export_to_file(
        self,
        destination: str | os.PathLike[str] | BinaryIO,
        *,
        session_ids: Iterable[str] = (),
        include_archived: bool = False,
        on_progress: ProgressCallback | None = None,
        timeout: float | None = None,
    ) -> ExportedBundle:
        """Exports sessions into a tar.gz file, chunk by chunk (never all in memory).

        A path is written as ``<path>.part`` and renamed once complete (removed
        if the export fails).

        Args:
            destination: A path, or a binary file object.
            session_ids: Sessions to export; every session when empty.
            include_archived: With no ``session_ids``: archived sessions too.
            on_progress: Called with a ``TransferProgress`` as the export advances.
            timeout: Deadline of the stream in seconds (none by default).
        """
        responses = self.export(
            session_ids=session_ids, include_archived=include_archived, timeout=timeout
        )
        try:
            return await write_export(responses, destination, on_progress)
        finally:
            await responses.aclose()

    async def import_bundle(
        self,
        chunks: AsyncIterable[bytes] | Iterable[bytes] = (),
        *,
        source_prefix: str = "",
        on_conflict: EnumLike = 0,
        timeout: float | None = None,
    ) -> pb.ImportResponse:
        """Imports a bundle from chunks of a tar.gz, or from a prefix of the server's store.

        Args:
            chunks: The bundle's bytes in pieces (sync or async iterable).
            source_prefix: Read the bundle from this store prefix instead (no chunks).
            on_conflict: ``"fail"`` (default: ``SessionAlreadyExists``, nothing
                written) or ``"skip"`` (existing sessions left as they are).
            timeout: Deadline of the stream in seconds (none by default).

        Returns:
            ``ImportResponse``: imported and skipped session ids, message count.
        """
        options = pb.ImportOptions(
            source_prefix=source_prefix,
            on_conflict=conflict_policy(on_conflict),  # type: ignore[arg-type]
        )

        # gRPC turns an exception of the request iterator into a cancelled
        # call; it is kept here and raised instead (an unreadable file, say).
        failed: list[Exception] = []

        async def requests() -> AsyncIterator[pb.ImportRequest]:
            yield pb.ImportRequest(options=options)
            try:
                if isinstance(chunks, AsyncIterable):
                    async for chunk in chunks:
                        yield pb.ImportRequest(chunk=chunk)
                else:
                    for chunk in chunks:
                        yield pb.ImportRequest(chunk=chunk)
            except Exception as error:
                failed.append(error)
                raise

        try:
            return await self.stub.Import(
                requests(), timeout=timeout, metadata=self._call_metadata()
            )
        except grpc.aio.AioRpcError as error:
            if failed:
                raise failed[0] from None
            raise from_rpc_error(error) from None
        except asyncio.CancelledError:
            if failed:
                raise failed[0] from None
            raise

    async def import_file(
        self,
        source: str | os.PathLike[str] | BinaryIO,
        *,
        on_conflict: EnumLike = 0,
        on_progress: ProgressCallback | None = None,
        chunk_size: int = CHUNK_BYTES,
        timeout: float | None = None,
    ) -> pb.ImportResponse:
        """Imports a tar.gz bundle from a file, chunk by chunk (never all in memory).

        Args:
            source: A path, or a binary file object.
            on_conflict: ``"fail"`` (default) or ``"skip"``; see :meth:`import_bundle`.
            on_progress: Called with a ``TransferProgress`` after every chunk.
            chunk_size: Bytes per chunk.
            timeout: Deadline of the stream in seconds (none by default).
        """
        chunks = read_chunks(source, chunk_size=chunk_size, on_progress=on_progress)
        try:
            return await self.import_bundle(chunks, on_conflict=on_conflict, timeout=timeout)
        finally:
            await chunks.aclose()
