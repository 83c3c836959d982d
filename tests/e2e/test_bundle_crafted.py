"""Bundles made by hand with matching checksums: what an import must still refuse.

A manifest's checksums prove a bundle is intact, not that its maker meant
well. These bundles are exported from a real server, edited, re-checksummed
and imported into another one.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from typing import Any

import pytest

from sessiond.errors import BundleInvalid, SessionAlreadyExists

MESSAGES = "tenants/default/session_s1/agents/agent_default/messages/"


async def exported(served) -> dict[str, bytes]:
    """The files of a bundle of one session "s1" with one Chat turn."""
    await served.client.start("s1")
    await served.client.chat("s1", "one")
    chunks = []
    async for response in served.client.export():
        if response.WhichOneof("event") == "chunk":
            chunks.append(response.chunk)
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def rebuilt(files: dict[str, bytes]) -> list[bytes]:
    """The bundle again, its manifest's checksums matching the edited files."""
    manifest = json.loads(files["manifest.json"])
    manifest["files"] = {
        name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
        for name, data in sorted(files.items())
        if name != "manifest.json"
    }
    members = {**files, "manifest.json": json.dumps(manifest).encode()}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name in ["manifest.json", *(n for n in members if n != "manifest.json")]:
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    return [buffer.getvalue()]


def strands_message(text: str, index: int) -> bytes:
    message = {"role": "user", "content": [{"text": text}]}
    stamp = "2025-01-01T00:00:00+00:00"
    return json.dumps(
        {
            "message": message,
            "message_id": index,
            "redact_message": None,
            "created_at": stamp,
            "updated_at": stamp,
        }
    ).encode()


@pytest.mark.parametrize("name", ["message_x.json", "notes.json", "message_07.json"])
async def test_nothing_but_message_files_under_messages(serve, name: str) -> None:
    files = await exported(await serve())
    files[f"strands/session_s1/agents/agent_default/messages/{name}"] = strands_message("x", 7)
    target = await serve()
    with pytest.raises(BundleInvalid):
        await target.client.import_bundle(rebuilt(files))
    assert await target.store.list_all("tenants/") == []


@pytest.mark.parametrize(
    "bad",
    [
        {"role": "robot", "content": [{"text": "hi"}]},
        {"role": "user", "content": "hi"},
        {"role": "user", "content": ["hi"]},
    ],
    ids=["role", "content-not-a-list", "block-not-an-object"],
)
async def test_messages_sessiond_would_refuse_are_refused(serve, bad: dict[str, Any]) -> None:
    files = await exported(await serve())
    lines = [json.loads(line) for line in files["messages.jsonl"].decode().splitlines()]
    lines[0]["message"] = bad
    files["messages.jsonl"] = "".join(json.dumps(line) + "\n" for line in lines).encode()
    target = await serve()
    with pytest.raises(BundleInvalid):
        await target.client.import_bundle(rebuilt(files))
    assert await target.store.list_all("tenants/") == []


async def test_importing_again_after_the_session_changed_conflicts(serve) -> None:
    files = await exported(await serve())
    target = await serve()
    first = await target.client.import_bundle(rebuilt(files))
    assert list(first.imported_session_ids) == ["s1"]
    # Unchanged since: the same import again completes (a retry is harmless).
    again = await target.client.import_bundle(rebuilt(files))
    assert list(again.imported_session_ids) == ["s1"]
    await target.client.chat("s1", "changed since")
    with pytest.raises(SessionAlreadyExists):
        await target.client.import_bundle(rebuilt(files))
    skipped = await target.client.import_bundle(rebuilt(files), on_conflict="skip")
    assert list(skipped.skipped_session_ids) == ["s1"] and not skipped.imported_session_ids
    assert (await target.client.get("s1")).message_count == 4
