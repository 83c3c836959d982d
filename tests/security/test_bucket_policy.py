"""sessiond works under the recommended bucket policy (docs/security.md).

The policy denies any PutObject of a head or a message file that carries
neither ``If-None-Match`` nor ``If-Match``. A store wrapper refuses such
writes the way S3 would (with the policy in place), and every operation that
writes those keys — turns, redactions (which rewrite a committed message
file), export and import (also over leftovers of an interrupted import) —
must still succeed.
"""

from __future__ import annotations

import re
from pathlib import Path

from sessiond.client.aio import text_message
from sessiond.server.storage.memory import MemoryStore
from sessiond.server.storage.port import Overwrite, PutMode, StoreError
from sessiond.v1 import session_service_pb2 as pb
from support.recording import RecordingStore

#: The keys the policy guards (its two Resource patterns).
GUARDED = re.compile(r"(/sessiond/head\.json|/messages/message_\d+\.json)$")


class AccessDenied(StoreError):
    """What S3 answers an unconditional write the policy denies (403)."""


class PolicyStore(RecordingStore):
    """Refuses unconditional writes of heads and message files; counts them."""

    def __init__(self, inner: MemoryStore) -> None:
        super().__init__(inner)
        self.denied: list[str] = []

    async def put(self, key: str, body: bytes, *, mode: PutMode, put_id: str | None = None):
        if isinstance(mode, Overwrite) and GUARDED.search(key):
            self.denied.append(key)
            raise AccessDenied(f"explicit deny: unconditional PutObject of {key}")
        return await super().put(key, body, mode=mode, put_id=put_id)


async def test_every_write_of_heads_and_messages_is_conditional(serve, tmp_path: Path) -> None:
    store = PolicyStore(MemoryStore())
    served = await serve(store=store)
    client = served.client
    await client.start("guarded")
    await client.chat("guarded", "hello")
    hidden = text_message("user", "[redacted]")
    async with client.run("guarded", "my password is hunter2") as turn:
        await turn.append([text_message("assistant", "noted")])
        update = pb.TurnUpdate(redactions=[pb.Redaction(index=2, message=hidden)])
        await turn._call.write(pb.RunRequest(append=pb.RunAppend(update=update)))
        assert (await turn._call.read()).WhichOneof("event") == "appended"
        await turn.finish()
    assert (await client.all_messages("guarded"))[2].redact_message.content[0].text == (
        "[redacted]"
    )
    bundle = tmp_path / "guarded.tar.gz"
    await client.export_to_file(bundle)
    await client.delete("guarded")
    # An interrupted earlier import left a message file behind: replaced conditionally.
    leftover = "tenants/default/session_guarded/agents/agent_default/messages/message_0.json"
    await store.inner.put(leftover, b'{"partial": true}', mode=Overwrite())
    await client.import_file(bundle)
    assert len(await client.all_messages("guarded")) == 4
    assert store.denied == []
