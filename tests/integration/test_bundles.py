"""Export and Import end to end: a real grpc.aio server on port 0, driven by AsyncClient.

Run as a script (``python test_bundles.py generate <root> <sessions> <messages> <bytes>``)
it fills a local-directory store with a large tenant for the memory check, in a
separate process so that the test process's memory only reflects the export.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import io
import json
import os
import random
import resource
import subprocess
import sys
import tarfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sessiond.client.aio import AsyncClient, text_message
from sessiond.errors import BundleInvalid, InvalidId, SessionAlreadyExists, SessionNotFound
from sessiond.server.app import Server, build_server
from sessiond.server.domain.bundle import exporter as exporter_module
from sessiond.server.ops.settings import Settings
from sessiond.server.storage.local import LocalDirectoryStore
from sessiond.server.storage.memory import FailNext, MemoryStore
from sessiond.server.storage.port import OVERWRITE, ObjectStore
from sessiond.v1 import content_pb2, session_pb2, session_service_pb2, turn_pb2

pb = session_service_pb2
INCLUDE = pb.ARCHIVED_FILTER_INCLUDE
SKIP = pb.IMPORT_CONFLICT_POLICY_SKIP
FAIL = pb.IMPORT_CONFLICT_POLICY_FAIL
SNAPSHOT_C = b'{"runtime": "state of c", "bytes": "\\u00ff"}'
SNAPSHOT_D = b"\x00\x01binary snapshot of d\xff"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


# -- servers ------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def serving(store: ObjectStore) -> AsyncIterator[tuple[Server, AsyncClient]]:
    """A started server on ``store`` and a client connected to it."""
    server = build_server(Settings(listen="127.0.0.1:0", metrics_listen=""), store=store)
    port = await server.start()
    try:
        async with AsyncClient(f"127.0.0.1:{port}", timeout=60) as client:
            yield server, client
    finally:
        await server.stop(0)


MakeStore = Callable[[], Awaitable[ObjectStore]]


@pytest.fixture(params=["memory", "local", "s3"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> MakeStore:
    """Returns ``make()`` building a fresh started-on-demand store of the param's kind."""
    kind = str(request.param)
    # Only S3 needs the moto server, so it is looked up lazily (from a sync fixture).
    make_s3: Any = request.getfixturevalue("make_s3_store") if kind == "s3" else None

    async def make() -> ObjectStore:
        if kind == "memory":
            return MemoryStore()
        if kind == "local":
            return LocalDirectoryStore(
                tmp_path / f"root-{random.randrange(1 << 30)}", durable=False
            )
        return await make_s3(prefix=f"p{random.randrange(1 << 30)}")

    return make


# -- content --------------------------------------------------------------------------


def block(**fields: Any) -> content_pb2.ContentBlock:
    return content_pb2.ContentBlock(**fields)


def assistant(*blocks: content_pb2.ContentBlock, **fields: Any) -> content_pb2.Message:
    return content_pb2.Message(role=content_pb2.ROLE_ASSISTANT, content=list(blocks), **fields)


def user(*blocks: content_pb2.ContentBlock) -> content_pb2.Message:
    return content_pb2.Message(role=content_pb2.ROLE_USER, content=list(blocks))


SESSIONS = ["a-chat", "b-run", "c-waiting", "d-hibernated", "e-archived", "f-long"]


