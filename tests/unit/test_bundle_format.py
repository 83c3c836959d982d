"""The bundle format: paths, manifest, lines, transcripts, tar streaming, parallelism."""

from __future__ import annotations

import asyncio
import io
import json
import os
import tarfile
import threading
from datetime import UTC, datetime

import pytest

from sessiond.errors import BundleInvalid
from sessiond.server.domain.bundle import lines, spool, transcript, verify
from sessiond.server.domain.bundle.format import (
    CHUNK_BYTES,
    FileEntry,
    Manifest,
    check_member_path,
    classify,
    parse_manifest,
)
from sessiond.server.domain.bundle.parallel import for_each
from sessiond.server.domain.bundle.spool import Spool, stream_tar
from sessiond.server.domain.records import (
    Agent,
    Decision,
    Head,
    Review,
    ReviewAction,
    SnapshotRef,
    Status,
    StoredMessage,
    Turn,
    TurnStatus,
)

NOW = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
SHA = "0" * 64


# -- paths ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind", "session_id", "rest"),
    [
        ("sessions.json", "core", "", ""),
        ("snapshots/s1/t000001-0-ab.json", "snapshot", "s1", "t000001-0-ab.json"),
        ("transcripts/s-1.md", "transcript", "s-1", ""),
        (
            "strands/session_s1/agents/agent_a/agent.json",
            "strands",
            "s1",
            "agents/agent_a/agent.json",
        ),
        ("strands/session_s1/multi_agents/m/x.json", "strands", "s1", "multi_agents/m/x.json"),
    ],
)
def test_classify_known_paths(path: str, kind: str, session_id: str, rest: str) -> None:
    found = classify(path)
    assert (found.kind, found.session_id, found.rest) == (kind, session_id, rest)


@pytest.mark.parametrize(
    "path",
    [
        "../etc/passwd",
        "/abs/sessions.json",
        "snapshots/s1/../../x",
        "snapshots/s1/./x",
        "strands/session_s1//x",
        "strands\\session_s1\\x",
        "transcripts/sé.md",
        "strands/session_s1/sessiond/head.json",  # would plant a head
        "strands/session_s1/",
        "strands/session_../x",
        "snapshots/s1/a/b",
        "transcripts/s1.txt",
        "manifest.json",  # never listed in itself
        "notes.txt",
        "",
    ],
)
def test_classify_refuses_unsafe_or_unknown_paths(path: str) -> None:
    with pytest.raises(BundleInvalid):
        classify(path)


def test_check_member_path_limits_length() -> None:
    assert check_member_path("a/b") == "a/b"
    with pytest.raises(BundleInvalid):
        check_member_path("a" * 2000)


# -- manifest -------------------------------------------------------------------------


def _manifest_files(**extra: dict) -> dict:
    core = ("sessions.json", "messages.jsonl", "turns.jsonl", "reviews.jsonl")
    return {**{name: {"sha256": SHA, "size": 0} for name in core}, **extra}


def _manifest(**fields: object) -> bytes:
    document = {
        "format": "sessiond-bundle",
        "format_version": 1,
        "exported_at": "2026-01-01T00:00:00Z",
        "session_count": 0,
        "message_count": 0,
        "turn_count": 0,
        "review_count": 0,
        "files": _manifest_files(),
    }
    document.update(fields)
    return json.dumps(document).encode()


def test_manifest_round_trip_is_deterministic() -> None:
    manifest = Manifest(
        exported_at="2026-01-01T00:00:00Z",
        session_count=1,
        files={"turns.jsonl": FileEntry(SHA, 1), "sessions.json": FileEntry(SHA, 2)},
    )
    manifest.files |= {"messages.jsonl": FileEntry(SHA, 3), "reviews.jsonl": FileEntry(SHA, 4)}
    text = manifest.to_json()
    assert list(json.loads(text)["files"]) == sorted(manifest.files)
    parsed = parse_manifest(text.encode())
    assert parsed.files == manifest.files and parsed.session_count == 1
    assert parsed.to_json() == text and len(parsed.digest) == 64


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        _manifest(format="zip"),
        _manifest(format_version=2),
        _manifest(session_count=-1),
        _manifest(message_count=True),
        _manifest(exported_at=5),
        _manifest(files=_manifest_files(**{"transcripts/a.md": {"sha256": "X" * 64, "size": 1}})),
        _manifest(files=_manifest_files(**{"transcripts/a.md": {"sha256": SHA, "size": -1}})),
        _manifest(files=_manifest_files(**{"transcripts/a.md": {"sha256": SHA}})),
        _manifest(files=_manifest_files(**{"../a.md": {"sha256": SHA, "size": 1}})),
        _manifest(files={"sessions.json": {"sha256": SHA, "size": 0}}),
    ],
)
def test_manifest_refusals(body: bytes) -> None:
    with pytest.raises(BundleInvalid):
        parse_manifest(body)


