"""Strands writers beside sessiond: new agents, odd content, the example layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from strands.session.file_session_manager import FileSessionManager

from sessiond.server.storage.local import LocalDirectoryStore
from support.strands_agents import strands_agent, texts

TENANT_DIR = "tenants/default"


@pytest.fixture(autouse=True)
def _quiet_strands(caplog):
    caplog.set_level("WARNING", logger="strands")


async def test_a_new_agent_strands_adds_to_a_served_session(serve, tmp_path: Path) -> None:
    """A Strands agent with a new agent id joins a session sessiond serves; then
    sessiond runs a turn for that agent. Strands' agent state must survive."""
    served = await serve(store=LocalDirectoryStore(tmp_path))
    client = served.client
    await client.start("joined")
    await client.chat("joined", "from sessiond")
    storage = str(tmp_path / TENANT_DIR)
    helper = strands_agent(FileSessionManager("joined", storage_dir=storage), agent_id="helper")
    helper.state.set("notes", "keep me")
    helper("from strands helper")
    agent_json = tmp_path / TENANT_DIR / "session_joined/agents/agent_helper/agent.json"
    assert json.loads(agent_json.read_text())["state"] == {"notes": "keep me"}

    reply = await client.chat("joined", "sessiond to helper", agent_id="helper")
    assert [m.index for m in reply.messages] == [2, 3]
    assert texts(await client.all_messages("joined", agent_id="helper")) == [
        "from strands helper",
        "reply to: from strands helper",
        "sessiond to helper",
        "echo: sessiond to helper",
    ]
    session = await client.get("joined")
    states = {a.agent_id: json.loads(a.state_json or "{}") for a in session.agents}
    on_disk = json.loads(agent_json.read_text())["state"]
    assert (states["helper"], on_disk) == ({"notes": "keep me"}, {"notes": "keep me"})


def _strip(messages):
    return [{k: v for k, v in m.items() if k != "tracking_id"} for m in messages]


async def test_sessiond_manager_restores_what_file_manager_restores(serve, tmp_path: Path) -> None:
    """Trimmed (removed_message_count), gapped and redacted Strands sessions:
    SessiondSessionManager restores the same agent.messages as FileSessionManager."""
    import asyncio

    from sessiond.strands import SessiondSessionManager

    storage = str(tmp_path / TENANT_DIR)
    trimmed = strands_agent(FileSessionManager("trimmed", storage_dir=storage), window=4)
    for number in range(5):
        trimmed(f"trim {number}")
    gapped = strands_agent(FileSessionManager("gapped", storage_dir=storage))
    for number in range(3):
        gapped(f"gap {number}")
    (tmp_path / TENANT_DIR / "session_gapped/agents/agent_default/messages/message_2.json").unlink()
    redacting = FileSessionManager("redacted", storage_dir=storage)
    agent = strands_agent(redacting)
    agent("my card is 4111")
    redacting.redact_latest_message({"role": "assistant", "content": [{"text": "[r]"}]}, agent)
    agent("next")

    served = await serve(store=LocalDirectoryStore(tmp_path))
    # No Get first: the manager's Start(return_existing) adopts each session.
    results = {}
    for sid, window in (("trimmed", 4), ("gapped", None), ("redacted", None)):
        expected = _strip(
            strands_agent(FileSessionManager(sid, storage_dir=storage), window=window).messages
        )

        def restore(sid=sid, window=window):
            manager = SessiondSessionManager(sid, target=served.target)
            try:
                return _strip(strands_agent(manager, window=window).messages)
            finally:
                manager.close()

        got = await asyncio.to_thread(restore)
        results[sid] = (got == expected, len(got), len(expected))
    assert results == {k: (True, v[2], v[2]) for k, v in results.items()}, results


EXOTIC = [
    {
        "role": "user",
        "content": [
            {"text": "look"},
            {"image": {"format": "png", "source": {"bytes": b"\x89PNG\r\n"}}},
            {
                "document": {
                    "format": "pdf",
                    "name": "doc",
                    "source": {"s3Location": {"uri": "s3://b/k.pdf"}},
                }
            },
            {"cachePoint": {"type": "default"}},
            {"guardContent": {"text": {"text": "guarded", "qualifiers": ["query"]}}},
        ],
    },
    {
        "role": "assistant",
        "content": [
            {"reasoningContent": {"reasoningText": {"text": "thinking", "signature": "sig=="}}},
            {"reasoningContent": {"redactedContent": b"\x00\x01secret"}},
            {
                "toolUse": {
                    "toolUseId": "t1",
                    "name": "calc",
                    "input": {"x": [1, 2.5, None, {"y": "z"}]},
                }
            },
        ],
        "metadata": {
            "usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3},
            "metrics": {"latencyMs": 4},
        },
    },
    {
        "role": "user",
        "content": [
            {
                "toolResult": {
                    "toolUseId": "t1",
                    "status": "error",
                    "content": [
                        {"json": {"answer": 42, "list": []}},
                        {"text": "partial"},
                        {"image": {"format": "jpeg", "source": {"bytes": b"\xff\xd8"}}},
                    ],
                }
            },
        ],
    },
    {
        "role": "assistant",
        "content": [
            {
                "citationsContent": {
                    "citations": [
                        {
                            "title": "t",
                            "location": {
                                "documentChar": {"documentIndex": 0, "start": 1, "end": 2}
                            },
                            "sourceContent": [{"text": "s"}],
                        }
                    ],
                    "content": [{"text": "cited"}],
                }
            },
            {"text": ""},
        ],
    },
]