async def populate(client: AsyncClient) -> None:
    """Sessions covering every kind of content and state a bundle must carry."""
    await client.start("a-chat", title="Grüße ☃ chat", labels={"team": "a"}, metadata={"k": "ü"})
    await client.chat("a-chat", "hello")
    await client.chat("a-chat", "and again, ünïcödé")

    await client.start("b-run", title="tools", agent_state_json='{"z": 1, "a": {"y": 2, "b": 3}}')
    async with client.run("b-run", "use the calculator") as turn:
        await turn.append(
            [
                assistant(
                    block(text="calling"),
                    block(
                        tool_use=content_pb2.ToolUseBlock(
                            tool_use_id="tu-1", name="calc", input_json='{"b": [2, 3], "a": 1}'
                        )
                    ),
                    metadata_json='{"usage": {"outputTokens": 7, "inputTokens": 3}}',
                )
            ],
            usage=(3, 7),
        )
        await turn.append(
            [
                user(
                    block(
                        tool_result=content_pb2.ToolResultBlock(
                            tool_use_id="tu-1", status="success", content=[block(text="5")]
                        )
                    )
                )
            ]
        )
        await turn.finish(
            [
                assistant(
                    block(text="a picture"),
                    block(image=content_pb2.ImageBlock(format="png", data=PNG)),
                    block(
                        raw_json='{"reasoningContent": {"reasoningText": {"text": "t", "s": 1}}}'
                    ),
                )
            ],
            state={"z": 2, "a": {"y": 3}},
            usage=(5, 11),
        )
    async with client.run("b-run", "hi other", agent_id="other") as turn:
        await turn.finish([text_message("assistant", "other agent here")])

    await client.start("c-waiting", title="needs review")
    async with client.run("c-waiting", "delete the file") as turn:
        use = content_pb2.ToolUseBlock(tool_use_id="tu-9", name="rm", input_json='{"path": "/x"}')
        await turn.hibernate(
            [assistant(block(tool_use=use))],
            snapshot=SNAPSHOT_C,
            reviews=[
                turn_pb2.ReviewRequest(
                    review_id="rev-1",
                    tool_use_id="tu-9",
                    tool_name="rm",
                    input_json='{"path": "/x"}',
                    description="really?",
                )
            ],
        )

    await client.start("d-hibernated")
    async with client.run("d-hibernated", "long job") as turn:
        await turn.hibernate([text_message("assistant", "pausing")], snapshot=SNAPSHOT_D)

    await client.start("e-archived", title="old")
    await client.chat("e-archived", "bye")
    await client.archive("e-archived")

    # Enough turns that history moved into packs (tail limit: 16 turns / 48 messages).
    await client.start("f-long", title="long")
    for number in range(30):
        await client.chat("f-long", f"message {number}")


# -- observing sessions ----------------------------------------------------------------


def without_etag(session: Any) -> Any:
    copy = type(session)()
    copy.CopyFrom(session)
    copy.ClearField("etag")
    return copy


LISTED_FIELDS = (
    "session_id",
    "agent_id",
    "title",
    "labels",
    "metadata",
    "status",
    "archived",
    "parent_session_id",
    "create_time",
    "pending_review_count",
)


async def observe(client: AsyncClient, ids: list[str]) -> dict[str, Any]:
    """What Get, ListMessages, Replay, ListPendingReviews and List say about ``ids``."""
    seen: dict[str, Any] = {}
    for sid in ids:
        session = await client.get(sid)
        messages = {a.agent_id: await client.all_messages(sid, a.agent_id) for a in session.agents}
        replay = await client.replay(sid, page_size=1000)
        pending = await client.list_pending_reviews(session_id=sid)
        seen[sid] = (without_etag(session), messages, list(replay.turns), list(pending.reviews))
    listed = await client.list(archived=INCLUDE, page_size=1000)
    # List's counters are refreshed only when a listed field changes (see
    # index.py), so only the fields the index keeps current are compared.
    seen["list"] = [
        {name: getattr(s, name) for name in LISTED_FIELDS}
        for s in listed.sessions
        if s.session_id in ids
    ]
    return seen


# -- bundles ------------------------------------------------------------------------------


async def export(client: AsyncClient, **fields: Any) -> tuple[bytes, Any, list[Any]]:
    """Runs an export; returns the tar.gz, the manifest message and the progress messages."""
    chunks, progress, manifest = [], [], None
    async for response in client.export(**fields):
        kind = response.WhichOneof("event")
        assert manifest is None, "the manifest must be the last message"
        if kind == "chunk":
            assert len(response.chunk) <= 256 * 1024
            chunks.append(response.chunk)
        elif kind == "progress":
            progress.append(response.progress)
        else:
            manifest = response.manifest
    assert manifest is not None
    return b"".join(chunks), manifest, progress


def members(bundle: bytes) -> dict[str, bytes]:
    """The files of a tar.gz bundle, in archive order."""
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def assert_same_files(first: dict[str, bytes], second: dict[str, bytes]) -> None:
    """Every file identical, the manifest apart from ``exported_at``."""
    assert sorted(first) == sorted(second)
    for name in first:
        if name == "manifest.json":
            one, two = json.loads(first[name]), json.loads(second[name])
            one.pop("exported_at"), two.pop("exported_at")
            assert one == two
        else:
            assert first[name] == second[name], name


