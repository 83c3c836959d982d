"""The session commands: ls, show, reviews, approve, reject, resume, archive, unarchive,
delete, replay."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import Any

from sessiond.client.cli import output
from sessiond.client.cli.context import Context
from sessiond.client.messages import session_status
from sessiond.v1 import turn_pb2

Register = Callable[..., argparse.ArgumentParser]


def _status(value: str) -> list[int]:
    try:
        return [session_status(part) for part in value.split(",") if part.strip()]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _label(value: str) -> tuple[str, str]:
    key, sep, label = value.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"a label is key=value, not {value!r}")
    return key, label


def non_negative_int(value: str) -> int:
    """An argparse type: a whole number >= 0."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, not {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {number}")
    return number


def register(add: Register) -> None:
    """Adds the session commands; ``add(name, help=...)`` makes a subcommand parser."""
    ls = add("ls", help="list sessions, newest first")
    ls.add_argument(
        "--status",
        type=_status,
        action="append",
        default=[],
        help="only these statuses (repeatable or comma-separated: waiting,finished)",
    )
    ls.add_argument(
        "--label",
        type=_label,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="only sessions with this label (repeatable)",
    )
    which = ls.add_mutually_exclusive_group()
    which.add_argument(
        "--archived",
        action="store_const",
        dest="archived",
        const="only",
        default="exclude",
        help="only archived sessions",
    )
    which.add_argument(
        "--all",
        action="store_const",
        dest="archived",
        const="include",
        help="archived sessions and the others",
    )
    ls.add_argument(
        "--limit", type=non_negative_int, default=100, help="at most this many (0: all; 100)"
    )
    ls.add_argument("--page-token", default="", help="continue a listing (from JSON output)")
    ls.set_defaults(handler=cmd_ls)

    show = add("show", help="show a session")
    show.add_argument("session")
    show.add_argument("--messages", action="store_true", help="also every message")
    show.add_argument("--agent", default="", help="the agent of --messages (default agent)")
    show.set_defaults(handler=cmd_show)

    reviews = add("reviews", help="list reviews waiting for a decision")
    reviews.add_argument("session", nargs="?", default="", help="one session (default: all)")
    reviews.set_defaults(handler=cmd_reviews)

    for name, action in (("approve", "approve"), ("reject", "reject")):
        decide = add(name, help=f"{name} a pending review")
        decide.add_argument("review")
        decide.add_argument("--session", default="", help="the review's session (looked up)")
        decide.add_argument("--comment", "-m", default="", help="why")
        decide.add_argument("--reviewer", default=None, help="who decides (default: $USER)")
        decide.set_defaults(handler=cmd_decide, action=action)

    resume = add("resume", help="continue a hibernated server-engine turn")
    resume.add_argument("session")
    resume.set_defaults(handler=cmd_resume)

    for name in ("archive", "unarchive"):
        change = add(name, help=f"{name} a session")
        change.add_argument("session")
        change.set_defaults(handler=cmd_archive, change=name)

    delete = add("delete", help="delete a session and all its messages")
    delete.add_argument("session")
    delete.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    delete.set_defaults(handler=cmd_delete)

    replay = add("replay", help="the session's timeline: turns, events, messages, reviews")
    replay.add_argument("session")
    replay.set_defaults(handler=cmd_replay)


def cmd_ls(args: argparse.Namespace, ctx: Context) -> int:
    """``sessiond ls``."""
    statuses = [status for group in args.status for status in group]
    found: list[Any] = []
    token = args.page_token
    while True:
        size = min(args.limit - len(found), 1000) if args.limit > 0 else 1000
        page = ctx.client.list(
            statuses=statuses,
            labels=dict(args.label),
            archived=args.archived,
            page_size=size,
            page_token=token,
        )
        found.extend(page.sessions)
        token = page.next_page_token
        if not token or (args.limit > 0 and len(found) >= args.limit):
            break
    if ctx.json:
        ctx.emit({"sessions": [output.to_json(s) for s in found], "next_page_token": token})
        return 0
    if not found:
        print("no sessions")
    else:
        output.table(
            ["SESSION", "STATUS", "MESSAGES", "TURNS", "REVIEWS", "UPDATED", "TITLE"],
            [
                [
                    s.session_id,
                    output.status_name(s),
                    s.message_count,
                    s.turn_count,
                    s.pending_review_count,
                    output.when(s.update_time),
                    s.title,
                ]
                for s in found
            ],
        )
    if token:
        print(f"(more sessions: --page-token {token})", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace, ctx: Context) -> int:
    """``sessiond show``."""
    session = ctx.client.get(args.session)
    messages = ctx.client.all_messages(args.session, args.agent) if args.messages else None
    if ctx.json:
        body: dict[str, Any] = {"session": output.to_json(session)}
        if messages is not None:
            body["messages"] = [output.to_json(m) for m in messages]
        ctx.emit(body)
        return 0
    output.fields(output.session_fields(session))
    if messages is not None:
        print()
        for message in messages:
            print(
                f"[{message.index}] {output.role_name(message.message)}: "
                f"{output.message_line(message.message)}"
            )
    return 0


def cmd_reviews(args: argparse.Namespace, ctx: Context) -> int:
    """``sessiond reviews``."""
    reviews = list(ctx.client.iter_pending_reviews(session_id=args.session))
    if ctx.json:
        ctx.emit({"reviews": [output.to_json(r) for r in reviews]})
        return 0
    print_reviews(reviews)
    return 0