# -- lines ------------------------------------------------------------------------------


def _head() -> Head:
    return Head(
        session_id="s1",
        incarnation="abcd",
        revision=7,
        epoch=3,
        created_at=NOW,
        updated_at=NOW,
        status=Status.WAITING,
        title="Grüße",
        labels={"b": "2", "a": "1"},
        agent_id="default",
        agents={
            "default": Agent(agent_id="default", message_count=2, created_at=NOW, updated_at=NOW),
            "other": Agent(
                agent_id="other", state={"z": 1, "a": 2}, created_at=NOW, updated_at=NOW
            ),
        },
        turn_count=1,
        index_segment=4,
        index_stamp="x",
    )


def test_session_line_drops_transient_fields_and_keeps_order() -> None:
    head = _head()
    text = lines.session_line(head)
    data = json.loads(text)
    assert "Grüße" in text  # ensure_ascii=False
    assert not {"incarnation", "revision", "epoch", "lease", "index_segment", "tail"} & set(data)
    assert [agent["agent_id"] for agent in data["agents"]] == ["default", "other"]
    assert list(data["agents"][1]["state"]) == ["z", "a"]  # user key order is kept
    parsed = lines.parse_session(data)
    assert parsed.model_dump(exclude=lines.TRANSIENT_HEAD_FIELDS) == head.model_dump(
        exclude=lines.TRANSIENT_HEAD_FIELDS
    )
    assert lines.session_line(parsed) == text


def test_turn_line_names_messages_reviews_and_snapshot() -> None:
    message = StoredMessage(
        agent_id="default",
        index=5,
        message={"role": "user", "content": [{"text": "x"}], "b": 1, "a": 2},
        created_at=NOW,
        updated_at=NOW,
    )
    review = Review(
        review_id="r1",
        turn_id="t000002",
        tool_name="rm",
        input={"z": 1},
        fingerprint="f",
        created_at=NOW,
        decision=Decision(action=ReviewAction.APPROVE, decided_at=NOW),
    )
    turn = Turn(
        turn_id="t000002",
        number=2,
        agent_id="default",
        engine="client",
        status=TurnStatus.WAITING,
        started_at=NOW,
        first_index=5,
        messages=[message],
        reviews=[review],
        snapshot=SnapshotRef(
            key="tenants/t/session_s1/sessiond/snapshots/t2-0-aa.json", created_at=NOW
        ),
    )
    data = json.loads(lines.turn_line("s1", turn))
    assert data["message_refs"] == [["default", 5]] and data["review_ids"] == ["r1"]
    assert data["snapshot"]["name"] == "t2-0-aa.json" and "key" not in data["snapshot"]
    assert "tenants/" not in lines.turn_line("s1", turn)  # the tenant never leaks into bundles
    parsed = lines.parse_turn(data)
    assert parsed.snapshot_name == "t2-0-aa.json" and parsed.message_refs == [("default", 5)]
    parsed.turn.messages, parsed.turn.reviews = [message], [review]
    parsed.turn.snapshot = lines.restored_snapshot(parsed.turn.snapshot, turn.snapshot.key)
    assert parsed.turn == turn
    sid, back = lines.parse_message(json.loads(lines.message_line("s1", message)))
    assert (sid, back) == ("s1", message) and list(back.message) == ["role", "content", "b", "a"]
    assert lines.parse_review(json.loads(lines.review_line("s1", review))) == ("s1", review)


def test_iso_matches_the_records_json() -> None:
    assert lines.iso(NOW) == "2026-03-04T05:06:07.890123Z"


# -- transcripts --------------------------------------------------------------------------


