"""The blocking ``Client``: the same methods, run on a background loop, against a real server.

The server runs on the test's event loop, so the blocking code runs in a
worker thread (as a script would run in its own process).
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from sessiond.client import Client, message_text
from sessiond.errors import SessionBusy, SessionNotFound
from sessiond.v1 import session_pb2, turn_pb2

pytestmark = pytest.mark.parametrize("store_kind", ["local", "s3"], indirect=True)


def script(target: str, folder: Path) -> dict[str, object]:
    """What a notebook user would write."""
    results: dict[str, object] = {}
    with Client(target) as client:
        client.start("nb", title="Notebook")
        results["answer"] = client.chat("nb", "hello").text
        with client.run("nb", "plan a trip") as turn:
            results["history"] = [message_text(m) for m in turn.history]
            turn.append(["Looking at flights."])
            with pytest.raises(SessionBusy):
                client.chat("nb", "are you busy?")
            turn.finish(["Booked."], usage=(10, 5))
        results["status"] = turn.session.status
        with pytest.raises(RuntimeError), client.run("nb", "fail please"):
            raise RuntimeError("the runtime crashed")
        results["last_turn"] = client.timeline("nb")[-1]
        results["listed"] = [s.session_id for s in client.iter_sessions(page_size=1)]
        with pytest.raises(SessionNotFound):
            client.get("nope")
        bundle = folder / "nb.tar.gz"
        results["exported"] = client.export_to_file(bundle, session_ids=["nb"]).manifest
        client.delete("nb")
        results["imported"] = list(client.import_file(bundle).imported_session_ids)
        results["messages"] = [message_text(m) for m in client.all_messages("nb")]
    results["threads"] = [t.name for t in threading.enumerate()]
    return results


async def test_blocking_client_end_to_end(served, tmp_path: Path) -> None:
    results = await asyncio.to_thread(script, served.target, tmp_path)
    assert results["answer"] == "echo: hello"
    assert results["history"] == ["hello", "echo: hello"]
    assert results["status"] == session_pb2.SESSION_STATUS_FINISHED
    last = results["last_turn"]
    assert last.status == turn_pb2.TURN_STATUS_ERROR
    assert "the runtime crashed" in last.error.message
    assert results["listed"] == ["nb"]
    assert results["exported"].session_count == 1
    assert results["imported"] == ["nb"]
    assert results["messages"][:5] == [
        "hello",
        "echo: hello",
        "plan a trip",
        "Looking at flights.",
        "Booked.",
    ]
    # Closing stopped the background loop's thread.
    assert "sessiond-client" not in results["threads"]