def print_reviews(reviews: list[turn_pb2.Review]) -> None:
    """A table of reviews, or ``no pending reviews``."""
    if not reviews:
        print("no pending reviews")
        return
    output.table(
        ["REVIEW", "SESSION", "TOOL", "CREATED", "EXPIRES", "INPUT"],
        [
            [
                r.review_id,
                r.session_id,
                r.tool_name,
                output.when(r.create_time),
                output.when(r.expire_time),
                output.shorten(r.input_json, 40)
                + (f"  ({output.shorten(r.description, 40)})" if r.description else ""),
            ]
            for r in reviews
        ],
    )


def cmd_decide(args: argparse.Namespace, ctx: Context) -> int:
    """``sessiond approve`` / ``sessiond reject``."""
    reviewer = args.reviewer if args.reviewer is not None else current_user()
    result = ctx.client.resolve_review(
        args.review,
        action=args.action,
        comment=args.comment,
        reviewer=reviewer,
        session_id=args.session,
    )
    if ctx.json:
        ctx.emit(output.to_json(result))
        return 0
    verb = "approved" if args.action == "approve" else "rejected"
    print(
        f"{verb} review {result.review.review_id} in session {result.session.session_id}; "
        f"the session is {output.status_name(result.session)}"
    )
    return 0


def current_user() -> str:
    """The login name of the person running the command ("" if unknown)."""
    try:
        return getpass.getuser()
    except Exception:
        return ""


def cmd_resume(args: argparse.Namespace, ctx: Context) -> int:
    """``sessiond resume``."""
    result = ctx.client.resume(args.session)
    if ctx.json:
        ctx.emit(output.to_json(result))
        return 0
    if result.text:
        print(result.text)
    else:
        print(f"(no answer: the session is {output.status_name(result.session)})")
    return 0


def cmd_archive(args: argparse.Namespace, ctx: Context) -> int:
    """``sessiond archive`` / ``sessiond unarchive``."""
    change = ctx.client.archive if args.change == "archive" else ctx.client.unarchive
    session = change(args.session)
    if ctx.json:
        ctx.emit({"session": output.to_json(session)})
    else:
        print(f"{args.change}d session {session.session_id}")
    return 0


def cmd_delete(args: argparse.Namespace, ctx: Context) -> int:
    """``sessiond delete``."""
    if not args.yes and sys.stdin.isatty():
        answer = input(f"delete session {args.session} and all its messages? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not deleted", file=sys.stderr)
            return 1
    ctx.client.delete(args.session)
    if ctx.json:
        ctx.emit({"deleted": args.session})
    else:
        print(f"deleted session {args.session}")
    return 0


def cmd_replay(args: argparse.Namespace, ctx: Context) -> int:
    """``sessiond replay``."""
    turns = ctx.client.timeline(args.session)
    if ctx.json:
        ctx.emit({"session_id": args.session, "turns": [output.to_json(t) for t in turns]})
        return 0
    if not turns:
        print(f"session {args.session} has no turns yet")
        return 0
    messages: dict[str, dict[int, Any]] = {}
    for agent in {t.agent_id for t in turns}:
        messages[agent] = {m.index: m.message for m in ctx.client.all_messages(args.session, agent)}
    for turn in turns:
        print_turn(turn, messages.get(turn.agent_id, {}))
    return 0


def print_turn(turn: turn_pb2.Turn, messages: dict[int, Any]) -> None:
    """One turn of a timeline: header, events, messages, reviews, error."""
    status = output.enum_name(turn.status, turn_pb2.TurnStatus, "TURN_STATUS_")
    span = f"{output.when(turn.start_time)} -> {output.when(turn.end_time)}"
    resumed = f", resumed {turn.resume_count}x" if turn.resume_count else ""
    print(
        f"turn {turn.number}  {turn.turn_id}  {turn.engine or 'client'}  {status}  "
        f"agent {turn.agent_id}  {span}{resumed}"
    )
    for event in turn.events:
        stamp = event.time.ToDatetime().astimezone().strftime("%H:%M:%S.%f")[:-3]
        print(f"  {stamp}  {event.type}{_event_data(event.data_json)}")
    first = turn.first_message_index
    for index in range(first, first + turn.message_count):
        if index in messages:
            message = messages[index]
            print(f"    [{index}] {output.role_name(message)}: {output.message_line(message)}")
    for review in turn.reviews:
        state = output.enum_name(review.state, turn_pb2.ReviewState, "REVIEW_STATE_")
        line = f"  review {review.review_id} {review.tool_name}: {state}"
        if review.HasField("decision") and review.decision.action:
            action = output.enum_name(
                review.decision.action, turn_pb2.ReviewAction, "REVIEW_ACTION_"
            )
            line += f" {action.lower()}"
            if review.decision.reviewer:
                line += f" by {review.decision.reviewer}"
            if review.decision.comment:
                line += f' ("{review.decision.comment}")'
        print(line)
    if turn.HasField("error") and (turn.error.code or turn.error.message):
        print(f"  error {turn.error.code}: {turn.error.message}")


def _event_data(data_json: str) -> str:
    if not data_json:
        return ""
    try:
        data = json.loads(data_json)
    except ValueError:
        return "  " + output.shorten(data_json)
    if isinstance(data, dict):
        return "  " + output.shorten(" ".join(f"{k}={json.dumps(v)}" for k, v in data.items()), 80)
    return "  " + output.shorten(data_json)
