"""Writes an export's files into its spool, one session at a time (blocking; run in a thread)."""

from __future__ import annotations

from collections.abc import Sequence

from sessiond.server.domain.bundle import lines, transcript
from sessiond.server.domain.bundle.format import (
    CORE_FILES,
    MESSAGES,
    REVIEWS,
    SESSIONS,
    TURNS,
    FileEntry,
    Manifest,
    transcript_path,
)
from sessiond.server.domain.bundle.spool import HashingFile, Spool
from sessiond.server.domain.records import Head, Turn

#: Encoded text is written in pieces of about this size, not one string per session.
WRITE_BATCH = 256 * 1024


class _Lines:
    """Collects encoded lines and writes them in batches."""

    def __init__(self, target: HashingFile) -> None:
        self._target = target
        self._pending: list[str] = []
        self._size = 0

    def add(self, text: str) -> None:
        self._pending.append(text)
        self._size += len(text)
        if self._size >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        if self._pending:
            self._target.write("".join(self._pending).encode())
            self._pending.clear()
            self._size = 0


class BundleWriter:
    """The files of one export being built in a spool directory.

    Attributes:
        spool: Where the files are.
        entries: Manifest entries of every finished file, by bundle path.
    """

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self.entries: dict[str, FileEntry] = {}
        self._core = {name: HashingFile(spool.path(name)) for name in CORE_FILES}
        self._lines = {name: _Lines(self._core[name]) for name in (MESSAGES, TURNS, REVIEWS)}
        self._sessions = 0
        self._messages = 0
        self._turns = 0
        self._reviews = 0

    def add_session(self, head: Head, turns: Sequence[Turn]) -> None:
        """Appends one session: its entry, messages, turns, reviews and transcript.

        Sessions must come in ``session_id`` order; messages go out by agent
        and index, turns by number, reviews by turn and position.
        """
        sid = head.session_id
        turns = _redacted(head, turns)
        prefix = b"[\n" if self._sessions == 0 else b",\n"
        self._core[SESSIONS].write(prefix + lines.session_line(head).encode())
        self._sessions += 1
        messages = sorted(
            (message for turn in turns for message in turn.messages),
            key=lambda message: (message.agent_id, message.index),
        )
        for message in messages:
            self._lines[MESSAGES].add(lines.message_line(sid, message) + "\n")
        self._messages += len(messages)
        del messages
        for turn in sorted(turns, key=lambda turn: turn.number):
            self._lines[TURNS].add(lines.turn_line(sid, turn) + "\n")
            self._turns += 1
            for review in turn.reviews:
                self._lines[REVIEWS].add(lines.review_line(sid, review) + "\n")
                self._reviews += 1
        for batch in self._lines.values():
            batch.flush()
        path = transcript_path(sid)
        writer = HashingFile(self.spool.path(path))
        pending = _Lines(writer)
        for piece in transcript.render(head, sorted(turns, key=lambda turn: turn.number)):
            pending.add(piece)
        pending.flush()
        self.entries[path] = writer.close()

    def add_file(self, bundle_path: str, data: bytes) -> None:
        """Writes a whole file (a snapshot, a Strands file)."""
        self.entries[bundle_path] = self.spool.write_file(bundle_path, data)

    def finish(self, exported_at: str) -> Manifest:
        """Closes the files and writes ``manifest.json``; returns the manifest."""
        self._core[SESSIONS].write(b"\n]\n" if self._sessions else b"[]\n")
        for batch in self._lines.values():
            batch.flush()
        for name, target in self._core.items():
            self.entries[name] = target.close()
        manifest = Manifest(
            exported_at=exported_at,
            session_count=self._sessions,
            message_count=self._messages,
            turn_count=self._turns,
            review_count=self._reviews,
            files=dict(self.entries),
        )
        self.spool.write_file("manifest.json", manifest.to_json().encode())
        return manifest

    def abandon(self) -> None:
        """Closes any open file (the export failed; the spool is about to be removed)."""
        for target in self._core.values():
            try:
                target.close()
            except (OSError, ValueError):
                pass


def _redacted(head: Head, turns: Sequence[Turn]) -> Sequence[Turn]:
    """The turns with each agent's redaction overlay applied, as readers see them.

    Redactions of messages already in immutable packs live in the agent's
    ``redactions`` overlay (kept in ``sessions.json`` too); ``messages.jsonl``
    and transcripts show the redacted form, never the original. Import
    stores the redacted form in its packs and keeps the overlay, which gives
    the same reads and the same bundle again.
    """
    overlay = {
        (agent_id, index): redaction
        for agent_id, agent in head.agents.items()
        for index, redaction in (getattr(agent, "redactions", None) or {}).items()
    }
    if not overlay:
        return turns
    result = []
    for turn in turns:
        messages = [
            message.model_copy(update={"redact_message": overlay[key]})
            if (key := (message.agent_id, message.index)) in overlay
            else message
            for message in turn.messages
        ]
        result.append(turn.model_copy(update={"messages": messages}))
    return result
