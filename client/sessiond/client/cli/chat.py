"""``sessiond chat``: an interactive chat in a session, with slash commands.

Each line typed is one ``Chat`` turn on the server's engine. The session lives
on the server, so its history survives restarting the CLI; the id of the last
session chatted in (per target) is kept in ``$XDG_STATE_HOME/sessiond/chat.json``
(``~/.local/state/sessiond/chat.json``) so ``sessiond chat`` without an
argument continues it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from sessiond.client.cli import output
from sessiond.client.cli.commands import current_user, print_reviews
from sessiond.client.cli.context import Context
from sessiond.client.cli.failures import describe
from sessiond.client.sync import Client
from sessiond.errors import RuntimeRequired, SessiondError, SessionNotFound
from sessiond.v1 import session_pb2

Register = Callable[..., argparse.ArgumentParser]

HELP = """\
Type a message to send it. Commands:
  /status                     this session: id, status, counts, created, last activity
  /sessions                   list sessions (* marks this one)
  /new [id]                   start a new session and switch to it
  /resume [id]                switch to a session; continue its hibernated turn if any
  /clear                      start a fresh session that records this one as its parent
  /archive                    archive this session
  /export [path]              export this session to a tar.gz (default <id>.tar.gz)
  /reviews                    pending reviews of this session
  /approve <review> [comment] approve a review
  /reject <review> [comment]  reject a review
  /help                       this help
  /quit                       leave (Ctrl-D too); the session stays on the server
Start a message with // to send a text beginning with /."""


