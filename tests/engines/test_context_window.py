"""The model context: trimming to the window at exchange boundaries, and repairs (pure)."""

from __future__ import annotations

from sessiond.server.domain.context_window import (
    MISSING_RESULT_TEXT,
    ContextWindow,
    build_context,
    estimate_tokens,
    repair,
    trim,
)


def user(text: str) -> dict:
    return {"role": "user", "content": [{"text": text}]}


def assistant(text: str, *calls: str) -> dict:
    content = [{"text": text}] if text else []
    content += [{"toolUse": {"toolUseId": c, "name": "t", "input": {}}} for c in calls]
    return {"role": "assistant", "content": content}


def results(*ids: str, text: str = "r") -> dict:
    return {
        "role": "user",
        "content": [
            {"toolResult": {"toolUseId": i, "status": "success", "content": [{"text": text}]}}
            for i in ids
        ],
    }


CONVERSATION = [
    user("q1"),
    assistant("a1"),
    user("q2"),
    assistant("", "t1"),
    results("t1"),
    assistant("a2"),
    user("q3"),
    assistant("", "t2", "t3"),
    results("t2", "t3"),
    assistant("", "t4"),
    results("t4"),
]


def test_no_window_keeps_everything() -> None:
    assert trim(CONVERSATION, ContextWindow()) == CONVERSATION
    assert build_context(CONVERSATION, ContextWindow()) == CONVERSATION


def test_message_window_cuts_only_before_an_exchange() -> None:
    # The last 4 messages would start at a toolResult: the cut moves to q3.
    kept = trim(CONVERSATION, ContextWindow(max_messages=7))
    assert kept[0] == user("q3") and len(kept) == 5
    kept = trim(CONVERSATION, ContextWindow(max_messages=9))
    assert kept[0] == user("q2") and len(kept) == 9


def test_latest_exchange_is_kept_whole_even_over_the_window() -> None:
    kept = trim(CONVERSATION, ContextWindow(max_messages=2))
    assert kept == CONVERSATION[6:]


def test_token_window() -> None:
    per_message = estimate_tokens(user("q1"))
    kept = trim(CONVERSATION, ContextWindow(max_tokens=per_message * 6))
    assert kept[0] == user("q3")
    everything = sum(estimate_tokens(m) for m in CONVERSATION)
    assert trim(CONVERSATION, ContextWindow(max_tokens=everything)) == CONVERSATION


def test_both_limits_apply() -> None:
    kept = trim(CONVERSATION, ContextWindow(max_messages=100, max_tokens=1))
    assert kept == CONVERSATION[6:]


def test_dangling_tool_use_gets_an_error_result() -> None:
    broken = [user("q"), assistant("let me", "t1"), user("next question")]
    repaired = repair(broken)
    assert repaired[2]["role"] == "user"
    first, second = repaired[2]["content"]
    assert first["toolResult"]["toolUseId"] == "t1"
    assert first["toolResult"]["status"] == "error"
    assert first["toolResult"]["content"][0]["text"] == MISSING_RESULT_TEXT
    assert second == {"text": "next question"}
    # At the very end too (a turn that broke while a tool ran).
    assert (
        repair([user("q"), assistant("", "t9")])[-1]["content"][0]["toolResult"]["toolUseId"]
        == "t9"
    )


def test_partial_results_are_completed() -> None:
    repaired = repair([user("q"), assistant("", "a", "b"), results("b")])
    ids = [block["toolResult"]["toolUseId"] for block in repaired[2]["content"]]
    assert sorted(ids) == ["a", "b"]


def test_orphan_results_and_blank_text_are_dropped() -> None:
    messages = [
        results("ghost"),
        user("q"),
        {"role": "assistant", "content": [{"text": "  "}]},
        assistant("a"),
        results("ghost2"),
        user("again"),
    ]
    assert repair(messages) == [user("q"), assistant("a"), user("again")]


def test_same_roles_are_merged_and_extra_keys_dropped() -> None:
    messages = [
        {"role": "user", "content": [{"text": "one"}], "metadata": {"x": 1}},
        user("two"),
        assistant("a"),
        assistant("b"),
    ]
    assert repair(messages) == [
        {"role": "user", "content": [{"text": "one"}, {"text": "two"}]},
        {"role": "assistant", "content": [{"text": "a"}, {"text": "b"}]},
    ]


def test_two_tool_use_messages_in_a_row_each_get_results() -> None:
    repaired = repair([user("q"), assistant("", "x"), assistant("", "y"), results("y")])
    assert [m["role"] for m in repaired] == ["user", "assistant", "user", "assistant", "user"]
    assert repaired[2]["content"][0]["toolResult"]["toolUseId"] == "x"
    assert repaired[4]["content"][0]["toolResult"]["toolUseId"] == "y"


def test_input_is_not_modified() -> None:
    messages = [user("q"), assistant("", "t1")]
    snapshot = [dict(m) for m in messages]
    repair(messages)
    assert messages == snapshot
