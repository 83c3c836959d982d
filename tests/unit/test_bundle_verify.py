"""Bundle contents checks (``bundle.verify``) and tar extraction (``bundle.unpack``).

Bundles are built with the export's own writer from hand-made records, then
edited line by line with a recomputed manifest, so each test reaches the
content check it is about instead of failing on a checksum.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sessiond.errors import BundleInvalid
from sessiond.server.domain.bundle import unpack
from sessiond.server.domain.bundle.format import FileEntry, Manifest, parse_manifest
from sessiond.server.domain.bundle.spool import Spool
from sessiond.server.domain.bundle.verify import verify
from sessiond.server.domain.bundle.writer import BundleWriter
from sessiond.server.domain.records import (
    Agent,
    Head,
    Review,
    SnapshotRef,
    Status,
    StoredMessage,
    Turn,
    TurnStatus,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def message(agent_id: str, index: int, turn_id: str) -> StoredMessage:
    role = "user" if index % 2 == 0 else "assistant"
    return StoredMessage(
        agent_id=agent_id,
        index=index,
        message={"role": role, "content": [{"text": f"{agent_id} {index}"}]},
        turn_id=turn_id,
        created_at=NOW,
        updated_at=NOW,
    )


def turn(number: int, agent_id: str, indices: list[int], **fields: object) -> Turn:
    turn_id = f"t{number:06d}"
    return Turn(
        turn_id=turn_id,
        number=number,
        agent_id=agent_id,
        engine="client",
        status=fields.pop("status", TurnStatus.FINISHED),
        started_at=NOW,
        first_index=indices[0] if indices else 0,
        messages=[message(agent_id, i, turn_id) for i in indices],
        **fields,
    )


def session(sid: str) -> tuple[Head, list[Turn]]:
    """Two agents, three turns, the last one waiting with a review and a snapshot."""
    review = Review(
        review_id="r1", turn_id="t000003", tool_name="rm", fingerprint="f", created_at=NOW
    )
    snapshot = SnapshotRef(key="x/snapshots/t000003-0-ab.json", created_at=NOW, size=3)
    turns = [
        turn(1, "default", [0, 1]),
        turn(2, "other", [0, 1]),
        turn(3, "default", [2, 3], status=TurnStatus.WAITING, reviews=[review], snapshot=snapshot),
    ]
    head = Head(
        session_id=sid,
        incarnation="i",
        revision=9,
        created_at=NOW,
        updated_at=NOW,
        status=Status.WAITING,
        agent_id="default",
        agents={
            "default": Agent(agent_id="default", message_count=4, created_at=NOW, updated_at=NOW),
            "other": Agent(agent_id="other", message_count=2, created_at=NOW, updated_at=NOW),
        },
        turn_count=3,
    )
    return head, turns


def bundle_files(sids: tuple[str, ...] = ("s1", "s2")) -> dict[str, bytes]:
    """The files of a valid bundle of ``sids`` (manifest excluded)."""
    spool = Spool()
    try:
        writer = BundleWriter(spool)
        for sid in sids:
            head, turns = session(sid)
            writer.add_file(f"snapshots/{sid}/t000003-0-ab.json", b"abc")
            writer.add_session(head, turns)
            writer.add_file(f"strands/session_{sid}/session.json", b"{}")
        writer.finish("2026-01-01T00:00:00Z")
        return {path: spool.path(path).read_bytes() for path in writer.entries}
    finally:
        spool.remove()


@pytest.fixture
def spool() -> Iterator[Spool]:
    spool = Spool()
    yield spool
    spool.remove()


def check(spool: Spool, files: dict[str, bytes], **counts: int) -> list:
    """Writes ``files`` with a matching manifest and verifies them."""
    entries = {}
    for path, data in files.items():
        entries[path] = spool.write_file(path, data)
    lines = {name: files[name].count(b"\n") for name in ("messages.jsonl", "turns.jsonl")}
    manifest = Manifest(
        exported_at="x",
        session_count=counts.get("sessions", json.loads(files["sessions.json"]).__len__()),
        message_count=counts.get("messages", lines["messages.jsonl"]),
        turn_count=counts.get("turns", lines["turns.jsonl"]),
        review_count=counts.get("reviews", files["reviews.jsonl"].count(b"\n")),
        files=entries,
    )
    return verify(spool, manifest)


def edit(files: dict[str, bytes], name: str, change: Callable[[list[dict]], None]) -> None:
    """Applies ``change`` to the parsed lines of a ``.jsonl`` file (or sessions.json)."""
    if name == "sessions.json":
        items = json.loads(files[name])
        change(items)
        files[name] = json.dumps(items, ensure_ascii=False, indent=2).encode()
        return
    items = [json.loads(line) for line in files[name].splitlines()]
    change(items)
    files[name] = b"".join(json.dumps(item).encode() + b"\n" for item in items)


def test_a_valid_bundle_gives_one_plan_per_session(spool: Spool) -> None:
    files = bundle_files()
    plans = check(spool, files)
    assert [plan.session_id for plan in plans] == ["s1", "s2"]
    first, second = plans
    assert first.message_count == 6
    assert first.strands == ["strands/session_s1/session.json"]
    messages = files["messages.jsonl"]
    assert messages[first.messages[0] : first.messages[1]].count(b"\n") == 6
    assert second.messages[1] == len(messages)
    assert first.turns[1] == second.turns[0] and first.reviews[1] == second.reviews[0]
    assert first.head.agents["other"].message_count == 2


def _drop_message(items: list[dict]) -> None:
    items.pop(1)


def _swap_messages(items: list[dict]) -> None:
    items[0], items[1] = items[1], items[0]


def _unknown_agent(items: list[dict]) -> None:
    items[0]["agent_id"] = "ghost"


def _turn_missing_message(items: list[dict]) -> None:
    items[0]["message_refs"].append(["default", 7])


def _message_without_turn(items: list[dict]) -> None:
    items[0]["message_refs"].pop()


def _shared_message(items: list[dict]) -> None:
    items[1]["message_refs"] = items[0]["message_refs"]


def _malformed_refs(items: list[dict]) -> None:
    items[0]["message_refs"] = [0, 1]


def _message_beyond_count(items: list[dict]) -> None:
    items[1]["index"] = 9


def _open_turn_not_last(items: list[dict]) -> None:
    items[0]["status"] = "HIBERNATED"


def _turn_beyond_count(items: list[dict]) -> None:
    items[2]["number"] = 4


def _review_of_other_turn(items: list[dict]) -> None:
    items[0]["turn_id"] = "t000001"


def _missing_snapshot(items: list[dict]) -> None:
    items[2]["snapshot"]["name"] = "t000003-0-zz.json"


def _unsorted_sessions(items: list[dict]) -> None:
    items.reverse()


def _transient_field(items: list[dict]) -> None:
    items[0]["lease"] = None


def _bad_agent_id(items: list[dict]) -> None:
    items[0]["agents"][1]["agent_id"] = "../x"


def _bad_label(items: list[dict]) -> None:
    items[0]["labels"] = {"Bad Key": "x"}


def _line_of_unknown_session(items: list[dict]) -> None:
    items.append({**items[-1], "session_id": "s3"})


def _duplicate_session(items: list[dict]) -> None:
    items.append(items[0])


def _invalid_session_id(items: list[dict]) -> None:
    items[0]["session_id"] = "a/b"


def _unknown_field(items: list[dict]) -> None:
    items[0]["surprise"] = 1


def _turn_with_messages(items: list[dict]) -> None:
    items[0]["messages"] = []


CASES = [
    ("messages.jsonl", _drop_message),
    ("messages.jsonl", _swap_messages),
    ("messages.jsonl", _unknown_agent),
    ("messages.jsonl", _invalid_session_id),
    ("messages.jsonl", _unknown_field),
    ("messages.jsonl", _message_beyond_count),
    ("turns.jsonl", _malformed_refs),
    ("turns.jsonl", _turn_missing_message),
    ("turns.jsonl", _message_without_turn),
    ("turns.jsonl", _shared_message),
    ("turns.jsonl", _open_turn_not_last),
    ("turns.jsonl", _turn_beyond_count),
    ("turns.jsonl", _missing_snapshot),
    ("turns.jsonl", _line_of_unknown_session),
    ("turns.jsonl", _turn_with_messages),
    ("reviews.jsonl", _review_of_other_turn),
    ("reviews.jsonl", _line_of_unknown_session),
    ("sessions.json", _unsorted_sessions),
    ("sessions.json", _duplicate_session),
    ("sessions.json", _transient_field),
    ("sessions.json", _bad_agent_id),
    ("sessions.json", _bad_label),
]


@pytest.mark.parametrize(("name", "change"), CASES, ids=[c[1].__name__[1:] for c in CASES])
def test_inconsistent_contents_are_refused(
    spool: Spool, name: str, change: Callable[[list[dict]], None]
) -> None:
    files = bundle_files()
    edit(files, name, change)
    with pytest.raises(BundleInvalid):
        check(spool, files)


@pytest.mark.parametrize(
    "broken",
    [b'{"session_id": "s1"', b"NaN\n", b"\n", b"\xff\n", b"[1]\n"],
    ids=["unterminated", "nan", "empty line", "not utf8", "not an object"],
)
def test_malformed_lines_are_refused(spool: Spool, broken: bytes) -> None:
    files = bundle_files()
    files["turns.jsonl"] = broken + files["turns.jsonl"]
    with pytest.raises(BundleInvalid):
        check(spool, files)


def test_gaps_and_messages_of_other_agents_in_a_turn_are_accepted(spool: Spool) -> None:
    """Sessions adopted from Strands keep its numbering, gaps included."""

    def gap(items: list[dict]) -> None:
        del items[1]  # default/1

    def moved(items: list[dict]) -> None:
        items[0]["message_refs"] = [["default", 0], ["other", 0]]  # another agent's message
        items[1]["message_refs"] = [["other", 1]]

    files = bundle_files()
    edit(files, "messages.jsonl", gap)
    edit(files, "turns.jsonl", moved)
    plans = check(spool, files)
    assert plans[0].message_count == 5 and plans[1].message_count == 6


def test_redactions_of_packed_messages_are_applied_in_the_bundle(spool: Spool) -> None:
    if "redactions" not in Agent.model_fields:
        pytest.skip("this build has no redaction overlay")
    head, turns = session("s1")
    hidden = {"role": "user", "content": [{"text": "[hidden]"}]}
    head.agents["default"].redactions = {0: hidden}
    writer = BundleWriter(spool)
    writer.add_session(head, turns)
    writer.finish("x")
    messages = [json.loads(line) for line in spool.path("messages.jsonl").read_bytes().splitlines()]
    assert messages[0]["redact_message"] == hidden and messages[1]["redact_message"] is None
    transcript = spool.path("transcripts/s1.md").read_text()
    assert "[hidden]" in transcript and "default 0" not in transcript
    assert json.loads(spool.path("sessions.json").read_bytes())[0]["agents"][0]["redactions"]


def test_counts_must_match_the_manifest(spool: Spool) -> None:
    with pytest.raises(BundleInvalid, match="counts"):
        check(spool, bundle_files(), reviews=5)


def test_files_of_sessions_not_in_the_bundle_are_refused(spool: Spool) -> None:
    files = bundle_files()
    files["strands/session_zz/session.json"] = b"{}"
    with pytest.raises(BundleInvalid):
        check(spool, files)


def test_hand_formatted_sessions_json_is_accepted(spool: Spool) -> None:
    files = bundle_files()
    edit(files, "sessions.json", lambda items: None)  # re-indented, another layout
    assert len(check(spool, files)) == 2


def test_an_empty_bundle_is_valid(spool: Spool) -> None:
    assert check(spool, bundle_files(())) == []


# -- extraction -------------------------------------------------------------------


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def manifest_of(files: dict[str, bytes]) -> bytes:
    entries = {
        path: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for path, data in files.items()
    }
    document = {
        "format": "sessiond-bundle",
        "format_version": 1,
        "exported_at": "x",
        "session_count": 0,
        "message_count": 0,
        "turn_count": 0,
        "review_count": 0,
        "files": entries,
    }
    return json.dumps(document).encode()


def test_extract_verifies_every_member(spool: Spool, tmp_path: Path) -> None:
    files = bundle_files()
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(tar_bytes([("manifest.json", manifest_of(files)), *files.items()]))
    manifest = unpack.extract(archive, spool)
    assert set(manifest.files) == set(files)
    for path, data in files.items():
        assert spool.path(path).read_bytes() == data
    assert manifest.files["turns.jsonl"] == FileEntry(
        hashlib.sha256(files["turns.jsonl"]).hexdigest(), len(files["turns.jsonl"])
    )


@pytest.mark.parametrize(
    "members",
    [
        lambda f, m: [("manifest.json", m), *f.items(), ("sessions.json", f["sessions.json"])],
        lambda f, m: [("manifest.json", m), ("x/../sessions.json", f["sessions.json"])],
        lambda f, m: [("./manifest.json", m), *f.items()],
        lambda f, m: [("manifest.json", m)],
        lambda f, m: [],
    ],
    ids=["duplicate", "dot-dot inside", "dot segment", "all missing", "empty"],
)
def test_extract_refuses_bad_archives(
    spool: Spool, tmp_path: Path, members: Callable[..., list[tuple[str, bytes]]]
) -> None:
    files = bundle_files()
    archive = tmp_path / "b.tar.gz"
    archive.write_bytes(tar_bytes(members(files, manifest_of(files))))
    with pytest.raises(BundleInvalid):
        unpack.extract(archive, spool)


def test_manifest_clash_between_file_and_directory() -> None:
    files = {name: b"" for name in ("sessions.json", "messages.jsonl", "turns.jsonl")}
    files |= {"reviews.jsonl": b"", "strands/session_a/x": b"", "strands/session_a/x/y": b""}
    with pytest.raises(BundleInvalid, match="directory"):
        parse_manifest(manifest_of(files))
