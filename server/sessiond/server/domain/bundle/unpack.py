"""Getting a bundle onto local disk, verified: from tar.gz chunks or from a store prefix.

Nothing is trusted before it is checked: every tar member must be a plain
file with a safe relative path, listed in the manifest (which comes first),
with the listed size and sha256; no listed file may be missing. Any failure
is ``BundleInvalid``, raised before Import writes anything to the store.
"""

from __future__ import annotations

import asyncio
import gzip
import tarfile
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from sessiond.errors import BundleInvalid
from sessiond.server.domain.bundle.format import (
    MANIFEST,
    MAX_MANIFEST_BYTES,
    PART_SUFFIX,
    Manifest,
    check_member_path,
    parse_manifest,
    part_key,
)
from sessiond.server.domain.bundle.parallel import for_each
from sessiond.server.domain.bundle.spool import HashingFile, Spool, copy_hashing
from sessiond.server.domain.repository import store_errors
from sessiond.server.storage.port import NotFound, ObjectStore

#: Received chunks are written to disk in batches of about this size.
WRITE_BATCH = 1024 * 1024
#: Parallel GETs when reading a bundle from a store prefix.
PARALLEL_GETS = 8
ARCHIVE = "bundle.tar.gz"


async def receive(chunks: AsyncIterator[bytes], spool: Spool) -> Path:
    """Writes the streamed tar.gz to a file in the spool (never all in memory)."""
    path = spool.root / ARCHIVE
    file: BinaryIO = await asyncio.to_thread(open, path, "wb")
    try:
        buffer = bytearray()
        async for chunk in chunks:
            buffer += chunk
            if len(buffer) >= WRITE_BATCH:
                await asyncio.to_thread(file.write, bytes(buffer))
                buffer.clear()
        if buffer:
            await asyncio.to_thread(file.write, bytes(buffer))
    finally:
        await asyncio.to_thread(file.close)
    return path


def _verified(manifest: Manifest, seen: set[str]) -> None:
    missing = sorted(set(manifest.files) - seen)
    if missing:
        raise BundleInvalid("a file listed in the manifest is missing", path=missing[0][:200])


def extract(archive: Path, spool: Spool) -> Manifest:
    """Unpacks and verifies a tar.gz into the spool (blocking).

    The manifest must be the first member, so every later member is checked
    against it (listed, expected size) before a byte of it is written.
    """
    try:
        return _extract(archive, spool)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise BundleInvalid("the bundle is not a readable tar.gz") from exc


def _extract(archive: Path, spool: Spool) -> Manifest:
    manifest: Manifest | None = None
    seen: set[str] = set()
    with tarfile.open(archive, mode="r|gz") as tar:
        for member in tar:
            name = member.name
            if not member.isreg():
                raise BundleInvalid("a bundle member is not a plain file", path=name[:200])
            check_member_path(name)
            source = tar.extractfile(member)
            assert source is not None  # a regular file always has data
            if manifest is None:
                if name != MANIFEST or member.size > MAX_MANIFEST_BYTES:
                    raise BundleInvalid("the bundle must start with its manifest", path=name[:200])
                body = source.read()
                manifest = parse_manifest(body)
                spool.write_file(MANIFEST, body)
                continue
            entry = manifest.files.get(name)
            if entry is None:
                raise BundleInvalid("a bundle file is not listed in the manifest", path=name[:200])
            if name in seen:
                raise BundleInvalid("a bundle file appears twice", path=name[:200])
            if member.size != entry.size:
                raise BundleInvalid("a bundle file's size does not match", path=name[:200])
            if copy_hashing(source, spool.path(name), member.size) != entry:
                raise BundleInvalid("a bundle file's checksum does not match", path=name[:200])
            seen.add(name)
    if manifest is None:
        raise BundleInvalid("the bundle is empty")
    _verified(manifest, seen)
    return manifest


async def fetch(store: ObjectStore, prefix: str, spool: Spool) -> Manifest:
    """Reads and verifies a bundle stored under ``prefix`` into the spool.

    Raises:
        BundleInvalid: No manifest, unlisted or missing objects, a size or
            checksum mismatch.
    """
    with store_errors():
        listed = await store.list_all(prefix)
    sizes = {item.key[len(prefix) :]: item.size for item in listed}
    del listed
    if MANIFEST not in sizes or sizes[MANIFEST] > MAX_MANIFEST_BYTES:
        raise BundleInvalid("there is no bundle at this prefix", path=MANIFEST)
    try:
        with store_errors():
            body = (await store.get(prefix + MANIFEST)).body
    except NotFound:
        raise BundleInvalid("there is no bundle at this prefix", path=MANIFEST) from None
    manifest = parse_manifest(body)
    await asyncio.to_thread(spool.write_file, MANIFEST, body)
    objects = _objects_of(manifest, sizes)

    async def download(path: str) -> None:
        writer = await asyncio.to_thread(HashingFile, spool.path(path))
        try:
            for name in objects[path]:
                try:
                    with store_errors():
                        data = (await store.get(prefix + name)).body
                except NotFound:
                    raise BundleInvalid("a bundle object disappeared", path=name[:200]) from None
                await asyncio.to_thread(writer.write, data)
                del data
        finally:
            entry = await asyncio.to_thread(writer.close)
        if entry != manifest.files[path]:
            raise BundleInvalid("a bundle file's checksum does not match", path=path[:200])

    await for_each(sorted(objects), download, PARALLEL_GETS)
    return manifest


def _objects_of(manifest: Manifest, sizes: dict[str, int]) -> dict[str, list[str]]:
    """Maps each listed file to its object(s): itself, or its parts in order."""
    whole: set[str] = set()
    parts: dict[str, list[int]] = {}
    for name in sizes:
        if name == MANIFEST:
            continue
        check_member_path(name)
        if name in manifest.files:
            whole.add(name)
            continue
        match = PART_SUFFIX.match(name)
        if match is None or match["path"] not in manifest.files:
            raise BundleInvalid("a bundle file is not listed in the manifest", path=name[:200])
        parts.setdefault(match["path"], []).append(int(match["number"]))
    objects: dict[str, list[str]] = {}
    for path, entry in manifest.files.items():
        numbers = sorted(parts.get(path, []))
        if path in whole and numbers:
            raise BundleInvalid("a bundle file is stored both whole and in parts", path=path)
        if path in whole:
            objects[path] = [path]
        elif numbers and numbers == list(range(len(numbers))):
            objects[path] = [part_key(path, n) for n in numbers]
        else:
            raise BundleInvalid("a file listed in the manifest is missing", path=path[:200])
        if sum(sizes[name] for name in objects[path]) != entry.size:
            raise BundleInvalid("a bundle file's size does not match", path=path[:200])
    return objects