def tar_of(
    files: list[tuple[str, bytes]], extra: Callable[[tarfile.TarFile], None] | None = None
) -> bytes:
    """A tar.gz of ``files`` in order (for hand-made bundles)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra is not None:
            extra(tar)
    return buffer.getvalue()


def pieces(data: bytes, size: int = 100_000) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


async def session_keys(store: ObjectStore) -> list[str]:
    return [item.key for item in await store.list_all("tenants/default/session_")]


# -- round trips ---------------------------------------------------------------------------


async def test_round_trip_restores_every_session_exactly(make_store: MakeStore) -> None:
    store = await make_store()
    kind = type(store).__name__
    async with serving(store) as (_, client):
        await populate(client)
        before = await observe(client, SESSIONS)
        started = time.perf_counter()
        bundle, manifest, progress = await export(client, include_archived=True)
        files = members(bundle)
        assert next(iter(files)) == "manifest.json"
        assert json.loads(manifest.manifest_json) == json.loads(files["manifest.json"])
        assert (manifest.session_count, manifest.turn_count, manifest.review_count) == (6, 37, 1)
        assert progress[0].sessions_done == 0 and progress[-1].sessions_done == 6
        assert "snapshots/c-waiting/" in "".join(files) and "transcripts/b-run.md" in files
        assert "strands/session_b-run/agents/agent_other/agent.json" in files
        transcript = files["transcripts/b-run.md"].decode()
        assert "[image: png, 264 bytes]" in transcript and "**tool call** `calc`" in transcript
        assert "Grüße ☃" in files["sessions.json"].decode()  # ensure_ascii=False

        for sid in SESSIONS:
            await client.delete(sid)
        response = await client.import_bundle(pieces(bundle))
        assert sorted(response.imported_session_ids) == sorted(SESSIONS)
        assert response.message_count == manifest.message_count
        assert await observe(client, SESSIONS) == before

        again, _, _ = await export(client, include_archived=True)
        assert_same_files(files, members(again))
        print(f"[{kind}] export+delete+import+export: {time.perf_counter() - started:.2f}s")

        # The hibernated turns continue after the import, with their snapshots.
        async with client.run("d-hibernated", resume=True) as turn:
            assert turn.started.snapshot.data == SNAPSHOT_D
            assert [m.message.content[0].text for m in turn.history][-1] == "pausing"
            await turn.finish([text_message("assistant", "done after import")])
        assert (await client.get("d-hibernated")).status == session_pb2.SESSION_STATUS_FINISHED
        await client.resolve_review(
            "rev-1",
            session_id="c-waiting",
            decision=turn_pb2.ReviewDecision(action=turn_pb2.REVIEW_ACTION_APPROVE, reviewer="me"),
        )
        async with client.run("c-waiting", resume=True) as turn:
            assert turn.started.snapshot.data == SNAPSHOT_C
            await turn.finish([text_message("assistant", "removed")])
        await client.chat("f-long", "one more after import")
        assert (await client.get("f-long")).turn_count == 31


async def test_import_into_another_store_kind(tmp_path: Path) -> None:
    async with serving(MemoryStore()) as (_, source):
        await populate(source)
        before = await observe(source, SESSIONS)
        bundle, _, _ = await export(source, include_archived=True)
    target = LocalDirectoryStore(tmp_path / "target", durable=False)
    async with serving(target) as (_, client):
        response = await client.import_bundle(pieces(bundle, 7777))
        assert len(response.imported_session_ids) == 6
        assert await observe(client, SESSIONS) == before
        # Strands' own reader finds its files where it expects them.
        root = tmp_path / "target" / "tenants" / "default" / "session_b-run"
        assert (root / "agents" / "agent_other" / "messages" / "message_1.json").is_file()


async def test_export_selection_and_errors() -> None:
    async with serving(MemoryStore()) as (_, client):
        await populate(client)
        _, manifest, _ = await export(client)
        assert manifest.session_count == 5  # archived skipped
        _, manifest, _ = await export(client, session_ids=["e-archived", "a-chat", "a-chat"])
        assert manifest.session_count == 2
        with pytest.raises(SessionNotFound):
            await export(client, session_ids=["a-chat", "nope"])
        with pytest.raises(InvalidId):
            await export(client, session_ids=["../x"])
        with pytest.raises(InvalidId):
            await export(client, destination_prefix="a/b")
        with pytest.raises(InvalidId):
            await client.import_bundle([], source_prefix="..")
        with pytest.raises(BundleInvalid):
            await client.import_bundle([], source_prefix="nothing-here")


async def objects_under(store: ObjectStore, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix``, by key (any store kind)."""
    return {item.key: (await store.get(item.key)).body for item in await store.list_all(prefix)}


