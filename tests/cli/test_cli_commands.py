"""Every non-interactive subcommand, run as the real ``sessiond`` script against a real server.

Text output is read as a person would; ``--output json`` is checked against
the documented shapes (docs/cli.md).
"""

from __future__ import annotations

import asyncio
import getpass

import pexpect
import pytest

from sessiond.v1 import turn_pb2

#: The documented JSON shape of a session (docs/cli.md).
SESSION_KEYS = {
    "session_id",
    "agent_id",
    "title",
    "labels",
    "metadata",
    "status",
    "archived",
    "parent_session_id",
    "message_count",
    "turn_count",
    "usage",
    "create_time",
    "update_time",
    "etag",
    "lease",
    "pending_review_count",
    "agents",
}
MESSAGE_KEYS = {
    "agent_id",
    "index",
    "message",
    "redact_message",
    "turn_id",
    "create_time",
    "update_time",
}
REVIEW_KEYS = {
    "session_id",
    "review_id",
    "turn_id",
    "tool_use_id",
    "tool_name",
    "input_json",
    "description",
    "fingerprint",
    "state",
    "create_time",
    "expire_time",
    "default_action",
    "decision",
}


async def populate(client) -> None:
    """alpha (chatted), beta, gamma (archived), waiting (two reviews), later (hibernated)."""
    await client.start("alpha", title="Alpha", labels={"team": "a"})
    await client.chat("alpha", "hello")
    await client.start("beta", labels={"team": "b"})
    await client.start("gamma")
    await client.archive("gamma")
    await client.start("waiting", title="Needs review")
    async with client.run("waiting", "email my boss") as turn:
        await turn.hibernate(
            ["Asking first."],
            reviews=[
                turn_pb2.ReviewRequest(
                    review_id="rv-1",
                    tool_name="send_email",
                    input_json='{"to": "boss"}',
                    description="sends mail",
                ),
                turn_pb2.ReviewRequest(review_id="rv-2", tool_name="rm", input_json="{}"),
            ],
        )
    await client.start("later")
    await client.chat("later", "think about it", checkpoint="after_prompt")


def ids(result) -> list[str]:
    return [s["session_id"] for s in result.json()["sessions"]]


