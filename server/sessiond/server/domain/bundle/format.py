"""The bundle format: file names, paths, JSON encoding and the manifest.

A bundle is a set of files, shipped as a tar.gz (``manifest.json`` first) or
as objects under ``exports/<name>/`` of the tenant::

    manifest.json                       format, counts, sha256 + size of every other file
    sessions.json                       JSON array, one session per line, by session_id
    messages.jsonl                      one message per line, by session, agent, index
    turns.jsonl                         one turn per line (no messages), by session, number
    reviews.jsonl                       one review per line, by session, turn, position
    snapshots/<session_id>/<name>       raw bytes of the snapshots turns reference
    transcripts/<session_id>.md         a readable transcript (not read by Import)
    strands/session_<session_id>/...    exact copies of the session's Strands files

JSON is UTF-8 with ``ensure_ascii=False``. Key order of sessiond's own
objects is fixed by the record models; key order inside user content
(messages, states, tool inputs) is preserved, because it is visible through
the API (``raw_json`` blocks). Export → import → export therefore gives
identical files, apart from ``exported_at`` in the manifest.

In a store prefix, a file larger than :data:`PART_BYTES` is stored as parts
``<path>.part-000000``, ``<path>.part-000001``, ... (the object-store port
writes whole objects, and a part bounds the memory of one write); the
manifest always describes whole files (and is itself never split).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from sessiond.errors import BundleInvalid
from sessiond.server.domain.validation import ID_PATTERN

#: The only file name Strands allows under ``messages/``.
_MESSAGE_FILE = re.compile(r"message_(0|[1-9][0-9]*)\.json")

FORMAT = "sessiond-bundle"
FORMAT_VERSION = 1

MANIFEST = "manifest.json"
SESSIONS = "sessions.json"
MESSAGES = "messages.jsonl"
TURNS = "turns.jsonl"
REVIEWS = "reviews.jsonl"
#: The files every bundle has, besides the manifest.
CORE_FILES = (SESSIONS, MESSAGES, TURNS, REVIEWS)

SNAPSHOTS_DIR = "snapshots/"
TRANSCRIPTS_DIR = "transcripts/"
STRANDS_DIR = "strands/"

#: Size of the tar.gz chunks an export streams.
CHUNK_BYTES = 256 * 1024
#: Largest object written to (or expected in) a store prefix; bigger files are split.
PART_BYTES = 4 * 1024 * 1024
PART_SUFFIX = re.compile(r"^(?P<path>.+)\.part-(?P<number>\d{6})$")
#: Largest manifest Import reads into memory.
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
MAX_PATH_CHARS = 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


def dumps(value: Any) -> str:
    """Compact JSON text as written into bundle lines (UTF-8, no ASCII escaping)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def loads(text: bytes | str, *, what: str) -> Any:
    """Parses bundle JSON; anything unparsable (or NaN/Infinity) is ``BundleInvalid``."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        return json.loads(text, parse_constant=refuse)
    except (ValueError, RecursionError) as exc:
        raise BundleInvalid(f"{what} is not valid JSON", file=what) from exc


def part_key(path: str, number: int) -> str:
    """The name of part ``number`` of a file split in a store prefix."""
    return f"{path}.part-{number:06d}"


# -- paths --------------------------------------------------------------------


def snapshot_path(session_id: str, name: str) -> str:
    """Where a snapshot's bytes go in the bundle."""
    return f"{SNAPSHOTS_DIR}{session_id}/{name}"


def transcript_path(session_id: str) -> str:
    """Where a session's transcript goes in the bundle."""
    return f"{TRANSCRIPTS_DIR}{session_id}.md"


def strands_dir(session_id: str) -> str:
    """The bundle directory holding a session's Strands files (trailing slash)."""
    return f"{STRANDS_DIR}session_{session_id}/"


def check_member_path(path: str) -> str:
    """Returns ``path`` if it is a safe relative bundle path, else raises ``BundleInvalid``.

    Safe means: printable ASCII, no backslash, not absolute, and no empty,
    ``.`` or ``..`` segment, so it can never leave the spool directory or
    the session's prefix in the store.
    """
    if (
        not path
        or len(path) > MAX_PATH_CHARS
        or path.startswith("/")
        or "\\" in path
        or not all(" " <= ch <= "~" for ch in path)
        or any(segment in ("", ".", "..") for segment in path.split("/"))
    ):
        raise BundleInvalid("the bundle holds a file with an unsafe path", path=path[:200])
    return path


@dataclass(frozen=True)
class FileKind:
    """What a bundle path is: a core file, a snapshot, a transcript or a Strands file.

    Attributes:
        kind: "core", "snapshot", "transcript" or "strands".
        session_id: The session of a per-session file.
        rest: The snapshot name, or the Strands path relative to the session prefix.
    """

    kind: str
    session_id: str = ""
    rest: str = ""


