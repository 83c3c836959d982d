"""LocalDirectoryStore specifics: file layout, cross-process atomicity, key safety."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sessiond.server.storage.local import LOCK_DIR, TMP_DIR, LocalDirectoryStore
from sessiond.server.storage.port import (
    CREATE,
    OVERWRITE,
    AlreadyExists,
    NotFound,
    PreconditionFailed,
    Update,
)


def md5_etag(body: bytes) -> str:
    return '"' + hashlib.md5(body).hexdigest() + '"'


def object_files(root: Path) -> set[str]:
    """Every file under root except in the .sessiond-* directories."""
    found = set()
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith(".sessiond-"):
            found.add(rel)
    return found


@pytest.fixture
async def store(tmp_path: Path) -> LocalDirectoryStore:
    store = LocalDirectoryStore(tmp_path / "root", durable=False)
    await store.start()
    return store


async def test_objects_are_plain_files_at_their_key(store: LocalDirectoryStore) -> None:
    body = b'{"message": {"role": "user"}}'
    await store.put("s/session_a/agents/agent_b/messages/message_0.json", body, mode=CREATE)
    path = store.root / "s/session_a/agents/agent_b/messages/message_0.json"
    assert path.read_bytes() == body
    assert sorted(p.name for p in store.root.iterdir()) == [LOCK_DIR, TMP_DIR, "s"]
    assert (await store.head("s/session_a/agents/agent_b/messages/message_0.json")).put_id is None


async def test_temp_files_never_show(store: LocalDirectoryStore) -> None:
    keys = [f"m/messages/message_{i}.json" for i in range(40)]
    stop = asyncio.Event()
    listed: set[str] = set()

    async def lister() -> None:
        while not stop.is_set():
            listed.update(m.key for m in await store.list_all(""))
            await asyncio.sleep(0)

    async def writer(i: int) -> None:
        key = keys[i]
        meta = await store.put(key, b"v0", mode=CREATE)
        with pytest.raises(AlreadyExists):
            await store.put(key, b"dup", mode=CREATE)
        with pytest.raises(PreconditionFailed):
            await store.put(key, b"stale", mode=Update(md5_etag(b"zzz")))
        await store.put(key, b"v1", mode=Update(meta.etag))
        await store.put(key, b"v2", mode=OVERWRITE)

    task = asyncio.create_task(lister())
    await asyncio.gather(*(writer(i) for i in range(len(keys))))
    stop.set()
    await task
    assert listed <= set(keys)
    assert object_files(store.root) == set(keys)
    assert os.listdir(store.root / TMP_DIR) == []
    assert {m.key for m in await store.list_all("")} == set(keys)


async def test_delete_keeps_directories(store: LocalDirectoryStore) -> None:
    await store.put("s/messages/message_0.json", b"{}", mode=CREATE)
    await store.delete("s/messages/message_0.json")
    assert (store.root / "s/messages").is_dir()
    assert await store.list_all("s/") == []


async def test_ensure_prefix_creates_an_empty_directory(store: LocalDirectoryStore) -> None:
    await store.ensure_prefix("s/session_a/agents/agent_b/messages/")
    assert (store.root / "s/session_a/agents/agent_b/messages").is_dir()
    assert await store.list_all("s/") == []
    with pytest.raises(ValueError):
        await store.ensure_prefix("../escape")


@pytest.mark.parametrize(
    "key",
    ["", "/abs", "../x", "a/../b", "a/./b", "./a", "a//b", "a/", "a\\b", "a\0b", ".sessiond-tmp/x"],
)
async def test_unsafe_keys_are_refused(store: LocalDirectoryStore, key: str) -> None:
    for call in (
        lambda: store.put(key, b"x", mode=OVERWRITE),
        lambda: store.get(key),
        lambda: store.head(key),
        lambda: store.delete(key),
    ):
        with pytest.raises(ValueError):
            await call()
    assert object_files(store.root.parent) == set()


async def test_listing_never_leaves_the_root(store: LocalDirectoryStore, tmp_path: Path) -> None:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside/secret").write_bytes(b"s")
    assert (await store.list("../outside/")).items == []
    assert (await store.list("../")).items == []
    assert (await store.list(".sessiond-")).items == []


async def test_file_and_directory_keys_collide(store: LocalDirectoryStore) -> None:
    await store.put("a", b"file", mode=CREATE)
    with pytest.raises(ValueError):
        await store.put("a/b", b"x", mode=CREATE)
    await store.put("x/y", b"file", mode=CREATE)
    with pytest.raises(ValueError):
        await store.put("x", b"x", mode=CREATE)
    with pytest.raises(ValueError):
        await store.put("x", b"x", mode=OVERWRITE)
    assert os.listdir(store.root / TMP_DIR) == []


async def test_sees_files_written_by_others(store: LocalDirectoryStore) -> None:
    # Strands' FileSessionManager may write into the same tree.
    path = store.root / "s/session.json"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"one")
    meta = await store.head("s/session.json")
    assert meta.etag == md5_etag(b"one")
    path.write_bytes(b"two!")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 1_000_000))
    assert (await store.head("s/session.json")).etag == md5_etag(b"two!")
    with pytest.raises(PreconditionFailed):
        await store.put("s/session.json", b"3", mode=Update(meta.etag))


async def test_durable_mode(tmp_path: Path) -> None:
    store = LocalDirectoryStore(tmp_path / "durable")
    meta = await store.put("d/k", b"synced", mode=CREATE)
    assert (await store.get("d/k")).meta.etag == meta.etag
    await store.delete("d/k")
    with pytest.raises(NotFound):
        await store.get("d/k")


async def test_start_removes_only_stale_temp_files(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / TMP_DIR).mkdir(parents=True)
    stale, fresh = root / TMP_DIR / "old.tmp", root / TMP_DIR / "new.tmp"
    stale.write_bytes(b"")
    fresh.write_bytes(b"")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    await LocalDirectoryStore(root).start()
    assert os.listdir(root / TMP_DIR) == ["new.tmp"]


_RACER = """
import asyncio, json, os, sys, time
from sessiond.server.storage.local import LocalDirectoryStore
from sessiond.server.storage.port import CREATE, AlreadyExists, PreconditionFailed, Update

