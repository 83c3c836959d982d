"""Bundles on local disk: the spool directory, hashing writers, tar.gz streaming.

Export builds the bundle's files in a temporary directory and Import unpacks
into one, so memory stays bounded by a chunk or a session, never by the
bundle. Everything here is blocking; callers run it with ``asyncio.to_thread``
(except :func:`stream_tar`, which drives a worker thread itself).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import shutil
import tarfile
import tempfile
import threading
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import BinaryIO

from sessiond.server.domain.bundle.format import CHUNK_BYTES, FileEntry

#: gzip level: 6 is zlib's default trade-off; 9 costs ~2x CPU for a few percent.
COMPRESS_LEVEL = 6
#: Chunks buffered between the tar thread and the RPC stream.
PIPE_DEPTH = 4
COPY_BYTES = 1024 * 1024


class HashingFile:
    """A file being written, with its sha256 and size kept up to date."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = open(path, "wb")
        self._sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        """Appends bytes."""
        self._file.write(data)
        self._sha.update(data)
        self.size += len(data)

    def close(self) -> FileEntry:
        """Closes the file; returns its manifest entry."""
        self._file.close()
        return FileEntry(self._sha.hexdigest(), self.size)


class Spool:
    """A temporary directory holding one bundle's files under ``files/``."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="sessiond-bundle-"))
        self.files = self.root / "files"
        self.files.mkdir()

    def path(self, bundle_path: str) -> Path:
        """The local path of a bundle file (bundle paths are checked before they get here)."""
        return self.files / bundle_path

    def write_file(self, bundle_path: str, data: bytes) -> FileEntry:
        """Writes a whole (small) file; returns its manifest entry."""
        writer = HashingFile(self.path(bundle_path))
        writer.write(data)
        return writer.close()

    def read_range(self, bundle_path: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of a file (one session's lines of a ``.jsonl``)."""
        with open(self.path(bundle_path), "rb") as file:
            file.seek(start)
            return file.read(end - start)

    def remove(self) -> None:
        """Deletes the directory and everything in it."""
        shutil.rmtree(self.root, ignore_errors=True)


def copy_hashing(source: BinaryIO, target: Path, limit: int) -> FileEntry:
    """Copies at most ``limit`` bytes from ``source`` into ``target``, hashing them."""
    writer = HashingFile(target)
    try:
        remaining = limit
        while remaining > 0:
            block = source.read(min(COPY_BYTES, remaining))
            if not block:
                break
            writer.write(block)
            remaining -= len(block)
    finally:
        entry = writer.close()
    return entry


# -- tar.gz streaming ---------------------------------------------------------


class _Stopped(Exception):
    """The consumer went away; the producer thread stops writing."""


class ChunkPipe:
    """Hands bytes written by a worker thread to the event loop in fixed-size chunks.

    The thread blocks once :data:`PIPE_DEPTH` chunks wait unread, so a slow
    client slows the tar thread down instead of growing a buffer.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, chunk_bytes: int = CHUNK_BYTES) -> None:
        self._loop = loop
        self._chunk = chunk_bytes
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._slots = threading.Semaphore(PIPE_DEPTH)
        self._stopped = threading.Event()
        self._buffer = bytearray()

    # -- the worker thread's side (a write-only file object for gzip) --------

    def write(self, data: bytes) -> int:
        """Buffers ``data`` and sends every full chunk."""
        self._buffer += data
        while len(self._buffer) >= self._chunk:
            self._send(bytes(self._buffer[: self._chunk]))
            del self._buffer[: self._chunk]
        return len(data)

    def flush(self) -> None:
        """Nothing to do: chunks go out as they fill."""

    def _send(self, item: bytes | None) -> None:
        while not self._slots.acquire(timeout=0.2):
            if self._stopped.is_set():
                raise _Stopped()
        if self._stopped.is_set():
            raise _Stopped()
        self._loop.call_soon_threadsafe(self._queue.put_nowait, item)

    def finish(self) -> None:
        """Sends the last partial chunk."""
        if self._buffer:
            self._send(bytes(self._buffer))
            self._buffer.clear()

    def end(self) -> None:
        """Marks the end of the stream (always delivered, even after a failure)."""
        self._loop.call_soon_threadsafe(self._queue.put_nowait, None)

    # -- the event loop's side ---------------------------------------------

    def stop(self) -> None:
        """Makes the producer give up (the consumer is gone)."""
        self._stopped.set()

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yields chunks until the producer ends."""
        while True:
            item = await self._queue.get()
            if item is None:
                return
            self._slots.release()
            yield item


def write_tar(pipe: ChunkPipe, spool: Spool, paths: Iterable[str], mtime: int) -> None:
    """Writes the bundle's files as a tar.gz into ``pipe`` (runs in a worker thread).

    Members get fixed ownership, mode and mtime, so equal files make an equal
    archive; ``tarfile`` in stream mode never seeks or holds a file.
    """
    try:
        with (
            gzip.GzipFile(fileobj=pipe, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w|", format=tarfile.PAX_FORMAT) as tar,
        ):
            for bundle_path in paths:
                local = spool.path(bundle_path)
                info = tarfile.TarInfo(bundle_path)
                info.size = os.path.getsize(local)
                info.mtime = mtime
                info.mode = 0o644
                with open(local, "rb") as file:
                    tar.addfile(info, file)
        pipe.finish()
    except _Stopped:
        return
    finally:
        pipe.end()


async def stream_tar(spool: Spool, paths: list[str], mtime: int) -> AsyncIterator[bytes]:
    """Yields the tar.gz of ``paths`` (in that order) in chunks of :data:`CHUNK_BYTES`."""
    pipe = ChunkPipe(asyncio.get_running_loop())
    producer = asyncio.ensure_future(asyncio.to_thread(write_tar, pipe, spool, paths, mtime))
    try:
        async for chunk in pipe.chunks():
            yield chunk
        await producer
    finally:
        pipe.stop()
        # Wait for the thread so the spool is not deleted under it.
        await asyncio.wait({producer})
