"""The ObjectStore contract, run against memory, local directory and S3 (moto)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import pytest

from sessiond.server.storage.port import (
    CREATE,
    OVERWRITE,
    AlreadyExists,
    NotFound,
    NotModified,
    ObjectStore,
    PreconditionFailed,
    StoreError,
    Update,
)


def md5_etag(body: bytes) -> str:
    return '"' + hashlib.md5(body).hexdigest() + '"'


async def keys(store: ObjectStore, prefix: str) -> list[str]:
    return [m.key for m in await store.list_all(prefix)]


# -- conditional writes -------------------------------------------------------


async def test_create_only(store: ObjectStore) -> None:
    meta = await store.put("s/a.json", b'{"v":1}', mode=CREATE)
    assert (meta.key, meta.etag, meta.size) == ("s/a.json", md5_etag(b'{"v":1}'), 7)

    with pytest.raises(AlreadyExists):
        await store.put("s/a.json", b'{"v":2}', mode=CREATE)
    assert (await store.get("s/a.json")).body == b'{"v":1}'

    await store.delete("s/a.json")
    again = await store.put("s/a.json", b'{"v":3}', mode=CREATE)
    assert again.etag == md5_etag(b'{"v":3}')
    assert (await store.get("s/a.json")).body == b'{"v":3}'


async def test_update_is_compare_and_swap(store: ObjectStore) -> None:
    first = await store.put("s/claim", b"one", mode=CREATE)
    second = await store.put("s/claim", b"two", mode=Update(first.etag))
    assert second.etag == md5_etag(b"two") != first.etag

    with pytest.raises(PreconditionFailed):
        await store.put("s/claim", b"three", mode=Update(first.etag))
    got = await store.get("s/claim")
    assert (got.body, got.meta.etag) == (b"two", second.etag)

    with pytest.raises(NotFound):
        await store.put("s/missing", b"x", mode=Update(first.etag))
    with pytest.raises(NotFound):
        await store.head("s/missing")


async def test_overwrite_is_unconditional(store: ObjectStore) -> None:
    created = await store.put("s/o", b"first", mode=OVERWRITE)
    assert created.etag == md5_etag(b"first")
    replaced = await store.put("s/o", b"second!", mode=OVERWRITE)
    assert (replaced.etag, replaced.size) == (md5_etag(b"second!"), 7)
    assert (await store.get("s/o")).body == b"second!"


async def test_get_and_head_of_missing_key(store: ObjectStore) -> None:
    with pytest.raises(NotFound):
        await store.get("nope/x")
    with pytest.raises(NotFound):
        await store.head("nope/x")
    await store.put("nope/x/y", b"", mode=CREATE)
    with pytest.raises(NotFound):  # a "directory" is not an object
        await store.head("nope/x")


async def test_conditional_get(store: ObjectStore) -> None:
    meta = await store.put("c/k", b"cached", mode=CREATE)
    with pytest.raises(NotModified):
        await store.get("c/k", if_none_match=meta.etag)
    stale = await store.get("c/k", if_none_match=md5_etag(b"older"))
    assert stale.body == b"cached"
    new = await store.put("c/k", b"changed", mode=Update(meta.etag))
    got = await store.get("c/k", if_none_match=meta.etag)
    assert (got.body, got.meta.etag) == (b"changed", new.etag)


async def test_etag_is_md5_and_consistent(store: ObjectStore) -> None:
    a = await store.put("e/a", b"same", mode=CREATE)
    b = await store.put("e/b", b"same", mode=CREATE)
    assert a.etag == b.etag == md5_etag(b"same")
    head = await store.head("e/a")
    got = await store.get("e/a")
    listed = (await store.list("e/")).items
    assert head.etag == got.meta.etag == listed[0].etag == a.etag
    assert head.size == got.meta.size == listed[0].size == 4
    changed = await store.put("e/a", b"diff", mode=Update(a.etag))
    assert changed.etag != a.etag
    assert (await store.head("e/a")).etag == changed.etag


async def test_put_id_round_trip(store: ObjectStore, kind: str) -> None:
    await store.put("p/given", b"x", mode=CREATE, put_id="a1b2c3")
    await store.put("p/generated1", b"x", mode=CREATE)
    await store.put("p/generated2", b"x", mode=CREATE)
    given = await store.head("p/given")
    generated = [(await store.head(k)).put_id for k in ("p/generated1", "p/generated2")]
    if kind == "local":
        # A local write is never ambiguous, so put_id is not stored.
        assert given.put_id is None and generated == [None, None]
    else:
        assert given.put_id == "a1b2c3"
        assert (await store.get("p/given")).meta.put_id == "a1b2c3"
        assert None not in generated and generated[0] != generated[1]
    assert all(m.put_id is None for m in (await store.list("p/")).items)


# -- listing ------------------------------------------------------------------


async def _fill(store: ObjectStore, names: list[str], concurrency: int = 32) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def one(name: str) -> None:
        async with gate:
            await store.put(name, name.encode(), mode=OVERWRITE)

    await asyncio.gather(*(one(n) for n in names))


async def test_list_pages_in_order(store: ObjectStore, kind: str) -> None:
    # moto takes ~4 ms per PUT, so S3 gets fewer keys; it still spans 2 pages.
    count = 1100 if kind.startswith("s3") else 2500
    names = [f"big/m_{i:05d}.json" for i in range(count)]
    await _fill(store, names[::-1])
    await store.put("big0", b"outside", mode=CREATE)  # shares the prefix "big" only

    pages = []
    cursor = None
    while True:
        page = await store.list("big/", start_after=cursor, limit=1000)
        pages.append(page)
        if page.next_start_after is None:
            break
        assert page.next_start_after == page.items[-1].key
        cursor = page.next_start_after
    sizes = [len(p.items) for p in pages]
    assert sizes[:-1] == [1000] * (len(sizes) - 1) and sum(sizes) == count
    assert [m.key for p in pages for m in p.items] == names

    assert await keys(store, "big/") == names
    middle = await store.list("big/", start_after=names[999], limit=3)
    assert [m.key for m in middle.items] == names[1000:1003]
    assert middle.next_start_after == names[1002]
    assert [m.key for m in (await store.list("big", limit=1000)).items][-1] == names[999]
    tail = await store.list("big/", start_after=names[-2])
    assert ([m.key for m in tail.items], tail.next_start_after) == ([names[-1]], None)


async def test_list_nested_prefixes_and_byte_order(store: ObjectStore) -> None:
    names = [
        "t/t1/session_a/agents/agent_x/agent.json",
        "t/t1/session_a/agents/agent_x/messages/message_0.json",
        "t/t1/session_a/agents/agent_x/messages/message_1.json",
        "t/t1/session_a/agents/agent_x/messages/message_10.json",
        "t/t1/session_a/agents/agent_x/messages/message_2.json",
        "t/t1/session_a/session.json",
        "t/t1/session_a.json",
        "t/t1/session_a-b/session.json",
        "t/t1/session_ab/session.json",
        "t/t1/sessions.txt",
        "t/t1/other/x",
        "t/t10/session_z/session.json",
        "t/t2/session_q/session.json",
        "t/t1.txt",
    ]
    await _fill(store, names)
    expect = sorted(names, key=str.encode)
    assert await keys(store, "") == expect
    assert await keys(store, "t/") == expect

    def under(prefix: str) -> list[str]:
        return [n for n in expect if n.startswith(prefix)]

    for prefix in [
        "t/t1/",
        "t/t1",  # mid-segment: t/t1/..., t/t1.txt and t/t10/...
        "t/t1/session_",  # mid-segment, as the domain lists sessions
        "t/t1/session_a",
        "t/t1/session_a/",
        "t/t1/session_a/agents/agent_x/messages/message_1",
        "t/t1/session_a/session.json",
    ]:
        assert await keys(store, prefix) == under(prefix), prefix

    paged = []
    cursor = None
    while True:
        page = await store.list("t/t1/session_", start_after=cursor, limit=2)
        assert len(page.items) <= 2
        paged += [m.key for m in page.items]
        if page.next_start_after is None:
            break
        cursor = page.next_start_after
    assert paged == under("t/t1/session_")
    start = "t/t1/session_a/agents/zzz"  # not a key; sorts inside the tree
    between = await store.list("t/t1/", start_after=start)
    assert [m.key for m in between.items] == [n for n in under("t/t1/") if n > start]


async def test_list_empty_results(store: ObjectStore) -> None:
    empty = await store.list("nothing/here/")
    assert (empty.items, empty.next_start_after) == ([], None)
    await store.put("x/a", b"1", mode=CREATE)
    assert (await store.list("x/a/")).items == []
    assert (await store.list("x/b")).items == []
    assert (await store.list("x/", start_after="x/a")).items == []
    with pytest.raises(ValueError):
        await store.list("x/", limit=0)


async def test_delete_is_idempotent_and_listing_reflects_it(store: ObjectStore) -> None:
    await store.delete("d/never-existed")
    await _fill(store, ["d/1", "d/2", "d/3"])
    await store.delete("d/2")
    await store.delete("d/2")
    assert await keys(store, "d/") == ["d/1", "d/3"]
    with pytest.raises(NotFound):
        await store.get("d/2")
    await store.delete("d/1")
    await store.delete("d/3")
    assert await keys(store, "d/") == []


async def test_list_prefixes(store: ObjectStore) -> None:
    await _fill(store, ["lp/a/1", "lp/a/2/x", "lp/b/1", "lp/c", "lp/session_1/x", "lq/d/1"])
    assert await store.list_prefixes("lp/") == ["lp/a/", "lp/b/", "lp/session_1/"]
    assert await store.list_prefixes("lp/s") == ["lp/session_1/"]
    assert await store.list_prefixes("lp/a/") == ["lp/a/2/"]
    assert await store.list_prefixes("none/") == []


async def test_conditional_delete(store: ObjectStore) -> None:
    first = await store.put("cd/k", b"mine", mode=CREATE)
    replaced = await store.put("cd/k", b"theirs", mode=Update(first.etag))
    with pytest.raises(PreconditionFailed):
        await store.delete("cd/k", if_match=first.etag)
    assert (await store.get("cd/k")).body == b"theirs"
    await store.delete("cd/k", if_match=replaced.etag)
    with pytest.raises(NotFound):
        await store.get("cd/k")
    with pytest.raises(NotFound):
        await store.delete("cd/k", if_match=replaced.etag)


# -- bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        bytes(range(256)) * 4,
        "héllo wörld ✓ — 日本語 🙂".encode(),
        b'{"role":"user","content":[{"text":"\\u00e9"}]}\n',
    ],
    ids=["empty", "binary", "utf8", "json"],
)
async def test_bodies_round_trip_exactly(store: ObjectStore, body: bytes) -> None:
    meta = await store.put("b/obj", body, mode=CREATE)
    got = await store.get("b/obj")
    assert got.body == body
    assert meta.size == got.meta.size == len(body)
    assert meta.etag == got.meta.etag == md5_etag(body)


async def test_large_body(store: ObjectStore) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)
    meta = await store.put("big/blob", body, mode=CREATE)
    got = await store.get("big/blob")
    assert got.body == body
    assert meta.etag == got.meta.etag == md5_etag(body)
    assert (await store.head("big/blob")).size == len(body)


# -- concurrency --------------------------------------------------------------


def _concurrency(kind: str) -> int:
    # moto checks conditions without a lock, so only a few racers there; the
    # atomicity proof is MemoryStore and LocalDirectoryStore.
    return 4 if kind.startswith("s3") else 64


async def _outcomes(calls: list) -> tuple[int, list[BaseException]]:
    results = await asyncio.gather(*calls, return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    for error in errors:
        if not isinstance(error, StoreError):
            raise error
    return len(results) - len(errors), errors


async def test_concurrent_creates_have_one_winner(store: ObjectStore, kind: str) -> None:
    n = _concurrency(kind)
    wins, errors = await _outcomes(
        [store.put("race/claim", f"writer {i}".encode(), mode=CREATE) for i in range(n)]
    )
    assert wins == 1
    assert all(isinstance(e, AlreadyExists) for e in errors)


async def test_concurrent_updates_from_one_etag_have_one_winner(
    store: ObjectStore, kind: str
) -> None:
    base = await store.put("race/cas", b"base", mode=CREATE)
    n = _concurrency(kind)
    wins, errors = await _outcomes(
        [store.put("race/cas", f"writer {i}".encode(), mode=Update(base.etag)) for i in range(n)]
    )
    assert wins == 1
    assert all(isinstance(e, PreconditionFailed) for e in errors)
    assert (await store.get("race/cas")).body.startswith(b"writer ")


# -- observation --------------------------------------------------------------


async def test_observer_sees_every_request(make_store: Any, kind: str) -> None:
    seen: list[tuple[str, str]] = []
    store = await make_store(observer=lambda op, outcome: seen.append((op, outcome)))
    seen.clear()  # S3's start() probes the store
    counts_before = dict(store.request_counts)  # type: ignore[attr-defined]

    meta = await store.put("o/k", b"1", mode=CREATE)
    await store.get("o/k")
    await store.head("o/k")
    await store.list("o/")
    with pytest.raises(NotModified):
        await store.get("o/k", if_none_match=meta.etag)
    with pytest.raises(NotFound):
        await store.get("o/missing")
    with pytest.raises(AlreadyExists):
        await store.put("o/k", b"2", mode=CREATE)
    with pytest.raises(PreconditionFailed):
        await store.put("o/k", b"2", mode=Update(md5_etag(b"other")))
    await store.delete("o/k")

    expected = [
        ("put", "ok"),
        ("get", "ok"),
        ("head", "ok"),
        ("list", "ok"),
        ("get", "not_modified"),
        ("get", "not_found"),
        ("put", "already_exists"),
        ("put", "precondition_failed"),
        ("delete", "ok"),
    ]
    if kind.startswith("s3"):
        # A 412 on If-Match is followed by one HEAD telling "changed" from "missing".
        expected.insert(8, ("head", "ok"))
    assert seen == expected
    counts = store.request_counts  # type: ignore[attr-defined]
    delta = {op: counts[op] - counts_before.get(op, 0) for op in counts}
    assert sum(delta.values()) == len(expected)
    assert delta["put"] == 3 and delta["get"] == 3


async def test_etags_compare_without_quotes(store: ObjectStore) -> None:
    meta = await store.put("q/k", b"v1", mode=CREATE)
    bare = meta.etag.strip('"')
    with pytest.raises(NotModified):
        await store.get("q/k", if_none_match=bare)
    assert (await store.put("q/k", b"v2", mode=Update(bare))).etag == md5_etag(b"v2")