@pytest.mark.parametrize("store_kind", ["local", "s3"], indirect=True)
async def test_session_commands(served, sessiond) -> None:
    await populate(served.client)

    async def run(*args: str):
        return await sessiond(*args, target=served.target)

    (
        listing,
        listing_json,
        archived,
        everything,
        team_a,
        by_status,
        first_two,
        shown,
        shown_json,
        reviews,
        reviews_json,
        replay,
        replay_json,
    ) = await asyncio.gather(
        run("ls"),
        run("ls", "--output", "json"),
        run("ls", "--archived", "-O", "json"),
        run("ls", "--all"),
        run("ls", "--label", "team=a", "-O", "json"),
        run("ls", "--status", "waiting,hibernated", "-O", "json"),
        run("ls", "--limit", "2", "-O", "json"),
        run("show", "alpha", "--messages"),
        run("show", "alpha", "--messages", "-O", "json"),
        run("reviews"),
        run("reviews", "waiting", "-O", "json"),
        run("replay", "waiting"),
        run("replay", "alpha", "-O", "json"),
    )
    assert listing.code == 0 and listing.err == ""
    lines = listing.out.splitlines()
    assert lines[0].split() == [
        "SESSION", "STATUS", "MESSAGES", "TURNS", "REVIEWS", "UPDATED", "TITLE"
    ]  # fmt: skip
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {"alpha", "beta", "waiting", "later"}
    assert "Needs review" in rows["waiting"] and "WAITING" in rows["waiting"]

    body = listing_json.json()
    assert set(body) == {"sessions", "next_page_token"} and body["next_page_token"] == ""
    assert all(set(s) == SESSION_KEYS for s in body["sessions"])
    by_id = {s["session_id"]: s for s in body["sessions"]}
    assert by_id["waiting"]["status"] == "WAITING" and by_id["waiting"]["pending_review_count"] == 2
    assert by_id["alpha"]["labels"] == {"team": "a"} and by_id["alpha"]["create_time"].endswith("Z")
    assert ids(archived) == ["gamma"]
    assert "gamma" in everything.out and "(archived)" in everything.out
    assert ids(team_a) == ["alpha"]
    assert ids(by_status) == ["later", "waiting"]
    page = first_two.json()
    assert len(page["sessions"]) <= 2 and page["next_page_token"]
    rest = await run("ls", "--limit", "0", "--page-token", page["next_page_token"], "-O", "json")
    assert sorted(ids(first_two) + ids(rest)) == sorted(rows)

    assert shown.code == 0
    assert "title          Alpha" in shown.out and "status         FINISHED" in shown.out
    assert "[0] user: hello" in shown.out and "[1] assistant: echo: hello" in shown.out
    detail = shown_json.json()
    assert set(detail) == {"session", "messages"} and set(detail["session"]) == SESSION_KEYS
    assert all(set(m) == MESSAGE_KEYS for m in detail["messages"])
    assert detail["messages"][1]["message"]["role"] == "ASSISTANT"
    assert detail["messages"][1]["message"]["content"] == [{"text": "echo: hello"}]

    assert "rv-1" in reviews.out and "send_email" in reviews.out and "(sends mail)" in reviews.out
    pending = reviews_json.json()["reviews"]
    assert [r["review_id"] for r in pending] == ["rv-1", "rv-2"]
    assert all(set(r) == REVIEW_KEYS for r in pending) and pending[0]["state"] == "PENDING"

    assert replay.out.startswith("turn 1  t000001  client  WAITING")
    assert "review.requested" in replay.out and "[0] user: email my boss" in replay.out
    assert "review rv-1 send_email: PENDING" in replay.out
    turns = replay_json.json()["turns"]
    assert replay_json.json()["session_id"] == "alpha"
    assert turns[0]["events"][0]["type"] == "turn.started" and turns[0]["status"] == "FINISHED"

    # Decisions, resume, archive, delete (independent ones side by side).
    approved, resumed, archived_beta, deleted = await asyncio.gather(
        run("approve", "rv-1", "-m", "fine", "-O", "json"),
        run("resume", "later"),
        run("archive", "beta"),
        run("delete", "alpha"),
    )
    assert approved.code == 0
    decision = approved.json()["review"]["decision"]
    assert (decision["action"], decision["comment"]) == ("APPROVE", "fine")
    assert decision["reviewer"] == getpass.getuser()
    assert approved.json()["session"]["status"] == "WAITING"
    assert resumed.out.strip() == "echo: think about it"
    assert archived_beta.out.strip() == "archived session beta"
    assert deleted.out.strip() == "deleted session alpha"
    rejected, unarchived, gone = await asyncio.gather(
        run("reject", "rv-2", "--session", "waiting"),
        run("unarchive", "beta", "-O", "json"),
        run("show", "alpha"),
    )
    assert rejected.out.strip() == (
        "rejected review rv-2 in session waiting; the session is HIBERNATED"
    )
    assert unarchived.json()["session"]["archived"] is False
    assert gone.code == 4 and gone.err.strip().endswith("[SESSION_NOT_FOUND]")
    assert (await run("reviews")).out.strip() == "no pending reviews"


@pytest.mark.parametrize("store_kind", ["local", "s3"], indirect=True)
async def test_export_and_import_with_progress(
    served, serve, make_store, sessiond, tmp_path
) -> None:
    client = served.client
    for sid in ("one", "two"):
        await client.start(sid)
        await client.chat(sid, f"hello from {sid}")
    exported = await sessiond(
        "export", "one", "two", "-o", "pair.tar.gz", "--progress", target=served.target
    )
    assert exported.code == 0, exported.err
    assert "export [########################]  2/2 sessions" in exported.err
    assert exported.out.startswith("exported 2 sessions (4 messages, 2 turns, 0 reviews)")
    assert (tmp_path / "pair.tar.gz").is_file()
    as_json = await sessiond("export", "-o", "all.tar.gz", "-O", "json", target=served.target)
    body = as_json.json()
    assert set(body) == {"path", "bytes", "manifest"} and body["path"] == "all.tar.gz"
    assert body["bytes"] == (tmp_path / "all.tar.gz").stat().st_size
    assert body["manifest"] == {
        "format_version": 1,
        "session_count": 2,
        "message_count": 4,
        "turn_count": 2,
        "review_count": 0,
    }
    piped = await sessiond("export", "one", "-o", "-", target=served.target)
    assert piped.raw[:2] == b"\x1f\x8b" and "exported 1 sessions" in piped.err
    missing = await sessiond("export", "one", "nope", "-o", "bad.tar.gz", target=served.target)
    assert missing.code == 4 and not list(tmp_path.glob("bad.tar.gz*"))

    other = await serve(store=await make_store("other"))  # a second store of the same kind
    imported = await sessiond("import", "pair.tar.gz", "--progress", target=other.target)
    assert imported.code == 0, imported.err
    assert "import [########################]  100%" in imported.err
    assert imported.out.strip() == "imported 2 sessions (4 messages): one, two"
    assert (await other.client.get("two")).message_count == 2

    # A newer bundle of a session that exists: refused, or skipped on request.
    await client.chat("one", "more")
    newer = await sessiond("export", "one", "-o", "-", target=served.target)
    conflict = await sessiond("import", "-", stdin=newer.raw, target=other.target)
    assert conflict.code == 5 and "[SESSION_ALREADY_EXISTS]" in conflict.err
    skipped = await sessiond(
        "import", "-", "--skip-existing", "-O", "json", stdin=newer.raw, target=other.target
    )
    assert skipped.json() == {
        "imported_session_ids": [],
        "skipped_session_ids": ["one"],
        "message_count": 0,
    }


