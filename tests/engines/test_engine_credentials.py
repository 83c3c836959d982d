"""Engine credentials never reach a session, a log line, an export or an error.

Every stored object (a local directory, read back file by file), every log
record (formatted as the server's JSON log lines, extras and tracebacks
included), every error and every exported bundle is scanned for the key,
after plain turns, tool turns, a hibernation on a review (which writes a
snapshot) and failures whose upstream error body echoes the key.
"""

from __future__ import annotations

import io
import json
import logging
import tarfile

import grpc
import pytest
from conftest import AWS_SECRET, OPENAI_KEY
from fake_models import Answer, text, tool_call
from runtime import engine_run, tool

from sessiond.errors import EngineUnauthorized, SessiondError
from sessiond.server.ops.logs import JsonFormatter
from sessiond.server.storage.local import LocalDirectoryStore
from sessiond.server.storage.memory import MemoryStore
from sessiond.v1 import session_service_pb2

pb = session_service_pb2


def log_lines(caplog: pytest.LogCaptureFixture) -> str:
    formatter = JsonFormatter()
    return "\n".join(formatter.format(record) for record in caplog.records)


async def exported(client, **options) -> bytes:
    """The members of a streamed export bundle, concatenated."""
    chunks = [r.chunk async for r in client.export(**options) if r.WhichOneof("event") == "chunk"]
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r:gz") as bundle:
        return b"".join(
            bundle.extractfile(member).read() for member in bundle.getmembers() if member.isfile()
        )


async def test_the_openai_key_is_never_stored_logged_exported_or_reported(
    serve, fake_openai, tmp_path, caplog
) -> None:
    caplog.set_level(logging.DEBUG)
    key_file = tmp_path / "openai.key"
    key_file.write_text(OPENAI_KEY + "\n")
    root = tmp_path / "store"
    root.mkdir()
    served = await serve(
        store=LocalDirectoryStore(root),
        engine="openai",
        openai_base_url=fake_openai.url,
        openai_api_key_file=str(key_file),
        model="gpt-test",
        engine_max_retries=0,
        engine_timeout_seconds=0.5,
    )
    client = served.client
    await client.start("secret")
    fake_openai.queue(text("plain answer"))
    await client.chat("secret", "hello")
    fake_openai.queue(tool_call("c1", "lookup", {"q": "x"}), text("looked up"))
    run = await engine_run(client, "secret", "look up x", engine="openai", tools=[tool("lookup")])
    await run.run(lambda name, args: "found")
    # The endpoint echoes the key it was sent in its error bodies.
    echo = {"error": {"message": f"Incorrect API key provided: {OPENAI_KEY}", "code": OPENAI_KEY}}
    errors: list[SessiondError] = []
    for status in (401, 400, 429, 500):
        fake_openai.fail_every_attempt(Answer(status=status, error=echo))
        with pytest.raises(SessiondError) as caught:
            await client.chat("secret", "again")
        fake_openai.answers.clear()
        errors.append(caught.value)
    assert isinstance(errors[0], EngineUnauthorized)
    fake_openai.queue(Answer(delay=1.5))
    with pytest.raises(grpc.aio.AioRpcError) as raw:
        await client.stub.Chat(pb.ChatRequest(session_id="secret", text="slow"))
    await client.start("waiting")
    fake_openai.queue(tool_call("c2", "send", {"to": "x"}))
    run = await engine_run(
        client, "waiting", "send it", engine="openai", tools=[tool("send", review=True)]
    )
    assert await run.until_pause() is None  # WAITING, with a snapshot of the turn's tools
    # The key did reach the endpoint...
    assert fake_openai.requests[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    # ...and nothing else.
    bundle = await exported(client, session_ids=["secret", "waiting"])
    async for _ in client.export(session_ids=["secret"], destination_prefix="backup"):
        pass
    stored = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}
    assert any("snapshots" in str(path) or "snapshot" in str(path) for path in stored)
    assert any("exports" in str(path) for path in stored)
    for path, body in stored.items():
        assert OPENAI_KEY.encode() not in body, path
    assert OPENAI_KEY.encode() not in bundle
    assert b"plain answer" in bundle  # the scan sees real content
    for error in errors:
        assert OPENAI_KEY not in error.message and OPENAI_KEY not in json.dumps(error.metadata)
    assert OPENAI_KEY not in str(raw.value.details()) + str(raw.value.trailing_metadata())
    lines = log_lines(caplog)
    assert "model call failed" in lines  # failures were logged...
    assert OPENAI_KEY not in lines  # ...without the key
    assert OPENAI_KEY not in json.dumps(served.server.settings.redacted(), default=str)


async def test_aws_credentials_are_never_stored_or_logged(serve, fake_bedrock, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    # As ``sessiond serve`` configures logging (ops/logs.configure): botocore's
    # DEBUG lines (which print raw response bodies) stay off at every level.
    for noisy in ("botocore", "aiobotocore"):
        caplog.set_level(logging.INFO, logger=noisy)
    store = MemoryStore()
    served = await serve(
        store=store,
        engine="bedrock",
        bedrock_region="us-east-1",
        bedrock_endpoint=fake_bedrock.url,
        model="anthropic.test",
        engine_max_retries=0,
    )
    client = served.client
    await client.start("aws")
    fake_bedrock.queue(tool_call("t1", "lookup", {}), text("done"))
    run = await engine_run(client, "aws", "go", engine="bedrock", tools=[tool("lookup")])
    await run.run(lambda name, args: "r")
    fake_bedrock.queue(Answer(status=403, error_code="AccessDeniedException", error=AWS_SECRET))
    with pytest.raises(EngineUnauthorized) as caught:
        await client.chat("aws", "again")
    assert AWS_SECRET not in caught.value.message
    for key, body in store.snapshot().items():
        assert AWS_SECRET.encode() not in body, key
        assert b"AKIDTESTENGINES" not in body, key
    assert AWS_SECRET.encode() not in await exported(client, session_ids=["aws"])
    assert AWS_SECRET not in log_lines(caplog)