@pytest.mark.parametrize("part_bytes", [None, 1000])
async def test_export_to_prefix_and_import_from_it(
    part_bytes: int | None, monkeypatch: pytest.MonkeyPatch, make_store: MakeStore
) -> None:
    if part_bytes:
        monkeypatch.setattr(exporter_module, "PART_BYTES", part_bytes)
    store = await make_store()
    async with serving(store) as (_, client):
        await populate(client)
        before = await observe(client, SESSIONS)
        streamed, _, _ = await export(client, include_archived=True)
        stale = "tenants/default/exports/b1/stale.txt"
        await store.put(stale, b"from an older export", mode=OVERWRITE)
        data, manifest, _ = await export(client, include_archived=True, destination_prefix="b1")
        assert data == b""  # nothing streamed
        prefix = "tenants/default/exports/b1/"
        objects = await objects_under(store, prefix)
        names = sorted(k[len(prefix) :] for k in objects if k.startswith(prefix))
        assert stale not in objects
        listed = json.loads(objects[prefix + "manifest.json"])["files"]
        if part_bytes:
            assert "messages.jsonl.part-000001" in names and "messages.jsonl" not in names
        else:
            assert names == sorted([*listed, "manifest.json"])
        assert_same_files(
            members(streamed),
            {
                **{name: objects[prefix + name] for name in names if ".part-" not in name},
                **{
                    name: b"".join(
                        objects[prefix + n] for n in names if n.startswith(name + ".part-")
                    )
                    for name in listed
                    if f"{name}.part-000000" in names
                },
            },
        )
        for sid in SESSIONS:
            await client.delete(sid)
        response = await client.import_bundle([], source_prefix="b1")
        assert len(response.imported_session_ids) == 6
        assert await observe(client, SESSIONS) == before
        # A tampered object is refused, and nothing is written.
        for sid in SESSIONS:
            await client.delete(sid)
        key = prefix + ("messages.jsonl.part-000000" if part_bytes else "turns.jsonl")
        body = bytearray(objects[key])
        body[10] ^= 1
        await store.put(key, bytes(body), mode=OVERWRITE)
        with pytest.raises(BundleInvalid):
            await client.import_bundle([], source_prefix="b1")
        assert await session_keys(store) == []
        assert manifest.session_count == 6


# -- verification ----------------------------------------------------------------------------


