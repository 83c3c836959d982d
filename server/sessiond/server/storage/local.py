"""An object store in a local directory: the embedded default.

Objects are plain files at ``<root>/<key>``, so Strands' FileSessionManager
can read the same tree. Nothing else is ever written next to them: temp files
live in ``<root>/.sessiond-tmp/`` and are moved into place with
``os.replace``; lock files live in ``<root>/.sessiond-locks/``. Conditional
writes are atomic across processes on one machine: check-and-replace runs
under an exclusive ``fcntl.flock`` on one of 64 lock files striped by key
hash (plus an ``asyncio.Lock`` per stripe, so waiting does not tie up
threads). All blocking work runs in ``asyncio.to_thread``.

A local write is never ambiguous, so ``put_id`` is not stored and
``ObjectMeta.put_id`` is always ``None`` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from sessiond.server.storage.memory import check_limit, same_etag
from sessiond.server.storage.port import (
    AlreadyExists,
    Create,
    GetResult,
    ListPage,
    NotFound,
    NotModified,
    ObjectMeta,
    ObjectStore,
    Overwrite,
    PreconditionFailed,
    PutMode,
    RequestObserver,
    StoreError,
    StoreUnavailable,
    Update,
)

RESERVED_PREFIX = ".sessiond-"
TMP_DIR = ".sessiond-tmp"
LOCK_DIR = ".sessiond-locks"
_STRIPES = 64
_STALE_TMP_SECONDS = 3600
_ETAG_CACHE_MAX = 65536

T = TypeVar("T")


def check_key(key: str) -> None:
    """Refuses keys that could escape the root or collide with internal files.

    Raises:
        ValueError: ``key`` is empty, absolute, has an empty, ``.`` or ``..``
            segment, contains NUL or a backslash, or starts with ``.sessiond-``.
    """
    if not isinstance(key, str) or not key:
        raise ValueError("empty key")
    if "\0" in key or "\\" in key:
        raise ValueError(f"key contains NUL or backslash: {key!r}")
    if key.startswith("/"):
        raise ValueError(f"absolute key: {key!r}")
    segments = key.split("/")
    if any(seg in ("", ".", "..") for seg in segments):
        raise ValueError(f"key has an empty, '.' or '..' segment: {key!r}")
    if segments[0].startswith(RESERVED_PREFIX):
        raise ValueError(f"key uses the reserved {RESERVED_PREFIX!r} prefix: {key!r}")


def _stamp(st: os.stat_result) -> tuple[int, int, int]:
    # A replaced file is a new inode, so (inode, mtime, size) identifies content.
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _mtime(st: os.stat_result) -> datetime:
    return datetime.fromtimestamp(st.st_mtime_ns / 1e9, tz=UTC)


class LocalDirectoryStore(ObjectStore):
    """Objects as files under one directory.

    Attributes:
        root: The root directory.
        request_counts: Requests made, by operation.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        durable: bool = True,
        observer: RequestObserver | None = None,
    ) -> None:
        """Creates a store rooted at ``root`` (created on first use).

        Args:
            root: The directory.
            durable: ``fsync`` each temp file before renaming it into place and
                the parent directory after, so a crash never leaves a truncated
                object. Tests may turn it off for speed.
            observer: Called as ``observer(op, outcome)`` once per request.
        """
        self.root = Path(os.path.abspath(root))
        self._tmp = self.root / TMP_DIR
        self._lockdir = self.root / LOCK_DIR
        self._durable = durable
        self._observer = observer
        self._locks = [asyncio.Lock() for _ in range(_STRIPES)]
        self._etags: dict[str, tuple[tuple[int, int, int], str]] = {}
        self._dirs_ready = False
        self.request_counts: Counter[str] = Counter()

    # -- plumbing ---------------------------------------------------------

    def _observe(self, op: str, outcome: str) -> None:
        self.request_counts[op] += 1
        if self._observer is not None:
            self._observer(op, outcome)

    def _ensure_dirs(self) -> None:
        if not self._dirs_ready:
            for d in (self.root, self._tmp, self._lockdir):
                d.mkdir(parents=True, exist_ok=True)
            self._dirs_ready = True

    def _stripe(self, key: str) -> int:
        digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
        return int.from_bytes(digest, "big") % _STRIPES

    @contextlib.contextmanager
    def _flock(self, stripe: int) -> Iterator[None]:
        fd = os.open(self._lockdir / f"{stripe:02d}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _etag_of(self, path: str, fd: int, st: os.stat_result, body: bytes | None) -> str:
        cached = self._etags.get(path)
        if cached is not None and cached[0] == _stamp(st):
            return cached[1]
        if body is None:
            with os.fdopen(os.dup(fd), "rb") as f:
                body = f.read()
        etag = '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'
        if len(self._etags) >= _ETAG_CACHE_MAX:
            self._etags.clear()
        self._etags[path] = (_stamp(st), etag)
        return etag

    def _read(self, key: str, *, want_body: bool) -> tuple[bytes | None, ObjectMeta]:
        """Reads one file; raises NotFound when it is missing or not a regular file."""
        path = str(self.root / key)
        try:
            # O_NONBLOCK: opening a stray FIFO must not hang the thread.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except (FileNotFoundError, NotADirectoryError):
            raise NotFound(key) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise NotFound(key)
            body = None
            if want_body:
                with os.fdopen(os.dup(fd), "rb") as f:
                    body = f.read()
            etag = self._etag_of(path, fd, st, body)
        finally:
            os.close(fd)
        size = st.st_size if body is None else len(body)
        return body, ObjectMeta(key, etag, size, _mtime(st))

    async def _observed(self, op: str, key: str, work: Awaitable[T]) -> T:
        """Awaits ``work``, observes its outcome and sanitises OS errors."""
        try:
            result = await work
        except NotFound:
            self._observe(op, "not_found")
            raise
        except NotModified:
            self._observe(op, "not_modified")
            raise
        except AlreadyExists:
            self._observe(op, "already_exists")
            raise
        except PreconditionFailed:
            self._observe(op, "precondition_failed")
            raise
        except (StoreError, ValueError):
            self._observe(op, "error")
            raise
        except OSError as exc:
            self._observe(op, "error")
            name = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            raise StoreUnavailable(f"local {op} {key!r}: {name}") from exc
        self._observe(op, "ok")
        return result

    def _run(self, op: str, key: str, fn: Callable[[], T]) -> Awaitable[T]:
        return self._observed(op, key, asyncio.to_thread(fn))

    # -- reads ------------------------------------------------------------

    async def get(self, key: str, *, if_none_match: str | None = None) -> GetResult:
        """Reads an object (see :meth:`ObjectStore.get`)."""
        check_key(key)

        def read() -> GetResult:
            body, meta = self._read(key, want_body=True)
            if if_none_match is not None and same_etag(if_none_match, meta.etag):
                raise NotModified(key)
            return GetResult(body=body or b"", meta=meta)

        return await self._run("get", key, read)

    async def head(self, key: str) -> ObjectMeta:
        """Reads an object's metadata (see :meth:`ObjectStore.head`)."""
        check_key(key)
        return await self._run("head", key, lambda: self._read(key, want_body=False)[1])

    # -- writes -----------------------------------------------------------

    def _write_temp(self, body: bytes) -> tuple[str, str]:
        self._ensure_dirs()
        tmp = str(self._tmp / f"{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view) :]
            if self._durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        return tmp, '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'

    def _commit(self, key: str, tmp: str, etag: str, mode: PutMode) -> ObjectMeta:
        try:
            return self._commit_locked(key, tmp, etag, mode)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)  # only still there when the put failed

    def _commit_locked(self, key: str, tmp: str, etag: str, mode: PutMode) -> ObjectMeta:
        path = self.root / key
        with self._flock(self._stripe(key)):
            if isinstance(mode, Create):
                if path.exists():
                    raise AlreadyExists(key) if path.is_file() else self._collides(key)
            elif isinstance(mode, Update):
                current = self._read(key, want_body=False)[1]  # raises NotFound
                if not same_etag(current.etag, mode.etag):
                    raise PreconditionFailed(key)
            elif not isinstance(mode, Overwrite):
                raise TypeError(f"unknown put mode {mode!r}")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, path)
            except (FileExistsError, NotADirectoryError, IsADirectoryError):
                raise self._collides(key) from None
            if self._durable:
                self._fsync_dir(path.parent)
            # Still under the lock, so the file is the one we renamed.
            st = os.stat(path)
            self._etags[str(path)] = (_stamp(st), etag)
            return ObjectMeta(key, etag, st.st_size, _mtime(st))

    def _collides(self, key: str) -> ValueError:
        return ValueError(f"key collides with a directory or file of another key: {key!r}")

    def _fsync_dir(self, directory: Path) -> None:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def put(
        self, key: str, body: bytes, *, mode: PutMode, put_id: str | None = None
    ) -> ObjectMeta:
        """Writes an object (see :meth:`ObjectStore.put`); ``put_id`` is ignored."""
        check_key(key)
        body = bytes(body)

        async def write() -> ObjectMeta:
            # The temp file is written outside the lock to keep the critical
            # section to check + rename. A temp file orphaned by cancellation
            # is removed by a later start().
            tmp, etag = await asyncio.to_thread(self._write_temp, body)
            async with self._locks[self._stripe(key)]:
                return await asyncio.to_thread(self._commit, key, tmp, etag, mode)

        return await self._observed("put", key, write())

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Deletes an object; a missing key is fine unless ``if_match`` is given.

        Empty directories stay.
        """
        check_key(key)

        def unlink() -> None:
            path = self.root / key
            self._ensure_dirs()
            with self._flock(self._stripe(key)):
                if if_match is not None:
                    current = self._read(key, want_body=False)[1]  # raises NotFound
                    if not same_etag(current.etag, if_match):
                        raise PreconditionFailed(key)
                try:
                    if path.is_file():
                        os.unlink(path)
                        if self._durable:
                            self._fsync_dir(path.parent)
                except (FileNotFoundError, NotADirectoryError):
                    pass

        async with self._locks[self._stripe(key)]:
            await self._run("delete", key, unlink)

    # -- listing ----------------------------------------------------------

    def _walk(
        self, directory: str, key_base: str, name_prefix: str, start_after: str | None
    ) -> Iterator[tuple[str, str]]:
        """Yields ``(key, path)`` of files below ``directory`` in ascending key order."""
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except (FileNotFoundError, NotADirectoryError):
            return
        top = key_base == ""
        rows = []
        for entry in entries:
            if not entry.name.startswith(name_prefix):
                continue
            if top and entry.name.startswith(RESERVED_PREFIX):
                continue  # our temp and lock directories
            is_dir = entry.is_dir(follow_symlinks=False)
            if not is_dir and not entry.is_file(follow_symlinks=False):
                continue
            # Sorting a directory as "name/" makes an in-order walk yield keys
            # in byte order ("a.txt" < "a/b" because "." < "/").
            rows.append((entry.name + "/" if is_dir else entry.name, entry.path, is_dir))
        rows.sort()
        for sort_name, path, is_dir in rows:
            key = key_base + sort_name
            if is_dir:
                # Skip a subtree whose every key is <= start_after.
                if start_after is not None and key < start_after:
                    if not start_after.startswith(key):
                        continue
                yield from self._walk(path, key, "", start_after)
            elif start_after is None or key > start_after:
                yield key, path

    def _list_sync(self, prefix: str, start_after: str | None, limit: int) -> ListPage:
        dir_part, _, partial = prefix.rpartition("/")
        if dir_part:
            try:
                check_key(dir_part)
            except ValueError:
                return ListPage()  # no valid key can start with this prefix
        if "\\" in partial or "\0" in partial:
            return ListPage()
        directory = str(self.root / dir_part) if dir_part else str(self.root)
        key_base = dir_part + "/" if dir_part else ""
        items: list[ObjectMeta] = []
        more = False
        for key, _path in self._walk(directory, key_base, partial, start_after):
            if len(items) == limit:
                more = True
                break
            try:
                items.append(self._read(key, want_body=False)[1])
            except NotFound:
                continue  # deleted while we walked
        return ListPage(items=items, next_start_after=items[-1].key if more else None)

    async def list(
        self, prefix: str, *, start_after: str | None = None, limit: int = 1000
    ) -> ListPage:
        """Lists objects by prefix (see :meth:`ObjectStore.list`).

        Walks only the deepest directory the prefix names; the ``.sessiond-*``
        directories are never listed.
        """
        check_limit(limit)
        return await self._run("list", prefix, lambda: self._list_sync(prefix, start_after, limit))

    async def list_prefixes(self, prefix: str) -> list[str]:
        """The child directories of ``prefix`` (see :meth:`ObjectStore.list_prefixes`).

        Unlike S3, an empty directory counts (``ensure_prefix`` makes some).
        """

        def scan() -> list[str]:
            dir_part, _, partial = prefix.rpartition("/")
            if dir_part:
                try:
                    check_key(dir_part)
                except ValueError:
                    return []
            directory = self.root / dir_part if dir_part else self.root
            base = dir_part + "/" if dir_part else ""
            try:
                entries = list(os.scandir(directory))
            except (FileNotFoundError, NotADirectoryError):
                return []
            return sorted(
                f"{base}{entry.name}/"
                for entry in entries
                if entry.name.startswith(partial)
                and not (not dir_part and entry.name.startswith(RESERVED_PREFIX))
                and entry.is_dir(follow_symlinks=False)
            )

        return await self._run("list", prefix, scan)

    # -- lifecycle --------------------------------------------------------

    async def ensure_prefix(self, prefix: str) -> None:
        """Creates the directory ``<root>/<prefix>`` (not a store request)."""
        prefix = prefix.rstrip("/")
        if prefix:
            check_key(prefix)
        await asyncio.to_thread(os.makedirs, self.root / prefix, exist_ok=True)

    def _start_sync(self) -> None:
        self._ensure_dirs()
        cutoff = time.time() - _STALE_TMP_SECONDS
        with os.scandir(self._tmp) as it:
            for entry in it:
                # Only old files: another process may be writing right now.
                with contextlib.suppress(OSError):
                    if entry.stat(follow_symlinks=False).st_mtime < cutoff:
                        os.unlink(entry.path)

    async def start(self) -> None:
        """Creates the root and removes temp files orphaned over an hour ago."""
        await asyncio.to_thread(self._start_sync)