async def test_exotic_blocks_written_by_strands_round_trip(serve, tmp_path: Path) -> None:
    import asyncio
    import copy

    from sessiond.strands import SessiondSessionManager

    storage = str(tmp_path / TENANT_DIR)
    fsm = FileSessionManager("exotic", storage_dir=storage)
    agent = strands_agent(fsm)
    for message in copy.deepcopy(EXOTIC):
        agent.messages.append(message)
        fsm.append_message(message, agent)
    msg_dir = tmp_path / TENANT_DIR / "session_exotic/agents/agent_default/messages"
    # unknown top-level key in a message file (Strands ignores it)
    first = msg_dir / "message_0.json"
    doc = json.loads(first.read_text())
    doc["x_custom"] = {"keep": True}
    first.write_text(json.dumps(doc))
    before = {p.name: p.read_bytes() for p in msg_dir.iterdir()}
    expected = _strip(strands_agent(FileSessionManager("exotic", storage_dir=storage)).messages)

    served = await serve(store=LocalDirectoryStore(tmp_path))
    await served.client.get("exotic")

    def restore():
        manager = SessiondSessionManager("exotic", target=served.target)
        try:
            return _strip(strands_agent(manager).messages)
        finally:
            manager.close()

    got = await asyncio.to_thread(restore)
    diffs = [(i, e, g) for i, (e, g) in enumerate(zip(expected, got, strict=False)) if e != g]
    assert (len(got), diffs) == (len(expected), [])
    await served.client.chat("exotic", "more")
    after = {p.name: p.read_bytes() for p in msg_dir.iterdir()}
    assert [k for k in before if after.get(k) != before[k]] == []
    again = _strip(strands_agent(FileSessionManager("exotic", storage_dir=storage)).messages)
    assert again[:4] == expected


async def test_example_layout_sessions_served(serve, tmp_path: Path) -> None:
    import shutil
    import tarfile

    example = Path(__file__).parents[1] / "data" / "strands_example_layout"  # strands 1.62
    root = tmp_path / TENANT_DIR
    root.mkdir(parents=True)
    for name in ("session_example-graph", "session_example-swarm"):
        shutil.copytree(example / name, root / name)
    shutil.copytree(
        example / "tenants/acme/session_example-session", root / "session_example-session"
    )
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    served = await serve(store=LocalDirectoryStore(tmp_path))
    client = served.client
    listed = sorted(s.session_id for s in (await client.list(page_size=50)).sessions)
    assert listed == ["example-graph", "example-session", "example-swarm"]
    session = await client.get("example-session")
    assert session.agent_id == "assistant" and session.message_count == 10
    msgs = await client.all_messages("example-session", agent_id="assistant")
    assert [m.index for m in msgs] == list(range(10))
    assert msgs[6].HasField("redact_message") and not msgs[7].HasField("redact_message")
    graph = await client.get("example-graph")
    reply = await client.chat("example-graph", "hello graph")
    assert [m.index for m in reply.messages] == [0, 1]
    reply = await client.chat("example-session", "continue", agent_id="assistant")
    assert [m.index for m in reply.messages] == [10, 11]
    bundle = tmp_path / "b.tar.gz"
    await client.export_to_file(bundle)
    with tarfile.open(bundle) as tar:
        names = set(tar.getnames())
    assert (
        "strands/session_example-swarm/multi_agents/multi_agent_default_swarm/multi_agent.json"
        in names
    )
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert [str(p.relative_to(root)) for p in before if after.get(p) != before[p]] == []
    # Strands restores the extended session
    restored = strands_agent(
        FileSessionManager("example-session", storage_dir=str(root)), agent_id="assistant"
    )
    assert restored.messages[-1]["content"][0]["text"] == "echo: continue"
    assert graph.session_id == "example-graph"