def _tampered(files: dict[str, bytes], case: str) -> bytes:
    ordered = list(files.items())
    if case == "byte changed in messages.jsonl":
        changed = bytearray(files["messages.jsonl"])
        changed[len(changed) // 2] ^= 0x01
        ordered = [(n, bytes(changed) if n == "messages.jsonl" else d) for n, d in ordered]
    elif case == "file missing":
        ordered = [(n, d) for n, d in ordered if n != "turns.jsonl"]
    elif case == "extra unlisted file":
        ordered.append(("transcripts/zz.md", b"# not listed"))
    elif case == "dot-dot member":
        ordered.append(("../escape.json", b"{}"))
    elif case == "absolute member":
        ordered.append(("/etc/escape", b"x"))
    elif case == "manifest not first":
        ordered = ordered[1:] + ordered[:1]
    elif case == "size changed":
        ordered = [(n, d + b"\n" if n == "reviews.jsonl" else d) for n, d in ordered]
    elif case == "unknown format version":
        manifest = json.loads(files["manifest.json"])
        manifest["format_version"] = 99
        ordered[0] = ("manifest.json", json.dumps(manifest).encode())
    elif case == "not gzip":
        return b"this is not a bundle"
    elif case == "truncated":
        return tar_of(ordered)[:-200]
    elif case == "symlink member":

        def link(tar: tarfile.TarFile) -> None:
            info = tarfile.TarInfo("transcripts/link.md")
            info.type = tarfile.SYMTYPE
            info.linkname = "/etc/passwd"
            tar.addfile(info)

        return tar_of(ordered, link)
    elif case == "directory member":

        def directory(tar: tarfile.TarFile) -> None:
            info = tarfile.TarInfo("snapshots")
            info.type = tarfile.DIRTYPE
            tar.addfile(info)

        return tar_of(ordered, directory)
    return tar_of(ordered)


TAMPER_CASES = [
    "byte changed in messages.jsonl",
    "file missing",
    "extra unlisted file",
    "dot-dot member",
    "absolute member",
    "manifest not first",
    "size changed",
    "unknown format version",
    "not gzip",
    "truncated",
    "symlink member",
    "directory member",
]


async def test_tampered_bundles_are_refused_before_anything_is_written(
    make_store: MakeStore,
) -> None:
    async with serving(MemoryStore()) as (_, source):
        await populate(source)
        bundle, _, _ = await export(source, include_archived=True)
    files = members(bundle)
    target = await make_store()
    async with serving(target) as (_, client):
        for case in TAMPER_CASES:
            with pytest.raises(BundleInvalid):
                await client.import_bundle(pieces(_tampered(files, case)))
            assert await session_keys(target) == [], case
            assert (await client.list(archived=INCLUDE)).sessions == [], case
        assert (await client.import_bundle(pieces(tar_of(list(files.items()))))).message_count


# -- sessions Strands wrote ------------------------------------------------------------------


async def write_strands_session(store: ObjectStore, sid: str) -> None:
    """A session only a Strands writer made: no sessiond files, a gap in the indices."""
    from datetime import UTC, datetime

    from sessiond.server.domain import strands
    from sessiond.server.domain.keys import TenantKeys
    from sessiond.server.domain.records import Agent

    keys, now = TenantKeys("default"), datetime(2025, 12, 24, 10, 0, tzinfo=UTC)
    await store.put(keys.session_json(sid), strands.session_file(sid, now, now), mode=OVERWRITE)
    agent = Agent(agent_id="default", state={"from": "strands"}, created_at=now, updated_at=now)
    await store.put(keys.agent_json(sid, "default"), strands.agent_file(agent), mode=OVERWRITE)
    for index in (0, 1, 3):
        document = {
            "message": {
                "role": "user" if index % 2 == 0 else "assistant",
                "content": [{"text": f"strands wrote {index}"}],
            },
            "message_id": index,
            "redact_message": None,
            "created_at": now.isoformat(),
            "updated_at": now.isoformat(),
        }
        body = json.dumps(document, indent=2).encode()
        await store.put(keys.message(sid, "default", index), body, mode=OVERWRITE)


async def test_sessions_strands_wrote_round_trip_and_count_as_existing() -> None:
    store = MemoryStore()
    async with serving(store) as (_, client):
        await write_strands_session(store, "g-strands")
        await client.start("h-sessiond")
        await client.chat("h-sessiond", "hi")
        bundle, manifest, _ = await export(client)  # adopts g-strands, as List would
        assert manifest.session_count == 2
        async with client.run("g-strands", "continue in sessiond") as turn:
            await turn.finish([text_message("assistant", "ok")])
        ids = ["g-strands", "h-sessiond"]
        bundle, manifest, _ = await export(client, session_ids=ids)
        before = await observe(client, ids)
        for sid in ids:
            await client.delete(sid)
        # A session only Strands wrote exists too: importing over it is a conflict.
        await write_strands_session(store, "g-strands")
        with pytest.raises(SessionAlreadyExists):
            await client.import_bundle(pieces(bundle))
        response = await client.import_bundle(pieces(bundle), on_conflict=SKIP)
        assert list(response.skipped_session_ids) == ["g-strands"]
        await client.delete("g-strands")
        await client.delete("h-sessiond")
        await client.import_bundle(pieces(bundle))
        assert await observe(client, ids) == before
        assert [m.index for m in await client.all_messages("g-strands")] == [0, 1, 3, 4, 5]
        again, _, _ = await export(client, session_ids=ids)
        assert_same_files(members(bundle), members(again))


# -- conflicts and retries ---------------------------------------------------------------------


async def test_conflict_policies() -> None:
    store = MemoryStore()
    async with serving(store) as (_, client):
        await populate(client)
        bundle, _, _ = await export(client, include_archived=True)
        await client.delete("b-run")
        await client.chat("a-chat", "changed after the export")
        changed = await observe(client, ["a-chat"])
        keys_before = await session_keys(store)
        for policy in ({}, {"on_conflict": FAIL}):
            with pytest.raises(SessionAlreadyExists):
                await client.import_bundle(pieces(bundle), **policy)
            assert await session_keys(store) == keys_before
        response = await client.import_bundle(pieces(bundle), on_conflict=SKIP)
        assert list(response.imported_session_ids) == ["b-run"]
        assert sorted(response.skipped_session_ids) == sorted(set(SESSIONS) - {"b-run"})
        assert await observe(client, ["a-chat"]) == changed
        assert (await client.get("b-run")).agents[1].agent_id == "other"


async def test_retried_import_after_a_crash_completes() -> None:
    store = MemoryStore()
    async with serving(store) as (_, client):
        await populate(client)
        before = await observe(client, SESSIONS)
        bundle, _, _ = await export(client, include_archived=True)
        for sid in SESSIONS:
            await client.delete(sid)
        # Crash 1: the head of the third session cannot be written (the
        # store keeps failing longer than sessiond retries).
        store.hooks.append(FailNext("put", "session_c-waiting/sessiond/head.json", times=100))
        with pytest.raises(Exception, match="unavailable"):
            await client.import_bundle(pieces(bundle))
        store.hooks.clear()
        # Crash 2: the head of c is written, its listing entry is not.
        store.hooks.append(FailNext("put", "sessiond/index/sessions/", times=100))
        with pytest.raises(Exception, match="unavailable"):
            await client.import_bundle(pieces(bundle))
        store.hooks.clear()
        response = await client.import_bundle(pieces(bundle))
        assert sorted(response.imported_session_ids) == sorted(SESSIONS)
        assert await observe(client, SESSIONS) == before
        # Each session holds exactly what its head references (no leftover packs).
        snapshot = store.snapshot()
        for sid in SESSIONS:
            head = json.loads(snapshot[f"tenants/default/session_{sid}/sessiond/head.json"])
            packs = {
                k
                for k in snapshot
                if k.startswith(f"tenants/default/session_{sid}/sessiond/packs/")
            }
            assert packs == {ref["key"] for ref in head["packs"]}, sid
            # The epoch restarts above every one the copied message files name.
            markers = [
                json.loads(body)["sessiond"]["epoch"]
                for key, body in snapshot.items()
                if key.startswith(f"tenants/default/session_{sid}/agents/") and "/message_" in key
            ]
            assert head["epoch"] == max(markers) + 1, sid
        # Importing the same bundle once more changes nothing and fails nothing.
        assert len((await client.import_bundle(pieces(bundle))).imported_session_ids) == 6
        assert await observe(client, SESSIONS) == before


# -- memory ---------------------------------------------------------------------------------

BIG_SESSIONS, BIG_MESSAGES, BIG_MESSAGE_BYTES = 80, 20, 32 * 1024
_LETTERS = bytes((ord("a") + i % 26) if i % 9 else ord(" ") for i in range(256))


async def _generate(root: str, sessions: int, per_session: int, size: int) -> None:
    """Writes a large tenant straight into a local-directory store (heads, packs, Strands files)."""
    from datetime import UTC, datetime

    from sessiond.server.domain import strands
    from sessiond.server.domain.codec import encode
    from sessiond.server.domain.index import TenantIndex, index_stamp
    from sessiond.server.domain.keys import TenantKeys
    from sessiond.server.domain.records import (
        Agent,
        Head,
        Pack,
        PackRef,
        Status,
        StoredMessage,
        Turn,
        TurnStatus,
    )
    from sessiond.server.storage.port import CREATE

    store = LocalDirectoryStore(root, durable=False)
    index, keys, now = TenantIndex(store), TenantKeys("default"), datetime.now(UTC)
    for number in range(sessions):
        sid = f"big-{number:04d}"
        agent = Agent(agent_id="default", message_count=per_session, created_at=now, updated_at=now)
        turns = []
        for t in range(per_session // 2):
            messages = [
                StoredMessage(
                    agent_id="default",
                    index=2 * t + j,
                    message={
                        "role": "user" if j == 0 else "assistant",
                        "content": [{"text": os.urandom(size).translate(_LETTERS).decode()}],
                    },
                    turn_id=f"t{t + 1:06d}",
                    created_at=now,
                    updated_at=now,
                )
                for j in range(2)
            ]
            turns.append(
                Turn(
                    turn_id=f"t{t + 1:06d}",
                    number=t + 1,
                    agent_id="default",
                    engine="echo",
                    status=TurnStatus.FINISHED,
                    started_at=now,
                    ended_at=now,
                    first_index=2 * t,
                    messages=messages,
                )
            )
        pack_key = keys.pack(sid, f"p3-000001-{len(turns):06d}-gen0")
        body = encode(Pack(session_id=sid, level=3, turns=turns))
        await store.put(pack_key, body, mode=CREATE)
        writes = [
            store.put(
                keys.message(sid, "default", m.index),
                strands.message_file(m, epoch=1, run_id="gen"),
                mode=OVERWRITE,
            )
            for turn in turns
            for m in turn.messages
        ]
        writes.append(
            store.put(keys.session_json(sid), strands.session_file(sid, now, now), mode=OVERWRITE)
        )
        writes.append(
            store.put(keys.agent_json(sid, "default"), strands.agent_file(agent), mode=OVERWRITE)
        )
        await asyncio.gather(*writes)
        ref = PackRef(
            key=pack_key,
            level=3,
            first_turn=1,
            last_turn=len(turns),
            message_count=per_session,
            size=len(body),
        )
        head = Head(
            session_id=sid,
            incarnation="gen0",
            revision=1,
            created_at=now,
            updated_at=now,
            status=Status.FINISHED,
            agent_id="default",
            agents={"default": agent},
            turn_count=len(turns),
            packs=[ref],
            index_segment=0,
        )
        head.index_stamp = index_stamp(head, now)
        await store.put(keys.head(sid), encode(head), mode=CREATE)
        await index.write_entry(keys, head, now)


def _rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _measure(root: str) -> dict[str, Any]:
    """Exports the whole tenant from a fresh server; returns memory and size figures."""
    store = LocalDirectoryStore(root, durable=False)
    async with serving(store) as (_, client):
        await export(client, session_ids=["big-0000"])  # warm up threads, imports, channels
        gc.collect()
        base_rss, base_max = _rss(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak, streamed, digest, manifest = base_rss, 0, hashlib.sha256(), None
        started = time.perf_counter()
        async for response in client.export():
            if response.WhichOneof("event") == "chunk":
                streamed += len(response.chunk)
                digest.update(response.chunk)
            elif response.WhichOneof("event") == "manifest":
                manifest = response.manifest
            peak = max(peak, _rss())
        seconds = time.perf_counter() - started
        max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    assert manifest is not None
    files = json.loads(manifest.manifest_json)["files"]
    return {
        "seconds": round(seconds, 2),
        "sessions": manifest.session_count,
        "messages": manifest.message_count,
        "bundle_bytes": sum(entry["size"] for entry in files.values()),
        "messages_jsonl_bytes": files["messages.jsonl"]["size"],
        "streamed_bytes": streamed,
        "base_rss": base_rss,
        "rss_growth": peak - base_rss,
        "maxrss_growth": max_rss - base_max,
    }


@pytest.mark.slow
def test_export_memory_stays_bounded(tmp_path: Path) -> None:
    root = str(tmp_path / "big")
    started = time.perf_counter()
    args = [sys.executable, __file__]
    subprocess.run([*args, "generate", root], check=True, timeout=120)
    generated = time.perf_counter() - started
    done = subprocess.run([*args, "measure", root], check=True, timeout=120, capture_output=True)
    figures = json.loads(done.stdout.decode().strip().splitlines()[-1])
    mib = {
        k: round(v / 2**20, 1) for k, v in figures.items() if k.endswith(("bytes", "rss", "growth"))
    }
    print(f"\ngenerated in {generated:.1f}s; export figures: {figures['seconds']}s, {mib}")
    assert figures["messages"] == BIG_SESSIONS * BIG_MESSAGES
    growth = max(figures["rss_growth"], figures["maxrss_growth"])
    # The bundle is several times larger than what the export added to memory.
    assert figures["messages_jsonl_bytes"] > 48 * 2**20
    assert growth * 4 < figures["bundle_bytes"], mib
    assert growth * 2 < figures["streamed_bytes"], mib


if __name__ == "__main__":
    command, root = sys.argv[1], sys.argv[2]
    if command == "generate":
        asyncio.run(_generate(root, BIG_SESSIONS, BIG_MESSAGES, BIG_MESSAGE_BYTES))
    else:
        print(json.dumps(asyncio.run(_measure(root))))