def test_transcript_summarises_blocks() -> None:
    content = [
        {"text": "hello"},
        {
            "image": {
                "format": "png",
                "source": {"bytes": {"__bytes_encoded__": True, "data": "AAAA"}},
            }
        },
        {"document": {"format": "pdf", "name": "r", "source": {"bytes": {"data": "AAA="}}}},
        {"toolUse": {"toolUseId": "u1", "name": "calc", "input": {"a": 1}}},
        {"toolResult": {"toolUseId": "u1", "status": "success", "content": [{"text": "2"}]}},
        {"reasoningContent": {"reasoningText": {"text": "hm"}}},
    ]
    head = _head()
    turn = Turn(
        turn_id="t000001",
        number=1,
        agent_id="default",
        engine="client",
        status=TurnStatus.ERROR,
        started_at=NOW,
        first_index=0,
        messages=[
            StoredMessage(
                agent_id="default",
                index=0,
                message={"role": "assistant", "content": content},
                created_at=NOW,
                updated_at=NOW,
            ),
            StoredMessage(
                agent_id="default",
                index=1,
                message={"role": "user", "content": [{"text": "secret"}]},
                redact_message={"role": "user", "content": [{"text": "[redacted]"}]},
                created_at=NOW,
                updated_at=NOW,
            ),
        ],
    )
    text = "".join(transcript.render(head, [turn]))
    assert text.startswith("# Grüße\n")
    for expected in (
        "hello",
        "_[image: png, 3 bytes]_",
        "_[document: r (pdf, 2 bytes)]_",
        '**tool call** `calc` (id `u1`): `{"a":1}`',
        "**tool result** for `u1` (success): 2",
        "_[reasoningContent block]_",
        "[redacted]",
        "## Turn 1 · ERROR",
    ):
        assert expected in text
    assert "secret" not in text


# -- sessions.json reader -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[]\n", []),
        ("[\n]", []),
        ('[\n{"a":1},\n{"b":[1,2]}\n]\n', [{"a": 1}, {"b": [1, 2]}]),
        ('  [ {"a" : 1} ,\n\n {"b":2}]  ', [{"a": 1}, {"b": 2}]),
    ],
)
def test_sessions_json_layouts(text: str, expected: list) -> None:
    store = Spool()
    try:
        store.write_file("sessions.json", text.encode())
        assert list(verify._session_entries(store)) == expected
    finally:
        store.remove()


@pytest.mark.parametrize("text", ["", "{}", "[1,", "[1] 2", '[{"a": NaN}]', "[1 2]"])
def test_sessions_json_refusals(text: str) -> None:
    store = Spool()
    try:
        store.write_file("sessions.json", text.encode())
        with pytest.raises(BundleInvalid):
            list(verify._session_entries(store))
    finally:
        store.remove()


def test_sessions_json_elements_larger_than_a_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "READ_CHARS", 7)
    store = Spool()
    try:
        items = [{"id": n, "text": "ü" * 50} for n in range(5)]
        store.write_file("sessions.json", json.dumps(items, ensure_ascii=False).encode())
        assert list(verify._session_entries(store)) == items
    finally:
        store.remove()


# -- tar streaming --------------------------------------------------------------------------


async def test_stream_tar_yields_bounded_chunks_of_a_valid_archive() -> None:
    store = Spool()
    try:
        big = os.urandom(1 << 20)  # incompressible: several chunks
        store.write_file("manifest.json", b"{}")
        store.write_file("strands/session_a/x.bin", big)
        chunks = [
            c async for c in stream_tar(store, ["manifest.json", "strands/session_a/x.bin"], 5)
        ]
        assert len(chunks) > 3 and all(len(chunk) <= CHUNK_BYTES for chunk in chunks)
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as tar:
            names = tar.getnames()
            assert names == ["manifest.json", "strands/session_a/x.bin"]
            member = tar.getmember("strands/session_a/x.bin")
            assert member.mtime == 5 and member.mode == 0o644
            assert tar.extractfile(member).read() == big
    finally:
        store.remove()


async def test_stream_tar_stops_its_thread_when_the_consumer_leaves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(spool, "COMPRESS_LEVEL", 0)  # every byte goes through
    store = Spool()
    try:
        store.write_file("a.bin", b"\x00" * (8 * CHUNK_BYTES))
        before = threading.active_count()
        stream = stream_tar(store, ["a.bin"], 0)
        first = await anext(stream)
        assert len(first) == CHUNK_BYTES
        await asyncio.wait_for(stream.aclose(), timeout=5)  # does not hang on a full pipe
        assert threading.active_count() <= before + 1
    finally:
        store.remove()


# -- parallelism ----------------------------------------------------------------------------


async def test_for_each_bounds_concurrency_and_raises_the_first_failure() -> None:
    running, peak, done = 0, 0, []

    async def work(item: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1
        done.append(item)

    await for_each(range(50), work, 4)
    assert sorted(done) == list(range(50)) and peak == 4

    async def fail(item: int) -> None:
        if item == 3:
            raise BundleInvalid("boom")
        await asyncio.sleep(0.01)

    with pytest.raises(BundleInvalid, match="boom"):
        await for_each(range(100), fail, 4)
