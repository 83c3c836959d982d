"""``sessiond chat`` driven as a person would: typing into a pseudo-terminal (pexpect).

The pexpect dialogue runs in a worker thread while the test's event loop
keeps serving the server; what the server stored is checked afterwards
through the library.
"""

from __future__ import annotations

import asyncio
import json

import pexpect
import pytest

from sessiond.client import message_text
from sessiond.v1 import session_pb2, turn_pb2

pytestmark = pytest.mark.parametrize("store_kind", ["local", "s3"], indirect=True)


def expect_prompt(child: pexpect.spawn, session_id: str) -> None:
    """The prompt shows the session id."""
    child.expect_exact(f"{session_id}> ")


async def prepare(client) -> None:
    """A session with two pending reviews, and one whose Chat turn hibernated."""
    await client.start("waiting")
    async with client.run("waiting", "clean up my mail") as turn:
        await turn.hibernate(
            reviews=[
                turn_pb2.ReviewRequest(review_id="rv-1", tool_name="send_email", input_json="{}"),
                turn_pb2.ReviewRequest(review_id="rv-2", tool_name="delete_all", input_json="{}"),
            ]
        )
    await client.start("later")
    await client.chat("later", "think about it", checkpoint="after_prompt")


def every_slash_command(child: pexpect.spawn) -> str:
    """Types through every slash command; returns the id /clear created."""
    child.expect_exact("Started session first.")
    expect_prompt(child, "first")
    child.sendline("hello there")
    child.expect_exact("echo: hello there")
    expect_prompt(child, "first")

    child.sendline("/status")
    child.expect(r"session\s+first\r\n")
    child.expect(r"status\s+FINISHED\r\n")
    child.expect(r"messages\s+2\r\n")
    child.expect(r"turns\s+1\r\n")
    child.expect(r"created\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\r\n")
    child.expect(r"last activity\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\r\n")
    expect_prompt(child, "first")

    child.sendline("/sessions")
    child.expect(r"SESSION\s+STATUS")
    child.expect(r"\*\s+first\s+")
    expect_prompt(child, "first")

    child.sendline("/new side")
    child.expect_exact("Started session side.")
    expect_prompt(child, "side")

    # /resume switches, and continues a hibernated server-engine turn (Resume RPC).
    child.sendline("/resume later")
    child.expect_exact("Continuing session later (1 messages).")
    child.expect_exact("echo: think about it")
    expect_prompt(child, "later")

    child.sendline("/resume waiting")
    child.expect_exact("(2 reviews pending: /reviews, /approve, /reject)")
    expect_prompt(child, "waiting")
    child.sendline("/reviews")
    child.expect(r"rv-1\s+waiting\s+send_email")
    child.expect(r"rv-2\s+waiting\s+delete_all")
    expect_prompt(child, "waiting")
    child.sendline("/approve rv-1")
    child.expect_exact("Approved review rv-1 (session waiting is WAITING).")
    expect_prompt(child, "waiting")
    child.sendline("/reject rv-2 far too risky")
    child.expect_exact("Rejected review rv-2 (session waiting is HIBERNATED).")
    expect_prompt(child, "waiting")
    child.sendline("/reviews")
    child.expect_exact("no pending reviews")
    expect_prompt(child, "waiting")

    child.sendline("/resume first")
    child.expect_exact("Continuing session first (2 messages).")
    child.expect_exact("you: hello there")
    child.expect_exact("assistant: echo: hello there")
    expect_prompt(child, "first")

    child.sendline("/export first.tar.gz")
    child.expect(r"Exported session first to first\.tar\.gz \(2 messages, [\d.]+ \w?i?B\)\.")
    expect_prompt(child, "first")

    child.sendline("/clear")
    child.expect(r"Started session (s-[0-9a-f]+)\.")
    cleared = child.match.group(1)
    child.expect_exact("(continues first, which is kept)")
    expect_prompt(child, cleared)

    child.sendline("/archive")
    child.expect_exact(f"Archived session {cleared}.")
    expect_prompt(child, cleared)
    child.sendline("anyone there?")
    child.expect(r"error: .*\[SESSION_ARCHIVED\]")
    expect_prompt(child, cleared)

    child.sendline("/help")
    child.expect_exact("/approve <review> [comment]")
    child.expect_exact("/quit")
    expect_prompt(child, cleared)
    child.sendline("/bogus")
    child.expect_exact("unknown command /bogus; /help lists the commands")
    expect_prompt(child, cleared)

    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    return cleared


async def test_chat_with_every_slash_command(served, spawn, tmp_path) -> None:
    client = served.client
    await prepare(client)
    child = spawn("chat", "first", target=served.target)
    cleared = await asyncio.to_thread(every_slash_command, child)

    first = await client.get("first")
    assert (first.message_count, first.turn_count) == (2, 1)
    assert (await client.get("side")).status == session_pb2.SESSION_STATUS_NEW
    assert (await client.get("later")).status == session_pb2.SESSION_STATUS_FINISHED
    fresh = await client.get(cleared)
    assert fresh.parent_session_id == "first" and fresh.archived and fresh.message_count == 0
    reviews = {r.review_id: r for r in (await client.timeline("waiting"))[0].reviews}
    assert reviews["rv-1"].decision.action == turn_pb2.REVIEW_ACTION_APPROVE
    assert reviews["rv-2"].decision.action == turn_pb2.REVIEW_ACTION_REJECT
    assert reviews["rv-2"].decision.comment == "far too risky"
    assert (tmp_path / "first.tar.gz").stat().st_size > 0


def first_process(child: pexpect.spawn) -> str:
    child.expect(r"Started session (s-[0-9a-f]+)\.")
    session_id = child.match.group(1)
    expect_prompt(child, session_id)
    child.sendline("remember me")
    child.expect_exact("echo: remember me")
    expect_prompt(child, session_id)
    child.sendline("/quit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    return session_id


def second_process(child: pexpect.spawn, session_id: str) -> None:
    child.expect_exact(f"Continuing session {session_id} (2 messages).")
    child.expect_exact("you: remember me")
    child.expect_exact("assistant: echo: remember me")
    expect_prompt(child, session_id)
    child.sendline("still there?")
    child.expect_exact("echo: still there?")
    expect_prompt(child, session_id)
    child.sendeof()  # Ctrl-D leaves too
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


async def test_a_session_continues_in_the_next_cli_process(served, spawn, tmp_path) -> None:
    session_id = await asyncio.to_thread(first_process, spawn("chat", target=served.target))
    state = json.loads((tmp_path / "state" / "sessiond" / "chat.json").read_text())
    assert state == {"last_session": {served.target: session_id}}
    await asyncio.to_thread(second_process, spawn("chat", target=served.target), session_id)
    texts = [message_text(m) for m in await served.client.all_messages(session_id)]
    assert texts == ["remember me", "echo: remember me", "still there?", "echo: still there?"]
    # Naming the session works the same in yet another process; --new starts afresh.
    child = spawn("chat", "--new", target=served.target)
    other = await asyncio.to_thread(first_process, child)
    assert other != session_id
