"""What Strands wrote, sessiond adopts — no migration step.

Sessions are written by the real strands-agents package (FileSessionManager on
a directory, S3SessionManager on moto), then served by sessiond as they are.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import boto3
import pytest
from strands.session.file_session_manager import FileSessionManager
from strands.session.s3_session_manager import S3SessionManager

from sessiond.client.aio import text_message
from sessiond.server.storage.local import LocalDirectoryStore
from sessiond.v1 import session_pb2
from support.moto import MOTO_CREDENTIALS
from support.strands_agents import strands_agent, texts

TENANT_DIR = "tenants/default"


def write_strands_sessions(root: Path) -> None:
    """Sessions written by Strands alone: plain, gapped, redacted, trimmed, multi-agent."""
    storage = str(root / TENANT_DIR)
    plain = strands_agent(FileSessionManager("plain", storage_dir=storage), agent_id="helper")
    plain("first question")
    plain("second question")
    gapped = strands_agent(FileSessionManager("gapped", storage_dir=storage))
    for number in range(3):
        gapped(f"gap {number}")
    (root / TENANT_DIR / "session_gapped/agents/agent_default/messages/message_2.json").unlink()
    redacting = FileSessionManager("redacted", storage_dir=storage)
    agent = strands_agent(redacting)
    agent("my card is 4111 1111 1111 1111")
    redaction = {"role": "assistant", "content": [{"text": "[redacted]"}]}
    redacting.redact_latest_message(redaction, agent)
    trimmed = strands_agent(FileSessionManager("trimmed", storage_dir=storage), window=4)
    for number in range(5):
        trimmed(f"trim {number}")
    multi = root / TENANT_DIR / "session_plain/multi_agents/multi_agent_team"
    multi.mkdir(parents=True)
    (multi / "multi_agent.json").write_text(json.dumps({"id": "team", "state": {"round": 2}}))


async def test_a_strands_directory_is_served_as_it_is(serve, tmp_path: Path) -> None:
    write_strands_sessions(tmp_path)
    before = {p: p.read_bytes() for p in (tmp_path / TENANT_DIR).rglob("*") if p.is_file()}
    served = await serve(store=LocalDirectoryStore(tmp_path))
    client = served.client

    listed = {s.session_id: s for s in (await client.list(page_size=50)).sessions}
    assert set(listed) == {"plain", "gapped", "redacted", "trimmed"}
    assert listed["plain"].status == session_pb2.SESSION_STATUS_FINISHED

    plain = await client.get("plain")
    assert plain.agent_id == "helper" and plain.message_count == 4
    assert texts(await client.all_messages("plain", agent_id="helper")) == [
        "first question",
        "reply to: first question",
        "second question",
        "reply to: second question",
    ]
    gapped = await client.all_messages("gapped")
    assert [m.index for m in gapped] == [0, 1, 3, 4, 5]
    redacted = await client.all_messages("redacted")
    assert redacted[1].redact_message.content[0].text == "[redacted]"
    trimmed = await client.get("trimmed")
    assert trimmed.message_count == 10  # every file, whatever Strands' window restores

    # Adoption changed no Strands file; it only added sessiond's own.
    after = {p: p.read_bytes() for p in (tmp_path / TENANT_DIR).rglob("*") if p.is_file()}
    changed = [p for p in before if after.get(p) != before[p]]
    assert changed == []

    # A new turn continues the numbering where Strands left it, gaps and all.
    reply = await client.chat("gapped", "after the gap")
    assert [m.index for m in reply.messages] == [6, 7]
    async with client.run("plain", "hello again", agent_id="helper") as turn:
        assert len(turn.history) == 4
        await turn.finish([text_message("assistant", "hi")])

    # Strands still restores every session, including the ones sessiond extended.
    storage = str(tmp_path / TENANT_DIR)
    restored = strands_agent(FileSessionManager("gapped", storage_dir=storage))
    assert restored.messages[-1]["content"][0]["text"] == "echo: after the gap"
    # Multi-agent state is untouched by every operation, exported, and imported back.
    team = tmp_path / TENANT_DIR / "session_plain/multi_agents/multi_agent_team/multi_agent.json"
    assert json.loads(team.read_text()) == {"id": "team", "state": {"round": 2}}
    bundle = tmp_path / "all.tar.gz"
    exported = await client.export_to_file(bundle)
    assert exported.manifest.session_count == 4
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        member = "strands/session_plain/multi_agents/multi_agent_team/multi_agent.json"
        assert tar.extractfile(member).read() == team.read_bytes()
    assert "strands/session_trimmed/agents/agent_default/agent.json" in names
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    other = await serve(store=LocalDirectoryStore(elsewhere))
    await other.client.import_file(bundle)
    copied = elsewhere / TENANT_DIR / team.relative_to(tmp_path / TENANT_DIR)
    assert copied.read_bytes() == team.read_bytes()
    assert texts(await other.client.all_messages("gapped")) == texts(
        await client.all_messages("gapped")
    )


async def test_strands_appends_are_adopted_on_the_next_commit(serve, tmp_path: Path) -> None:
    served = await serve(store=LocalDirectoryStore(tmp_path))
    client = served.client
    await client.start("shared", agent_state_json='{"mood": "calm"}')
    await client.chat("shared", "from sessiond")
    # A Strands agent restores the session and appends two messages directly.
    manager = FileSessionManager("shared", storage_dir=str(tmp_path / TENANT_DIR))
    agent = strands_agent(manager)
    agent.state.set("mood", "curious")
    agent("from strands")
    # sessiond's next turn detects the append (its create-only write fails)
    # and keeps the Strands messages as history instead of deleting them.
    reply = await client.chat("shared", "back to sessiond")
    assert [m.index for m in reply.messages] == [4, 5]
    assert texts(await client.all_messages("shared")) == [
        "from sessiond",
        "echo: from sessiond",
        "from strands",
        "reply to: from strands",
        "back to sessiond",
        "echo: back to sessiond",
    ]
    session = await client.get("shared")
    assert json.loads(session.agents[0].state_json)["mood"] == "curious"
    replay = await client.replay("shared")
    adopted = [e for e in replay.turns[-1].events if e.type == "messages.adopted"]
    assert json.loads(adopted[0].data_json) == {"first": 2, "count": 2, "from": "strands"}
    files = sorted(
        int(p.stem.split("_")[1])
        for p in (tmp_path / TENANT_DIR / "session_shared/agents/agent_default/messages").iterdir()
    )
    assert files == list(range(6))


async def test_s3_prefix_written_by_strands_is_adopted(serve, make_s3_store, s3_bucket) -> None:
    endpoint, bucket = s3_bucket
    session = boto3.Session(
        aws_access_key_id=MOTO_CREDENTIALS["access_key_id"],
        aws_secret_access_key=MOTO_CREDENTIALS["secret_access_key"],
        region_name=MOTO_CREDENTIALS["region"],
    )
    for sid in ("s3-one", "s3-two"):
        manager = S3SessionManager(
            session_id=sid,
            bucket=bucket,
            prefix="app/tenants/default",
            boto_session=session,
            endpoint_url=endpoint,
        )
        strands_agent(manager)(f"hello from {sid}")
    served = await serve(store=await make_s3_store(prefix="app"))
    listed = sorted(s.session_id for s in (await served.client.list()).sessions)
    assert listed == ["s3-one", "s3-two"]
    assert texts(await served.client.all_messages("s3-two")) == [
        "hello from s3-two",
        "reply to: hello from s3-two",
    ]
    reply = await served.client.chat("s3-one", "and sessiond")
    assert [m.index for m in reply.messages] == [2, 3]


@pytest.fixture(autouse=True)
def _quiet_strands(caplog):
    caplog.set_level("WARNING", logger="strands")


async def test_by_default_a_run_learns_of_strands_appends_at_its_first_commit(
    serve, tmp_path: Path
) -> None:
    """No extra request per claim: the first commit detects and adopts them, and says so."""
    served = await serve(store=LocalDirectoryStore(tmp_path))
    client = served.client
    await client.start("late")
    await client.chat("late", "from sessiond")
    agent = strands_agent(FileSessionManager("late", storage_dir=str(tmp_path / TENANT_DIR)))
    agent("from strands")
    async with client.run("late", "back to sessiond") as turn:
        assert len(turn.history) == 2  # not read at claim
        acknowledged = (await turn.append([text_message("assistant", "partial")])).messages
        # The acknowledgement carries what was stored, Strands' messages first.
        assert [m.index for m in acknowledged] == [2, 3, 4, 5]
        assert texts(acknowledged) == [
            "from strands",
            "reply to: from strands",
            "back to sessiond",
            "partial",
        ]
        await turn.finish()
    assert [m.index for m in await client.all_messages("late")] == list(range(6))


async def test_adopt_on_claim_puts_strands_appends_in_the_restored_context(
    serve, tmp_path: Path
) -> None:
    """With --adopt-on-claim the runtime's context and the input index include them."""
    served = await serve(store=LocalDirectoryStore(tmp_path), adopt_on_claim=True)
    client = served.client
    await client.start("relay")
    await client.chat("relay", "from sessiond")
    agent = strands_agent(FileSessionManager("relay", storage_dir=str(tmp_path / TENANT_DIR)))
    agent("from strands")
    async with client.run("relay", "back to sessiond") as turn:
        assert texts(turn.history) == [
            "from sessiond",
            "echo: from sessiond",
            "from strands",
            "reply to: from strands",
        ]
        assert turn.started.input.index == 4
        await turn.finish([text_message("assistant", "seen all four")])
    messages = await client.all_messages("relay")
    assert [m.index for m in messages] == list(range(6))
    assert texts(messages)[4:] == ["back to sessiond", "seen all four"]
    events = [e.type for e in (await client.replay("relay")).turns[-1].events]
    assert "messages.adopted" in events