@pytest.mark.parametrize("store_kind", ["local", "s3"], indirect=True)
async def test_errors_are_one_line_with_documented_exit_codes(served, sessiond, tmp_path) -> None:
    client = served.client
    await client.start("done")
    await client.chat("done", "hi")
    await client.start("held")
    target = served.target

    bad_id = await sessiond("show", "a/b", target=target)
    assert bad_id.code == 3 and bad_id.err.startswith("sessiond: ") and "[INVALID_ID]" in bad_id.err
    missing = await sessiond("show", "nope", target=target)
    assert (missing.code, missing.out) == (4, "")
    assert missing.err == "sessiond: no such session (session_id=nope) [SESSION_NOT_FOUND]\n"
    finished = await sessiond("resume", "done", target=target)
    assert finished.code == 7 and "[INVALID_TRANSITION]" in finished.err
    async with client.run("held", "working") as turn:
        busy = await sessiond("archive", "held", target=target)
        await turn.finish()
    assert busy.code == 6 and "[SESSION_BUSY]" in busy.err and "lease_expire_time=" in busy.err
    as_json = await sessiond("show", "nope", "-O", "json", target=target)
    assert as_json.out == "" and as_json.code == 4
    error = __import__("json").loads(as_json.err)["error"]
    assert error == {
        "code": "NOT_FOUND",
        "reason": "SESSION_NOT_FOUND",
        "message": "no such session",
        "metadata": {"session_id": "nope"},
        "exit_code": 4,
    }
    for result in (bad_id, missing, finished, busy):
        assert len(result.err.splitlines()) == 1 and "Traceback" not in result.err
    debug = await sessiond("show", "nope", "--debug", target=target)
    assert debug.code == 4 and "Traceback" in debug.err

    closed = await sessiond("ls", "--timeout", "5", target="127.0.0.1:1")
    assert closed.code == 8 and closed.err.startswith("sessiond: cannot reach 127.0.0.1:1")
    usage = await sessiond("ls", "--bogus", target=target)
    assert usage.code == 2 and "unrecognized arguments: --bogus" in usage.err
    assert (await sessiond(target=target)).code == 2
    bad_env = await sessiond("ls", target=target, env={"SESSIOND_OUTPUT": "yaml"})
    assert bad_env.code == 2 and "SESSIOND_OUTPUT must be text or json" in bad_env.err
    from_env = await sessiond("ls", target=target, env={"SESSIOND_OUTPUT": "json"})
    assert sorted(ids(from_env)) == ["done", "held"]
    unreadable = await sessiond("import", str(tmp_path / "absent.tar.gz"), target=target)
    assert unreadable.code == 1 and "No such file" in unreadable.err


def confirm_delete(child, answer: str) -> int:
    child.expect_exact("delete session doomed and all its messages? [y/N] ")
    child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus


@pytest.mark.parametrize("store_kind", ["local", "s3"], indirect=True)
async def test_delete_asks_at_a_terminal(served, spawn, sessiond) -> None:
    await served.client.start("doomed")
    kept = await asyncio.to_thread(
        confirm_delete, spawn("delete", "doomed", target=served.target), "n"
    )
    assert kept == 1 and (await served.client.get("doomed")).session_id == "doomed"
    deleted = await asyncio.to_thread(
        confirm_delete, spawn("delete", "doomed", target=served.target), "y"
    )
    assert deleted == 0
    assert (await sessiond("show", "doomed", target=served.target)).code == 4
