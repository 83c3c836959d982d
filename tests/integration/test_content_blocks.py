"""Every Converse / Strands content block round-trips through the contract, the store and a bundle.

Typed blocks (text, image and document with bytes, toolUse, toolResult) and
everything else (``raw_json``: cachePoint, guardContent, citationsContent,
video, audio, reasoningContent with text or redacted bytes, images and
documents by S3 location, toolResult items of JSON) must come back exactly as
the runtime sent them: from ``ListMessages``, from the Strands message file
(which the real ``strands-agents`` decoder reads, bytes included), and after
export → delete → import.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from strands.types.session import decode_bytes_values

from sessiond.content import message_from_dict, message_to_dict

pytestmark = pytest.mark.parametrize("store_kind", ["local", "s3"], indirect=True)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(40))


def wrapped(data: bytes) -> dict[str, Any]:
    """Bytes as Strands writes them in JSON."""
    return {"__bytes_encoded__": True, "data": base64.b64encode(data).decode()}


USER_BLOCKS: list[dict[str, Any]] = [
    {"text": "look at these"},
    {"image": {"format": "png", "source": {"bytes": wrapped(PNG)}}},
    {"document": {"format": "txt", "name": "notes", "source": {"bytes": wrapped(b"a\nb\n")}}},
    {"image": {"format": "jpeg", "source": {"s3Location": {"uri": "s3://media/cat.jpg"}}}},
    {
        "document": {
            "format": "pdf",
            "name": "report",
            "source": {"s3Location": {"uri": "s3://docs/r.pdf", "bucketOwner": "123456789012"}},
            "context": "quarterly figures",
        }
    },
    {"video": {"format": "mp4", "source": {"bytes": wrapped(b"\x00\x00\x00\x18ftypmp42")}}},
    {"audio": {"format": "mp3", "source": {"bytes": wrapped(b"ID3\x04\x00")}}},
    {"guardContent": {"text": {"text": "user input to check", "qualifiers": ["query"]}}},
    {"cachePoint": {"type": "default"}},
]
ASSISTANT_BLOCKS: list[dict[str, Any]] = [
    {"reasoningContent": {"reasoningText": {"text": "thinking…", "signature": "sig-1"}}},
    {"reasoningContent": {"redactedContent": wrapped(b"\x01\x02opaque")}},
    {
        "citationsContent": {
            "citations": [
                {
                    "title": "notes",
                    "sourceContent": [{"text": "a"}],
                    "location": {"documentChar": {"documentIndex": 0, "start": 0, "end": 1}},
                }
            ],
            "content": [{"text": "As the notes say, a."}],
        }
    },
    {"toolUse": {"toolUseId": "tu-1", "name": "lookup", "input": {"q": "a", "n": [1, 2.5]}}},
]
RESULT_BLOCKS: list[dict[str, Any]] = [
    {
        "toolResult": {
            "toolUseId": "tu-1",
            "status": "success",
            "content": [
                {"text": "found"},
                {"json": {"rows": [{"id": 1, "ok": True, "none": None}]}},
                {"image": {"format": "png", "source": {"bytes": wrapped(PNG)}}},
            ],
        }
    },
    {"toolResult": {"toolUseId": "tu-2", "status": "error", "content": [{"text": "no"}]}},
]
MESSAGES = [
    {"role": "user", "content": USER_BLOCKS},
    {"role": "assistant", "content": ASSISTANT_BLOCKS, "metadata": {"usage": {"totalTokens": 3}}},
    {"role": "user", "content": RESULT_BLOCKS},
    {"role": "assistant", "content": [{"text": "done"}]},
]


async def stored_messages(client, session_id: str) -> list[dict[str, Any]]:
    return [message_to_dict(m.message) for m in await client.all_messages(session_id)]


async def test_every_block_kind_round_trips(served, tmp_path: Path) -> None:
    client = served.client
    await client.start("blocks")
    first, *rest = [message_from_dict(m) for m in MESSAGES]
    async with client.run("blocks", first) as turn:
        await turn.append(rest[:2])
        await turn.finish(rest[2:])
    # The typed blocks arrive typed, the others verbatim.
    kinds = [b.WhichOneof("block") for b in first.content]
    assert kinds[:3] == ["text", "image", "document"] and set(kinds[3:]) == {"raw_json"}
    assert await stored_messages(client, "blocks") == MESSAGES

    # The Strands files hold the same blocks, and Strands' decoder gets the bytes back.
    prefix = "tenants/default/session_blocks/agents/agent_default/messages/"
    items = await served.store.list_all(prefix)
    assert len(items) == len(MESSAGES)
    bodies = {
        int(item.key.rsplit("_", 1)[1].removesuffix(".json")): (
            await served.store.get(item.key)
        ).body
        for item in items
    }
    files = [json.loads(bodies[n])["message"] for n in sorted(bodies)]
    assert files == MESSAGES
    decoded = decode_bytes_values(files[0])
    assert decoded["content"][1]["image"]["source"]["bytes"] == PNG
    assert decode_bytes_values(files[1])["content"][1]["reasoningContent"]["redactedContent"] == (
        b"\x01\x02opaque"
    )

    # A bundle carries them exactly.
    bundle = tmp_path / "blocks.tar.gz"
    await client.export_to_file(bundle, session_ids=["blocks"])
    await client.delete("blocks")
    await client.import_file(bundle)
    assert await stored_messages(client, "blocks") == MESSAGES
