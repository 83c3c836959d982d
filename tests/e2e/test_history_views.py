"""Histories across packs, redactions, failures and agents: every view agrees."""

from __future__ import annotations

import json

from sessiond.client import message_text, text_message
from sessiond.server.storage.memory import MemoryStore
from sessiond.v1 import session_pb2, turn_pb2


async def consistency(client, sid: str, agents=("default",)) -> dict:
    got = await client.get(sid)
    timeline = []
    token = ""
    while True:
        page = await client.replay(sid, page_size=3, page_token=token)
        timeline.extend(page.turns)
        token = page.next_page_token
        if not token:
            break
    assert [t.number for t in timeline] == list(range(1, got.turn_count + 1))
    per_agent = {}
    for aid in agents:
        msgs = []
        token = ""
        while True:
            page = await client.list_messages(sid, agent_id=aid, page_size=7, page_token=token)
            msgs.extend(page.messages)
            token = page.next_page_token
            if not token:
                break
        assert [m.index for m in msgs] == list(range(len(msgs))), aid
        per_agent[aid] = msgs
    info = {a.agent_id: a.message_count for a in got.agents}
    for aid, msgs in per_agent.items():
        assert info[aid] == len(msgs), (aid, info, len(msgs))
    assert got.message_count == sum(len(m) for m in per_agent.values())
    assert got.message_count == sum(t.message_count for t in timeline)
    assert got.usage.total_tokens == sum(t.usage.total_tokens for t in timeline)
    return {"get": got, "timeline": timeline, "messages": per_agent}


async def test_many_turns_cross_packs_everything_agrees(serve) -> None:
    served = await serve()
    client = served.client
    await client.start("h")
    big = "x" * 5000
    for n in range(40):
        if n % 3 == 0:
            await client.chat("h", f"chat {n} {big}")
        else:
            async with client.run("h", f"run {n}") as turn:
                await turn.append([f"a{n}-{k} {big}" for k in range(n % 4)], usage=(n, 1))
                await turn.finish(f"fin {n}", usage=(1, n))
    state = await consistency(client, "h")
    assert state["get"].turn_count == 40
    assert all(t.status == turn_pb2.TURN_STATUS_FINISHED for t in state["timeline"])
    # A restore sees the same history.
    async with client.run("h", "last") as turn:
        assert len(turn.history) == state["get"].message_count
        assert [m.index for m in turn.history] == list(range(len(turn.history)))
        await turn.finish("bye")
    await consistency(client, "h")


async def test_redact_messages_in_packs_and_tail(serve) -> None:
    served = await serve()
    client = served.client
    await client.start("r")
    for n in range(30):
        await client.chat("r", f"secret {n}")
    # 60 messages: most in packs now.
    async with client.run("r", "redact") as turn:
        await turn.append(
            redactions={0: text_message("user", "[r0]"), 58: text_message("user", "[r58]")}
        )
        await turn.finish("ok", redactions={1: text_message("assistant", "[r1]")})
    state = await consistency(client, "r")
    msgs = state["messages"]["default"]
    red = {m.index: message_text(m.redact_message) for m in msgs if m.HasField("redact_message")}
    assert red == {0: "[r0]", 1: "[r1]", 58: "[r58]"}
    tl = state["timeline"]
    assert tl[-1].status == turn_pb2.TURN_STATUS_FINISHED
    assert state["get"].status == session_pb2.SESSION_STATUS_FINISHED
    # restore in a later turn sees the redactions
    async with client.run("r", "next") as turn:
        red2 = {
            m.index: message_text(m.redact_message)
            for m in turn.history
            if m.HasField("redact_message")
        }
        assert red2 == red
        # redact a message of the previous turn (tail) in the finishing commit
        await turn.finish("ok2", redactions={62: text_message("user", "[r62]")})
    state = await consistency(client, "r")
    red3 = {
        m.index: message_text(m.redact_message)
        for m in state["messages"]["default"]
        if m.HasField("redact_message")
    }
    assert red3 == {**red, 62: "[r62]"}


