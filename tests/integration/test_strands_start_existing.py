"""Start on an id Strands already wrote: its files survive, and the session is adopted.

``SessiondSessionManager`` sends ``Start(return_existing=True)`` whenever an
agent is created, so pointing it at a Strands bucket goes through here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from strands.session.file_session_manager import FileSessionManager

from sessiond.errors import SessionAlreadyExists
from sessiond.server.storage.local import LocalDirectoryStore
from support.strands_agents import strands_agent

TENANT_DIR = "tenants/default"


def files_of(root: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}


async def test_start_returning_existing_adopts_and_keeps_strands_files(
    serve, tmp_path: Path
) -> None:
    storage = str(tmp_path / TENANT_DIR)
    trimmed = strands_agent(FileSessionManager("trimmed", storage_dir=storage), window=4)
    trimmed.state.set("user", "Ada")
    for number in range(5):
        trimmed(f"trim {number}")
    root = tmp_path / TENANT_DIR / "session_trimmed"
    before = files_of(root)
    agent_json = json.loads((root / "agents/agent_default/agent.json").read_text())
    assert agent_json["conversation_manager_state"]["removed_message_count"] > 0

    served = await serve(store=LocalDirectoryStore(tmp_path))
    started = await served.client.start("trimmed", return_existing=True)
    assert not started.created
    assert started.session.message_count == 10
    assert json.loads(started.session.agents[0].state_json) == {"user": "Ada"}
    after = files_of(root)
    assert [p for p in before if after.get(p) != before[p]] == []


async def test_plain_start_on_a_strands_session_is_refused_and_changes_no_file(
    serve, tmp_path: Path
) -> None:
    storage = str(tmp_path / TENANT_DIR)
    agent = strands_agent(FileSessionManager("mine", storage_dir=storage))
    agent.state.set("user", "Ada")
    agent("hello")
    root = tmp_path / TENANT_DIR / "session_mine"
    before = files_of(root)
    served = await serve(store=LocalDirectoryStore(tmp_path))
    with pytest.raises(SessionAlreadyExists):
        await served.client.start("mine")
    after = files_of(root)
    assert [p for p in before if after.get(p) != before[p]] == []
    assert (await served.client.get("mine")).message_count == 2
