"""What sessiond writes, the real strands-agents package restores.

Sessions are written through sessiond's gRPC API, then restored by Strands'
own FileSessionManager (local directory store) and S3SessionManager (moto).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import boto3
import pytest
from strands import Agent
from strands.agent.conversation_manager import SlidingWindowConversationManager
from strands.session.file_session_manager import FileSessionManager
from strands.session.s3_session_manager import S3SessionManager

from sessiond.client.aio import text_message
from sessiond.server.storage.local import LocalDirectoryStore
from sessiond.v1 import content_pb2
from support.moto import MOTO_CREDENTIALS
from support.strands_model import ReplyModel

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAA=")


async def write_session(client) -> None:
    """A session with text, an image, a document, a tool round trip and agent state."""
    await client.start("strandsy", agent_id="assistant", agent_state_json='{"user": "Ada"}')
    await client.chat("strandsy", "hello", agent_id="assistant")
    question = content_pb2.Message(
        role=content_pb2.ROLE_USER,
        content=[
            content_pb2.ContentBlock(text="what is in these?"),
            content_pb2.ContentBlock(image=content_pb2.ImageBlock(format="png", data=PNG)),
            content_pb2.ContentBlock(
                document=content_pb2.DocumentBlock(format="txt", name="notes", data=b"hi doc")
            ),
        ],
    )
    call = content_pb2.Message(
        role=content_pb2.ROLE_ASSISTANT,
        content=[
            content_pb2.ContentBlock(
                tool_use=content_pb2.ToolUseBlock(
                    tool_use_id="tu1", name="inspect", input_json='{"n": 2, "deep": true}'
                )
            )
        ],
        metadata_json='{"usage": {"inputTokens": 9, "outputTokens": 4, "totalTokens": 13}}',
    )
    result = content_pb2.Message(
        role=content_pb2.ROLE_USER,
        content=[
            content_pb2.ContentBlock(
                tool_result=content_pb2.ToolResultBlock(
                    tool_use_id="tu1",
                    status="success",
                    content=[content_pb2.ContentBlock(raw_json='{"json": {"seen": ["png"]}}')],
                )
            )
        ],
    )
    async with client.run("strandsy", question, agent_id="assistant") as turn:
        await turn.append([call, result], state={"user": "Ada", "turns": 2})
        await turn.finish([text_message("assistant", "an image and a note")])


def decoded(value: Any) -> Any:
    """Stored JSON with Strands' bytes wrappers decoded, as Strands restores it."""
    if isinstance(value, dict):
        if value.get("__bytes_encoded__") is True:
            return base64.b64decode(value["data"])
        return {key: decoded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [decoded(item) for item in value]
    return value


async def expected_messages(client) -> list[dict]:
    from sessiond.server.api.content_codec import message_to_dict

    messages = await client.all_messages("strandsy", agent_id="assistant")
    return [decoded(message_to_dict(m.message)) for m in messages]


def restored(agent: Agent) -> list[dict]:
    # Strands adds tracking ids only to messages it creates itself.
    return [{k: v for k, v in m.items() if k != "tracking_id"} for m in agent.messages]


async def test_file_session_manager_restores_what_sessiond_wrote(serve, tmp_path: Path) -> None:
    served = await serve(store=LocalDirectoryStore(tmp_path))
    await write_session(served.client)
    manager = FileSessionManager(
        session_id="strandsy", storage_dir=str(tmp_path / "tenants/default")
    )
    agent = Agent(model=ReplyModel(), agent_id="assistant", session_manager=manager)
    expected = await expected_messages(served.client)
    assert len(expected) == 6
    assert restored(agent) == expected
    assert agent.messages[2]["content"][1]["image"]["source"]["bytes"] == PNG
    assert agent.state.get("turns") == 2
    # The restored agent continues with the right indices.
    agent("and now?")
    files = sorted(
        (tmp_path / "tenants/default/session_strandsy/agents/agent_assistant/messages").iterdir()
    )
    assert [f.name for f in files][-2:] == ["message_6.json", "message_7.json"]
    assert json.loads(files[-1].read_text())["message_id"] == 7


async def test_s3_session_manager_restores_what_sessiond_wrote(
    serve, make_s3_store, s3_bucket
) -> None:
    store = await make_s3_store(prefix="deploy/one")
    served = await serve(store=store)
    await write_session(served.client)
    endpoint, bucket = s3_bucket
    session = boto3.Session(
        aws_access_key_id=MOTO_CREDENTIALS["access_key_id"],
        aws_secret_access_key=MOTO_CREDENTIALS["secret_access_key"],
        region_name=MOTO_CREDENTIALS["region"],
    )
    manager = S3SessionManager(
        session_id="strandsy",
        bucket=bucket,
        prefix="deploy/one/tenants/default",
        boto_session=session,
        endpoint_url=endpoint,
    )
    agent = Agent(model=ReplyModel(), agent_id="assistant", session_manager=manager)
    assert restored(agent) == await expected_messages(served.client)
    assert agent.state.get("user") == "Ada"


@pytest.fixture(autouse=True)
def _quiet_strands(caplog):
    caplog.set_level("WARNING", logger="strands")


async def test_redactions_reach_strands_including_messages_in_packs(serve, tmp_path: Path) -> None:
    from sessiond.v1 import session_service_pb2 as pb

    served = await serve(store=LocalDirectoryStore(tmp_path))
    client = served.client
    await client.start("secret")
    for number in range(30):  # long enough that early messages move into packs
        await client.chat("secret", f"message {number}")
    hidden = text_message("user", "[redacted]")
    async with client.run("secret", "my password is hunter2") as turn:
        await turn.append([text_message("assistant", "noted")])
        call = turn._call
        update = pb.TurnUpdate(
            redactions=[
                pb.Redaction(index=60, message=hidden),  # this turn's input, in the head
                pb.Redaction(index=0, message=hidden),  # an old one, in a pack
            ]
        )
        await call.write(pb.RunRequest(append=pb.RunAppend(update=update)))
        assert (await call.read()).WhichOneof("event") == "appended"
        await turn.finish()
    messages = await client.all_messages("secret")
    assert messages[0].redact_message.content[0].text == "[redacted]"
    assert messages[60].redact_message.content[0].text == "[redacted]"
    assert not messages[1].HasField("redact_message")
    manager = FileSessionManager(session_id="secret", storage_dir=str(tmp_path / "tenants/default"))
    agent = Agent(
        model=ReplyModel(),
        session_manager=manager,
        conversation_manager=SlidingWindowConversationManager(window_size=1000),
    )
    assert agent.messages[0]["content"][0]["text"] == "[redacted]"
    assert agent.messages[60]["content"][0]["text"] == "[redacted]"
    assert agent.messages[61]["content"][0]["text"] == "noted"


async def test_several_agents_and_a_history_beyond_the_default_window(
    serve, tmp_path: Path
) -> None:
    """Two agents in one session, one with 60 messages (Strands' default window keeps 40).

    Each agent restores its own history; Strands' default
    SlidingWindowConversationManager trims the long one when it continues and
    records ``removed_message_count``; sessiond then serves every message and
    continues the numbering, and Strands restores the right window again.
    """
    served = await serve(store=LocalDirectoryStore(tmp_path))
    client = served.client
    await client.start("pair", agent_id="planner")
    await client.chat("pair", "plan a trip", agent_id="planner")
    for number in range(30):
        await client.chat("pair", f"note {number}", agent_id="scribe")
    storage = str(tmp_path / "tenants/default")

    def agent(agent_id: str) -> Agent:
        manager = FileSessionManager(session_id="pair", storage_dir=storage)
        return Agent(
            model=ReplyModel(), agent_id=agent_id, session_manager=manager, callback_handler=None
        )

    planner = agent("planner")
    assert [m["content"][0]["text"] for m in planner.messages] == [
        "plan a trip",
        "echo: plan a trip",
    ]
    scribe = agent("scribe")
    assert len(scribe.messages) == 60  # restored whole; trimmed when it runs
    scribe("one more")
    assert len(scribe.messages) <= 40
    removed = scribe.conversation_manager.removed_message_count
    assert removed > 0
    # sessiond's next turn adopts Strands' two messages and continues after them.
    reply = await client.chat("pair", "and another", agent_id="scribe")
    assert [m.index for m in reply.messages] == [62, 63]
    scribe_messages = await client.all_messages("pair", agent_id="scribe")
    assert [m.index for m in scribe_messages] == list(range(64))
    assert len(await client.all_messages("pair", agent_id="planner")) == 2
    # Strands restores the window from where it left off, including sessiond's turn.
    again = agent("scribe")
    assert again.conversation_manager.removed_message_count == removed
    assert again.messages[-1]["content"][0]["text"] == "echo: and another"
    assert len(again.messages) == 64 - removed