async def test_a_plain_strands_directory_is_served_with_an_empty_tenant_prefix(
    serve, tmp_path: Path
) -> None:
    """Strands' own layout (no tenants/<tenant>/ above it) is served where it lies."""
    storage = tmp_path / "app-sessions"
    storage.mkdir()
    agent = strands_agent(FileSessionManager("legacy", storage_dir=str(storage)))
    agent("written by strands")
    served = await serve(store=LocalDirectoryStore(storage), tenant_prefix="")
    client = served.client
    assert [s.session_id for s in (await client.list()).sessions] == ["legacy"]
    reply = await client.chat("legacy", "served as it is")
    assert [m.index for m in reply.messages] == [2, 3]
    # sessiond's files sit beside Strands' (session_legacy/sessiond/, sessiond/ at the root).
    assert (storage / "session_legacy/sessiond/head.json").is_file()
    assert not (storage / "tenants").exists()
    restored = strands_agent(FileSessionManager("legacy", storage_dir=str(storage)))
    assert restored.messages[-1]["content"][0]["text"] == "echo: served as it is"
    bundle = tmp_path / "legacy.tar.gz"
    await client.export_to_file(bundle)
    with tarfile.open(bundle) as tar:
        assert "strands/session_legacy/agents/agent_default/messages/message_3.json" in (
            tar.getnames()
        )
