"""Tenant isolation: two tenants on one server and one store never see each other.

Tenant A owns sessions (one with messages, one waiting for a review, an
export under a store prefix). Tenant B, with its own valid token, asks for
all of it with every RPC: each answer is exactly what B would get for an id
that never existed (``NOT_FOUND``, an empty list) — no enumeration — and a
page token made for A is refused. B may use the same ids for sessions of its
own. A recording store shows that none of B's calls touched ``tenants/tenant-a/``.
"""

from __future__ import annotations

import io
import tarfile

import pytest

from sessiond.errors import InvalidPageToken, NotFoundError, SessiondError
from sessiond.server.storage.memory import MemoryStore
from sessiond.v1 import turn_pb2
from support.recording import RecordingStore
from support.security import TOKEN_A, TOKEN_B

#: The readiness check lists the root of all tenants (keys only, nothing read).
INFRASTRUCTURE = {("list", "tenants/")}
APPROVE = turn_pb2.ReviewDecision(action=turn_pb2.REVIEW_ACTION_APPROVE)


async def bundle_of(client, session_ids) -> bytes:
    chunks = []
    async for response in client.export(session_ids=session_ids):
        if response.HasField("chunk"):
            chunks.append(response.chunk)
    return b"".join(chunks)


async def consume(stream) -> None:
    async for _ in stream:
        pass


async def failure(call) -> SessiondError:
    """The error a call ends with (it must fail)."""
    with pytest.raises(SessiondError) as caught:
        await call()
    return caught.value


def same_failure(found: SessiondError, missing: SessiondError, real: str, fake: str) -> None:
    """Two failures are indistinguishable, once the ids are swapped."""
    assert type(found) is type(missing)
    assert isinstance(found, NotFoundError), found
    assert found.message == missing.message.replace(fake, real)
    assert found.metadata == {k: v.replace(fake, real) for k, v in missing.metadata.items()}


async def test_another_tenants_sessions_are_invisible_on_every_rpc(
    serve, token_file, clients
) -> None:
    store = RecordingStore(MemoryStore())
    served = await serve(store=store, auth_tokens_file=str(token_file))
    a = clients(served.target, token=TOKEN_A)
    b = clients(served.target, token=TOKEN_B)

    # Tenant A: a session with history, one waiting for a review, a stored export.
    await a.start("a-chat", title="A's secret plans", labels={"team": "red"})
    await a.chat("a-chat", "the launch code is 0000")
    await a.start("a-review")
    review = turn_pb2.ReviewRequest(review_id="rv-a", tool_name="transfer", input_json="{}")
    async with a.run("a-review", "pay the invoice") as turn:
        await turn.hibernate(reviews=[review])
    await a.start("a-third")
    await consume(a.export(session_ids=["a-chat"], destination_prefix="backup"))
    bundle = await bundle_of(a, ["a-chat"])
    page = await a.list(page_size=1)
    messages_page = await a.list_messages("a-chat", page_size=1)
    assert page.next_page_token and messages_page.next_page_token

    store.clear()
    # Every RPC that names A's session fails exactly as for an id that never existed.
    calls = {
        "Get": lambda sid: b.get(sid),
        "Chat": lambda sid: b.chat(sid, "hello"),
        "Resume": lambda sid: b.resume(sid),
        "Run": lambda sid: run_turn(b, sid),
        "Run resume": lambda sid: run_turn(b, sid, resume=True),
        "ListMessages": lambda sid: b.list_messages(sid),
        "Replay": lambda sid: b.replay(sid),
        "Archive": lambda sid: b.archive(sid),
        "Unarchive": lambda sid: b.unarchive(sid),
        "Delete": lambda sid: b.delete(sid),
        "ListPendingReviews": lambda sid: b.list_pending_reviews(session_id=sid),
        "ResolveReview": lambda sid: b.resolve_review("rv-a", session_id=sid, decision=APPROVE),
        "Export": lambda sid: consume(b.export(session_ids=[sid])),
    }
    for real in ("a-chat", "a-review"):
        for name, call in calls.items():
            found = await failure(lambda call=call, real=real: call(real))
            missing = await failure(lambda call=call: call("never-was"))
            try:
                same_failure(found, missing, real, "never-was")
            except AssertionError as error:
                raise AssertionError(f"{name} on {real}: {found!r} vs {missing!r}") from error
    # The review id alone (no session) is not found either.
    with pytest.raises(NotFoundError):
        await b.resolve_review("rv-a", decision=APPROVE)

    # Listings show nothing of A; A's page tokens are refused.
    assert list((await b.list(archived="include")).sessions) == []
    assert list((await b.list_pending_reviews()).reviews) == []
    with pytest.raises(InvalidPageToken):
        await b.list(page_size=1, page_token=page.next_page_token)
    with pytest.raises(InvalidPageToken):
        await b.list_messages("a-chat", page_size=1, page_token=messages_page.next_page_token)

    # An import from A's stored export prefix reads B's prefix only (nothing there).
    with pytest.raises(SessiondError):
        await b.import_bundle(source_prefix="backup")
    # A streamed import of A's bundle lands in B's tenant, as B's own copy.
    imported = await b.import_bundle([bundle])
    assert list(imported.imported_session_ids) == ["a-chat"]
    # B may use A's ids for its own sessions: no ALREADY_EXISTS oracle.
    assert (await b.start("a-review")).created
    assert (await b.start("a-third")).created
    await b.delete("a-third")

    requests = [r for r in store.requests if r not in INFRASTRUCTURE]
    assert requests
    assert [r for r in requests if "tenant-a" in r[1]] == []
    assert store.outside("tenants/tenant-b/") == [r for r in store.requests if r in INFRASTRUCTURE]

    # A's sessions are exactly as they were.
    assert (await a.get("a-chat")).title == "A's secret plans"
    assert [r.review_id for r in (await a.list_pending_reviews()).reviews] == ["rv-a"]
    assert {s.session_id for s in (await a.list()).sessions} == {"a-chat", "a-review", "a-third"}
    assert len(await a.all_messages("a-chat")) == 2
    # B's copy is B's: its bundle holds A's content because A's bundle was given to B.
    with tarfile.open(fileobj=io.BytesIO(await bundle_of(b, ["a-chat"])), mode="r:gz") as tar:
        assert any("a-chat" in name for name in tar.getnames())


async def run_turn(client, session_id: str, *, resume: bool = False) -> None:
    turn = client.run(session_id, None if resume else "hi", resume=resume)
    async with turn:
        await turn.finish()