def state_path() -> Path:
    """The chat's state file: ``$XDG_STATE_HOME/sessiond/chat.json``."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base) / "sessiond" / "chat.json"


def last_session(target: str) -> str | None:
    """The session last chatted in on ``target``, if remembered."""
    try:
        data = json.loads(state_path().read_text(encoding="utf-8"))
        value = data.get("last_session", {}).get(target)
        return value if isinstance(value, str) and value else None
    except (OSError, ValueError, AttributeError):
        return None


def remember_session(target: str, session_id: str) -> None:
    """Records the current session for ``target`` (best effort)."""
    path = state_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        if not isinstance(data, dict) or not isinstance(data.get("last_session"), dict):
            data = {"last_session": {}}
        data["last_session"][target] = session_id
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(path.name + ".tmp")
        part.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(part, path)
    except (OSError, ValueError):
        pass


def register(add: Register) -> None:
    """Adds ``chat``; ``add(name, help=...)`` makes a subcommand parser."""
    chat = add("chat", help="chat interactively in a session (created if new)")
    chat.add_argument(
        "session",
        nargs="?",
        default=None,
        help="the session (default: the last one chatted in, or a new one)",
    )
    chat.add_argument("--new", action="store_true", help="start a new session")
    chat.add_argument("--title", default="", help="title of a session created by the chat")
    chat.add_argument("--engine", default="", help="server engine (default: the server's)")
    chat.add_argument(
        "--history", type=int, default=10, help="messages of history shown when continuing (10)"
    )
    chat.set_defaults(handler=cmd_chat)


def cmd_chat(args: argparse.Namespace, ctx: Context) -> int:
    """``sessiond chat``."""
    # A model's turn may take longer than the 30 s default deadline of other
    # commands (the server allows 120 s per model call, and tool rounds): a
    # chat turn waits as long as it takes (Ctrl-C stops it) unless a
    # deadline was set explicitly.
    turn_timeout = ctx.options.timeout if ctx.options.timeout_given else None
    chat = Chat(
        ctx.client,
        engine=args.engine,
        history=args.history,
        title=args.title,
        turn_timeout=turn_timeout,
    )
    chat.open(args.session, new=args.new)
    return chat.loop()


class Chat:
    """The interactive loop.

    Args:
        client: A connected client.
        engine: Server engine for the turns ("" for the server's default).
        history: How many messages of history to show when continuing a session.
        title: Title of sessions the chat creates.
    """

    def __init__(
        self,
        client: Client,
        *,
        engine: str = "",
        history: int = 10,
        title: str = "",
        turn_timeout: float | None = None,
    ) -> None:
        self.client = client
        self.engine = engine
        self.turn_timeout = turn_timeout
        self.history = history
        self.title = title
        self.session_id = ""
        self.commands: dict[str, Callable[[str], bool | None]] = {
            "status": self.status,
            "sessions": self.sessions,
            "new": self.new,
            "resume": self.resume,
            "clear": self.clear,
            "archive": self.archive,
            "export": self.export,
            "reviews": self.reviews,
            "approve": lambda rest: self.decide("approve", rest),
            "reject": lambda rest: self.decide("reject", rest),
            "help": lambda rest: print(HELP),
            "quit": lambda rest: True,
            "exit": lambda rest: True,
        }

    # -- the session --------------------------------------------------------------------

    def open(self, session_id: str | None, *, new: bool = False) -> None:
        """Opens the session to chat in: the given one (created if new), the last, or a new one."""
        if session_id is None and not new:
            session_id = last_session(self.client.target)
            if session_id is not None:
                try:
                    self._switch(self.client.get(session_id), created=False)
                    return
                except SessionNotFound:
                    print(f"(the last session, {session_id}, no longer exists)")
                    session_id = None
        response = self.client.start(session_id or "", title=self.title, return_existing=True)
        self._switch(response.session, created=response.created)

    def _switch(self, session: session_pb2.Session, *, created: bool) -> None:
        self.session_id = session.session_id
        remember_session(self.client.target, self.session_id)
        if created:
            print(f"Started session {self.session_id}.")
            return
        print(f"Continuing session {self.session_id} ({session.message_count} messages).")
        if self.history > 0 and session.message_count:
            messages = self.client.all_messages(self.session_id)
            shown = messages[-self.history :]
            if len(messages) > len(shown):
                print(f"  ... {len(messages) - len(shown)} earlier messages")
            for message in shown:
                who = "you" if output.role_name(message.message) == "user" else "assistant"
                print(f"  {who}: {output.message_line(message.message)}")
        self._hint(session)

    def _hint(self, session: session_pb2.Session) -> None:
        if session.archived:
            print("(this session is archived: new messages are refused)")
        elif session.status == session_pb2.SESSION_STATUS_WAITING:
            print(f"({session.pending_review_count} reviews pending: /reviews, /approve, /reject)")
        elif session.status == session_pb2.SESSION_STATUS_HIBERNATED:
            print("(the last turn is hibernated: /resume continues it)")

    # -- the loop ---------------------------------------------------------------------------

    @property
    def prompt(self) -> str:
        """The prompt: the session id."""
        return f"{self.session_id}> "

    def loop(self) -> int:
        """Reads lines until ``/quit`` or end of input; returns the exit code."""
        _enable_line_editing()
        while True:
            try:
                line = input(self.prompt)
            except EOFError:
                print()
                return 0
            except KeyboardInterrupt:
                print()
                continue
            try:
                if self.handle(line.strip()):
                    return 0
            except SessiondError as error:
                print(f"error: {describe(error, self.client.target)}")
            except KeyboardInterrupt:
                print("(interrupted)")
            except (OSError, ValueError) as error:
                print(f"error: {error}")

    def handle(self, line: str) -> bool:
        """Handles one line; True to leave."""
        if not line:
            return False
        if line.startswith("/") and not line.startswith("//"):
            name, _, rest = line[1:].partition(" ")
            command = self.commands.get(name.lower())
            if command is None:
                print(f"unknown command /{name}; /help lists the commands")
                return False
            return bool(command(rest.strip()))
        self.say(line[1:] if line.startswith("//") else line)
        return False

    def say(self, text: str) -> None:
        """Sends one message and prints the answer."""
        response = self.client.chat(
            self.session_id, text, engine=self.engine, timeout=self.turn_timeout
        )
        if response.text:
            print(response.text)
        else:
            print(f"(no answer: the session is {output.status_name(response.session)})")

    # -- slash commands -------------------------------------------------------------------

    def status(self, rest: str) -> None:
        """``/status``."""
        output.fields(output.session_fields(self.client.get(self.session_id)))

    def sessions(self, rest: str) -> None:
        """``/sessions``."""
        found = []
        for session in self.client.iter_sessions(page_size=100):
            found.append(session)
            if len(found) >= 50:
                break
        output.table(
            ["", "SESSION", "STATUS", "MESSAGES", "UPDATED", "TITLE"],
            [
                [
                    "*" if s.session_id == self.session_id else "",
                    s.session_id,
                    output.status_name(s),
                    s.message_count,
                    output.when(s.update_time),
                    s.title,
                ]
                for s in found
            ],
        )

    def new(self, rest: str) -> None:
        """``/new [id]``."""
        response = self.client.start(rest, title=self.title)
        self._switch(response.session, created=True)

    def resume(self, rest: str) -> None:
        """``/resume [id]``: switch (when an id is given), then continue a hibernated turn."""
        session = self.client.get(rest or self.session_id)
        if rest and rest != self.session_id:
            self._switch(session, created=False)
        if session.status != session_pb2.SESSION_STATUS_HIBERNATED:
            if not rest:
                print(f"(nothing to resume: the session is {output.status_name(session)})")
            return
        try:
            response = self.client.resume(self.session_id)
        except RuntimeRequired:
            print("(the hibernated turn belongs to the runtime that started it; it resumes it)")
            return
        print(
            response.text or f"(no answer: the session is {output.status_name(response.session)})"
        )

    def clear(self, rest: str) -> None:
        """``/clear``: a fresh session whose parent is the current one."""
        parent = self.session_id
        response = self.client.start(title=self.title, parent_session_id=parent)
        self._switch(response.session, created=True)
        print(f"(continues {parent}, which is kept)")

    def archive(self, rest: str) -> None:
        """``/archive``."""
        self.client.archive(self.session_id)
        print(f"Archived session {self.session_id}. /new or /resume <id> to chat elsewhere.")

    def export(self, rest: str) -> None:
        """``/export [path]``."""
        path = rest or f"{self.session_id}.tar.gz"
        result = self.client.export_to_file(path, session_ids=[self.session_id])
        print(
            f"Exported session {self.session_id} to {result.path} "
            f"({result.manifest.message_count} messages, {output.size(result.size)})."
        )

    def reviews(self, rest: str) -> None:
        """``/reviews``."""
        print_reviews(list(self.client.iter_pending_reviews(session_id=self.session_id)))

    def decide(self, action: str, rest: str) -> None:
        """``/approve <review> [comment]`` and ``/reject <review> [comment]``."""
        review_id, _, comment = rest.partition(" ")
        if not review_id:
            print(f"usage: /{action} <review> [comment]")
            return
        result = self.client.resolve_review(
            review_id, action=action, comment=comment.strip(), reviewer=current_user()
        )
        verb = "Approved" if action == "approve" else "Rejected"
        print(
            f"{verb} review {review_id} (session {result.session.session_id} is "
            f"{output.status_name(result.session)})."
        )


def _enable_line_editing() -> None:
    if sys.stdin.isatty():
        try:
            import readline  # noqa: F401 - line editing and history for input()
        except ImportError:
            pass