root, go, name, n_keys, n_incr = sys.argv[1], sys.argv[2], sys.argv[3], *map(int, sys.argv[4:])

async def main():
    store = LocalDirectoryStore(root, durable=False)
    open(go + "." + name, "w").close()  # ready
    while not os.path.exists(go):
        time.sleep(0.002)
    won = []
    for i in range(n_keys):
        try:
            await store.put(f"claims/k{i}", name.encode(), mode=CREATE)
            won.append(i)
        except AlreadyExists:
            pass
    done = conflicts = 0
    while done < n_incr:
        got = await store.get("counter")
        try:
            await store.put("counter", b"%d" % (int(got.body) + 1), mode=Update(got.meta.etag))
            done += 1
        except PreconditionFailed:
            conflicts += 1
    print(json.dumps({"won": won, "conflicts": conflicts}))

asyncio.run(main())
"""


async def test_processes_racing_on_one_directory(tmp_path: Path) -> None:
    root = tmp_path / "shared"
    store = LocalDirectoryStore(root, durable=False)
    await store.put("counter", b"0", mode=CREATE)
    go = tmp_path / "go"
    n_procs, n_keys, n_incr = 4, 40, 25
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _RACER,
            str(root),
            str(go),
            f"p{i}",
            str(n_keys),
            str(n_incr),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(n_procs)
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"go.p{i}").exists() for i in range(n_procs)):
        assert time.monotonic() < deadline, "racers did not start"
        await asyncio.sleep(0.01)
    go.touch()  # all racers are at the gate
    outputs = [await asyncio.wait_for(p.communicate(), 60) for p in procs]
    for proc, (_out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
    reports = [json.loads(out) for out, _ in outputs]
    won = [i for r in reports for i in r["won"]]
    assert sorted(won) == list(range(n_keys))  # every key won exactly once
    for i in range(n_keys):
        winner = (await store.get(f"claims/k{i}")).body
        assert winner.startswith(b"p")
    assert (await store.get("counter")).body == b"%d" % (n_procs * n_incr)
    assert sum(r["conflicts"] for r in reports) > 0  # they did race
    assert os.listdir(root / TMP_DIR) == []