def classify(path: str) -> FileKind:
    """Classifies a bundle path; unknown paths are ``BundleInvalid``."""
    check_member_path(path)
    if path in CORE_FILES:
        return FileKind("core")
    head, _, rest = path.partition("/")
    if head + "/" == SNAPSHOTS_DIR:
        sid, _, name = rest.partition("/")
        if ID_PATTERN.fullmatch(sid) and ID_PATTERN.fullmatch(name):
            return FileKind("snapshot", sid, name)
    elif head + "/" == TRANSCRIPTS_DIR and rest.endswith(".md"):
        sid = rest[: -len(".md")]
        if ID_PATTERN.fullmatch(sid):
            return FileKind("transcript", sid)
    elif head + "/" == STRANDS_DIR and rest.startswith("session_"):
        sid, _, inner = rest[len("session_") :].partition("/")
        # sessiond's own objects (head, packs, snapshots) are rebuilt by the
        # import, never copied: a bundle must not be able to plant a head.
        if ID_PATTERN.fullmatch(sid) and inner and inner.split("/")[0] != "sessiond":
            parts = inner.split("/")
            # Nothing but message_<n>.json under messages/: anything else
            # there crashes Strands' restore of the session.
            in_messages = len(parts) >= 3 and parts[0] == "agents" and parts[2] == "messages"
            if not in_messages or (len(parts) == 4 and _MESSAGE_FILE.fullmatch(parts[3])):
                return FileKind("strands", sid, inner)
    raise BundleInvalid("the bundle holds a file of an unknown kind", path=path[:200])


# -- manifest -----------------------------------------------------------------


@dataclass(frozen=True)
class FileEntry:
    """A file as the manifest lists it."""

    sha256: str
    size: int


@dataclass
class Manifest:
    """The parsed ``manifest.json``."""

    exported_at: str
    session_count: int = 0
    message_count: int = 0
    turn_count: int = 0
    review_count: int = 0
    files: dict[str, FileEntry] = field(default_factory=dict)
    #: sha256 (hex) of the manifest's own bytes, when parsed from a bundle.
    digest: str = ""

    def to_json(self) -> str:
        """The manifest's text, deterministic (files sorted by path)."""
        document = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "exported_at": self.exported_at,
            "session_count": self.session_count,
            "message_count": self.message_count,
            "turn_count": self.turn_count,
            "review_count": self.review_count,
            "files": {
                path: {"sha256": entry.sha256, "size": entry.size}
                for path, entry in sorted(self.files.items())
            },
        }
        return json.dumps(document, ensure_ascii=False, indent=1) + "\n"


def _count(document: dict[str, Any], name: str) -> int:
    value = document.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BundleInvalid(f"the manifest's {name} is not a count", file=MANIFEST)
    return value


def parse_manifest(body: bytes) -> Manifest:
    """Parses and checks ``manifest.json``; raises ``BundleInvalid`` on any problem."""
    if len(body) > MAX_MANIFEST_BYTES:
        raise BundleInvalid("the manifest is too large", file=MANIFEST)
    document = loads(body, what=MANIFEST)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise BundleInvalid("this is not a sessiond bundle", file=MANIFEST)
    if document.get("format_version") != FORMAT_VERSION:
        raise BundleInvalid(
            "unsupported bundle format version",
            file=MANIFEST,
            format_version=document.get("format_version"),
        )
    files = document.get("files")
    exported_at = document.get("exported_at")
    if not isinstance(files, dict) or not isinstance(exported_at, str):
        raise BundleInvalid("the manifest lacks files or exported_at", file=MANIFEST)
    manifest = Manifest(
        exported_at=exported_at,
        session_count=_count(document, "session_count"),
        message_count=_count(document, "message_count"),
        turn_count=_count(document, "turn_count"),
        review_count=_count(document, "review_count"),
        digest=hashlib.sha256(body).hexdigest(),
    )
    for path, entry in files.items():
        classify(path)
        if (
            not isinstance(entry, dict)
            or set(entry) != {"sha256", "size"}
            or not isinstance(entry["sha256"], str)
            or not _SHA256.fullmatch(entry["sha256"])
            or not isinstance(entry["size"], int)
            or isinstance(entry["size"], bool)
            or entry["size"] < 0
        ):
            raise BundleInvalid("a manifest entry is malformed", path=path[:200])
        manifest.files[path] = FileEntry(entry["sha256"], entry["size"])
    missing = [name for name in CORE_FILES if name not in manifest.files]
    if missing:
        raise BundleInvalid("the manifest lacks a required file", path=missing[0])
    # "a/b" and "a/b/c" cannot both be files of a directory tree.
    directories = {path.rsplit("/", 1)[0] for path in manifest.files if "/" in path}
    directories |= {d.rsplit("/", i)[0] for d in directories for i in range(d.count("/") + 1)}
    clash = directories & set(manifest.files)
    if clash:
        raise BundleInvalid("a bundle file is also a directory", path=min(clash)[:200])
    return manifest
