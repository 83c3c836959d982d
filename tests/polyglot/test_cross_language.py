"""A session written by the Python client, continued by the Node client, read back by Python.

Python writes a turn of rich messages (unicode text, a tool call with nested
JSON, a tool result with a JSON item, image and document bytes covering every
byte value, a reasoning block as raw JSON, per-message metadata and extra
keys). Node (client/node/test/crosslang.ts) continues the session as the
runtime: it copies every history message exactly as it received it, then
appends the same messages again from their proto3 JSON form, and sets the
agent state. Python reads everything back and compares, byte for byte, the
protobuf encoding and the stored Strands JSON of each message written by Node
with the one written by Python.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from google.protobuf import json_format
from polyglot.helpers import ServerProcess, run

from sessiond.client.aio import AsyncClient
from sessiond.v1 import content_pb2, session_pb2

Message = content_pb2.Message
Block = content_pb2.ContentBlock


def compact(value: object) -> str:
    """JSON text as the server stores it (it keeps JSON values, not their spelling)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def rich_messages() -> list[content_pb2.Message]:
    """A user input, then what a model and its tools might produce."""
    every_byte = bytes(range(256))
    return [
        Message(
            role=content_pb2.ROLE_USER,
            content=[Block(text='Grüße, 世界 🚀 — "quotes", back\\slash,\ttab\nnew line')],
        ),
        Message(
            role=content_pb2.ROLE_ASSISTANT,
            content=[
                Block(text="Let me look that up."),
                Block(
                    tool_use=content_pb2.ToolUseBlock(
                        tool_use_id="tu-1",
                        name="lookup",
                        input_json=compact(
                            {"q": "Lisbon ✈", "n": 3, "f": 1.5, "nested": {"a": [1, True, None]}}
                        ),
                    )
                ),
            ],
            metadata_json=compact(
                {"usage": {"inputTokens": 7, "outputTokens": 3, "totalTokens": 10}}
            ),
        ),
        Message(
            role=content_pb2.ROLE_USER,
            content=[
                Block(
                    tool_result=content_pb2.ToolResultBlock(
                        tool_use_id="tu-1",
                        status="success",
                        content=[
                            Block(text="found 3 flights"),
                            Block(raw_json=compact({"json": {"flights": [1, 2, 3]}})),
                        ],
                    )
                )
            ],
        ),
        Message(
            role=content_pb2.ROLE_ASSISTANT,
            content=[
                Block(
                    raw_json=compact(
                        {"reasoningContent": {"reasoningText": {"text": "cheapest first"}}}
                    )
                ),
                Block(image=content_pb2.ImageBlock(format="png", data=every_byte)),
                Block(
                    document=content_pb2.DocumentBlock(
                        format="txt", name="itinerary", data=b"day 1\x00day 2\xff"
                    )
                ),
                Block(text="Here are the options."),
            ],
            extra_json=compact({"tracking_id": "trk-42"}),
        ),
    ]


def stored_json(store: Path, session_id: str, index: int) -> str:
    """The ``message`` of a stored Strands message file, as canonical JSON text."""
    pattern = f"**/session_{session_id}/agents/agent_default/messages/message_{index}.json"
    [path] = store.glob(pattern)
    return json.dumps(json.loads(path.read_bytes())["message"], sort_keys=True, ensure_ascii=False)


def wire(message: content_pb2.Message) -> bytes:
    return message.SerializeToString(deterministic=True)


async def test_python_writes_node_continues_python_reads(
    node_client: Path, sessiond_server: ServerProcess, tmp_path: Path
) -> None:
    session_id = f"xlang-{uuid.uuid4().hex[:8]}"
    messages = rich_messages()
    fixture = tmp_path / "fixture.json"
    fixture.write_text(
        json.dumps(
            {
                "input": json_format.MessageToDict(messages[0]),
                "authored": [json_format.MessageToDict(m) for m in messages[1:]],
                "state": {"written_by": "node", "steps": [1, 2], "ünï": "ok"},
            }
        )
    )
    count = len(messages)

    async with AsyncClient(sessiond_server.target) as client:
        # 1. Python writes a turn.
        await client.start(session_id, agent_state_json='{"written_by": "python"}')
        async with client.run(session_id, messages[0]) as turn:
            await turn.append(messages[1:])
            await turn.finish()

        # 2. Node continues the session as the runtime.
        done = run(
            ["node", "dist/test/crosslang.js", sessiond_server.target, session_id, str(fixture)],
            node_client,
        )
        summary = json.loads(done.stdout)
        assert summary["history"] == list(range(count))
        # The first append commits the turn's input (index count) with the copies.
        assert summary["copies"] == list(range(count, 2 * count + 1))
        assert summary["authored"] == list(range(2 * count + 1, 3 * count))
        assert summary["status"] == session_pb2.SESSION_STATUS_FINISHED

        # 3. Python reads it all back.
        stored = await client.all_messages(session_id)
        session = await client.get(session_id)
        reply = await client.chat(session_id, "and now from Python again")

    assert len(stored) == 3 * count
    python_written = stored[:count]
    node_input = stored[count]
    node_copies = stored[count + 1 : 2 * count + 1]
    node_authored = stored[2 * count + 1 :]

    # What Python wrote is what it reads back.
    for original, read in zip(messages, python_written, strict=True):
        assert wire(read.message) == wire(original)
    # Node's copies of the history, and the same messages built by Node from
    # their JSON form, are byte-for-byte the messages Python wrote...
    for original, copy in zip(python_written, node_copies, strict=True):
        assert wire(copy.message) == wire(original.message)
    assert wire(node_input.message) == wire(python_written[0].message)
    for original, authored in zip(python_written[1:], node_authored, strict=True):
        assert wire(authored.message) == wire(original.message)
    # ...and so are the Strands files on disk.
    store = sessiond_server.store
    for index in range(count):
        original = stored_json(store, session_id, index)
        assert stored_json(store, session_id, count + 1 + index) == original
        if index == 0:
            assert stored_json(store, session_id, count) == original
        else:
            assert stored_json(store, session_id, 2 * count + index) == original

    assert {m.turn_id for m in node_copies} == {node_input.turn_id} != {python_written[0].turn_id}
    assert session.turn_count == 2 and session.message_count == 3 * count
    assert json.loads(session.agents[0].state_json) == {
        "written_by": "node",
        "steps": [1, 2],
        "ünï": "ok",
    }
    assert reply.text == "echo: and now from Python again"
    assert reply.session.message_count == 3 * count + 2