async def test_redact_message_appended_in_same_update(serve) -> None:
    served = await serve()
    client = served.client
    await client.start("same")
    async with client.run("same", "hi") as turn:
        ack = await turn.append(["secret!"], redactions={1: text_message("assistant", "[gone]")})
        await turn.finish("ok")
    msgs = (await client.list_messages("same")).messages
    assert message_text(msgs[1].redact_message) == "[gone]"
    # The Strands file must carry the redaction too.
    key = next(k for k in served.store._objects if k.endswith("message_1.json"))  # type: ignore[attr-defined]
    body = json.loads((await served.store.get(key)).body)
    assert body.get("redact_message") is not None, body
    assert [m.index for m in ack.messages] == [0, 1]
    assert ack.messages[1].HasField("redact_message")


async def test_fail_before_and_after_appends(serve) -> None:
    served = await serve()
    client = served.client
    await client.start("f")
    await client.chat("f", "one")
    async with client.run("f", "lost input") as turn:
        ended = await turn.fail("boom")
    assert ended.turn.status == turn_pb2.TURN_STATUS_ERROR
    assert ended.session.message_count == 2 and ended.session.turn_count == 2
    async with client.run("f", "kept input") as turn:
        await turn.append(["partial"], usage=(3, 4))
        ended = await turn.fail("boom2")
    assert ended.session.message_count == 4
    assert ended.turn.message_count == 2 and ended.turn.usage.total_tokens == 7
    state = await consistency(client, "f")
    tl = state["timeline"]
    assert [t.status for t in tl] == [
        turn_pb2.TURN_STATUS_FINISHED,
        turn_pb2.TURN_STATUS_ERROR,
        turn_pb2.TURN_STATUS_ERROR,
    ]
    failed = json.loads(tl[1].events[-1].data_json)
    assert "unrecorded_input" in failed
    assert tl[1].message_count == 0 and tl[2].first_message_index == 2
    assert state["get"].status == session_pb2.SESSION_STATUS_ERROR
    texts = [message_text(m) for m in state["messages"]["default"]]
    assert texts == ["one", "echo: one", "kept input", "partial"]


async def test_multi_agent_session_counts(serve) -> None:
    served = await serve()
    client = served.client
    await client.start("m")
    await client.chat("m", "to default")
    async with client.run("m", "to b", agent_id="b") as turn:
        assert turn.history == []
        ack = await turn.append(["b says"], state={"k": 1})
        assert [m.index for m in ack.messages] == [0, 1]
        await turn.finish("b done", usage=(1, 1))
    await client.chat("m", "again b", agent_id="b")
    await client.chat("m", "again default")
    for n in range(20):
        await client.chat("m", f"b{n}", agent_id="b")
    state = await consistency(client, "m", agents=("default", "b"))
    got = state["get"]
    info = {a.agent_id: a for a in got.agents}
    assert info["default"].message_count == 4
    assert info["b"].message_count == 5 + 40
    assert json.loads(info["b"].state_json) == {"k": 1}
    async with client.run("m", "restore b", agent_id="b") as turn:
        assert len(turn.history) == 45
        assert turn.agent_state == {"k": 1}
        await turn.finish("x", redactions={0: text_message("user", "[b0]")})
    msgs = (await client.list_messages("m", agent_id="b")).messages
    assert message_text(msgs[0].redact_message) == "[b0]"
    dmsgs = (await client.list_messages("m")).messages
    assert not any(m.HasField("redact_message") for m in dmsgs)


class _SlowPlainCreates(MemoryStore):
    """Create-only writes of message files without a redaction are slow (store latency)."""

    async def put(self, key, body, *, mode, put_id=None):
        import asyncio

        from sessiond.server.storage.port import Create

        if "message_" in key and isinstance(mode, Create) and b'redact_message": null' in body:
            await asyncio.sleep(0.05)
        return await super().put(key, body, mode=mode, put_id=put_id)


async def test_redaction_of_same_update_message_survives_in_strands_file(serve) -> None:
    store = _SlowPlainCreates()
    served = await serve(store=store)
    client = served.client
    await client.start("race")
    async with client.run("race", "hi") as turn:
        await turn.append(["secret!"], redactions={1: text_message("assistant", "[gone]")})
        await turn.finish("ok")
    msgs = (await client.list_messages("race")).messages
    assert message_text(msgs[1].redact_message) == "[gone]"
    key = next(k for k in store._objects if k.endswith("message_1.json"))
    body = json.loads((await store.get(key)).body)
    assert body.get("redact_message") is not None, body
