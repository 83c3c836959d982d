"""Hypothesis strategies for the fields of sessiond requests (see ``fuzz_requests``).

Ids come from a hostile alphabet (traversals, separators, percent-encoding,
NUL, confusable Unicode, over-long) mixed with valid ones and the ids of
sessions the fuzz tests seed (``SEEDED``), so requests reach deep code too.
Content blocks include malformed ``raw_json``, JSON fields include invalid
and pathological JSON, page tokens include forged ones, and strings are
sometimes huge.
"""

from __future__ import annotations

import base64
import json

from hypothesis import strategies as st

from sessiond.server.domain.validation import ID_PATTERN
from sessiond.v1 import content_pb2, turn_pb2
from sessiond.v1 import session_service_pb2 as pb

#: Sessions the fuzz tests create first (valid ids that exist).
SEEDED = ("fz-1", "fz-2", "fz-hib")

HOSTILE_IDS = (
    "../x", "..", ".", "a/b", "/abs", "a/../b", "%2e%2e", "%2e%2e%2fx", "%2fetc", "a%00b",
    "a\x00b", "\x00", "\uff41\uff42\uff43", "\u0430bc", "s\u200b1", "x" * 64, "x" * 63,
    "", " ", "a b",
    "a\\b", "C:\\x", "-x", "_x", ".x", "x.", "x..y", "é", "\U0001f600", "a\nb", "a:b", "*",
    "tenants", "default", "session_x", "sessiond", "message_0.json", "x" * 300,
)  # fmt: skip
HUGE = "h" * 300_000


def mutated(
    message: type, valid: dict[str, st.SearchStrategy], hostile: dict[str, st.SearchStrategy]
) -> st.SearchStrategy:
    """Messages whose fields are valid except for at most two hostile ones.

    Requests that get past validation with one or two odd fields reach the
    code behind it; fully hostile requests (``builds`` over the hostile
    strategies) are mixed in by the callers.
    """
    fields = sorted(hostile)

    def build(chosen: frozenset[str]) -> st.SearchStrategy:
        parts = {k: (hostile[k] if k in chosen else valid[k]) for k in valid}
        return st.fixed_dictionaries(parts).map(lambda kw: message(**kw))

    return st.frozensets(st.sampled_from(fields), max_size=2).flatmap(build)


def hostile_ids() -> st.SearchStrategy[str]:
    """Ids: hostile, random from a small nasty alphabet, valid, or seeded."""
    nasty = st.text(alphabet=st.sampled_from(list("ab0./%\\\x00-_:\uff41\u0430 é")), max_size=70)
    return st.one_of(
        st.sampled_from(HOSTILE_IDS),
        st.sampled_from(SEEDED),
        nasty,
        st.from_regex(ID_PATTERN, fullmatch=True),
    )


def session_ids() -> st.SearchStrategy[str]:
    """A session id: half the time one of the seeded sessions, so requests go deep."""
    return st.one_of(st.sampled_from(SEEDED), hostile_ids())


def optional_ids() -> st.SearchStrategy[str]:
    """An optional id (agent, request, parent): mostly empty, else hostile."""
    return st.one_of(st.just(""), st.just(""), hostile_ids())


def texts() -> st.SearchStrategy[str]:
    """Short text, sometimes with NUL / controls, sometimes huge."""
    return st.one_of(st.text(max_size=40), st.sampled_from(["", "\x00", "\ud7ff\ufffd", HUGE]))


def json_texts() -> st.SearchStrategy[str]:
    """JSON fields: empty, objects, other values, garbage, pathological nesting."""
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
        max_leaves=8,
    )
    return st.one_of(
        st.just(""),
        values.map(json.dumps),
        st.sampled_from(
            ["{", "NaN", '{"a": NaN}', "[" * 5000 + "]" * 5000, '{"a":1,"a":2}', "1e999", "\x00"]
        ),
        st.text(max_size=20),
    )


def page_tokens() -> st.SearchStrategy[str]:
    """Empty, random, or forged page tokens (a real payload with a wrong signature)."""
    forged = st.dictionaries(st.sampled_from(["k", "t", "f", "p"]), st.text(max_size=8)).map(
        lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=") + ".AAAA"
    )
    return st.one_of(st.just(""), st.text(max_size=40), forged, st.just("a.b.c"))


def page_sizes() -> st.SearchStrategy[int]:
    return st.one_of(
        st.sampled_from([0, 1, -1, 1000, 1001, 2**31 - 1, -(2**31)]), st.integers(-5, 60)
    )


def enums() -> st.SearchStrategy[int]:
    """Enum values, known and unknown."""
    return st.integers(-3, 12)


def blocks(depth: int = 2) -> st.SearchStrategy[content_pb2.ContentBlock]:
    """Content blocks of every kind, valid and not."""
    raw = st.one_of(
        st.sampled_from(
            [
                '{"a":1,"b":2}', "[]", "{}", "null", '"s"', '{"x":', '{"": 1}',
                '{"reasoningContent": {"reasoningText": {"text": "t"}}}',
                '{"json": {"__bytes_encoded__": true, "data": "!!"}}', "[" * 3000,
            ]
        ),
        json_texts(),
    )  # fmt: skip
    options = [
        st.builds(content_pb2.ContentBlock, text=texts()),
        st.builds(content_pb2.ContentBlock, raw_json=raw),
        st.just(content_pb2.ContentBlock()),
        st.builds(
            lambda f, d: content_pb2.ContentBlock(image=content_pb2.ImageBlock(format=f, data=d)),
            st.sampled_from(["png", "jpeg", "exe", "../x", ""]),
            st.binary(max_size=16),
        ),
        st.builds(
            lambda f, n, d: content_pb2.ContentBlock(
                document=content_pb2.DocumentBlock(format=f, name=n, data=d)
            ),
            st.sampled_from(["pdf", "txt", "", "../../etc"]),
            hostile_ids(),
            st.binary(max_size=16),
        ),
        st.builds(
            lambda i, n, j: content_pb2.ContentBlock(
                tool_use=content_pb2.ToolUseBlock(tool_use_id=i, name=n, input_json=j)
            ),
            hostile_ids(),
            hostile_ids(),
            json_texts(),
        ),
    ]
    if depth > 0:
        options.append(
            st.builds(
                lambda i, s, c: content_pb2.ContentBlock(
                    tool_result=content_pb2.ToolResultBlock(tool_use_id=i, status=s, content=c)
                ),
                hostile_ids(),
                st.sampled_from(["success", "error", "", "weird"]),
                st.lists(blocks(depth - 1), max_size=2),
            )
        )
    return st.one_of(*options)


def messages() -> st.SearchStrategy[content_pb2.Message]:
    """Messages: half well-formed (so they get stored), half anything."""
    plain = st.builds(
        content_pb2.Message,
        role=st.sampled_from([content_pb2.ROLE_USER, content_pb2.ROLE_ASSISTANT]),
        content=st.lists(
            st.builds(content_pb2.ContentBlock, text=st.text(max_size=30)), max_size=3
        ),
    )
    anything = st.builds(
        content_pb2.Message,
        role=enums(),
        content=st.lists(blocks(), max_size=4),
        metadata_json=json_texts(),
        extra_json=json_texts(),
    )
    return st.one_of(plain, anything)


def decisions() -> st.SearchStrategy[turn_pb2.ReviewDecision]:
    return st.builds(
        turn_pb2.ReviewDecision,
        action=enums(),
        edited_input_json=json_texts(),
        reviewer=texts(),
        comment=texts(),
    )


def updates() -> st.SearchStrategy[pb.TurnUpdate]:
    events = st.builds(turn_pb2.TurnEvent, type=texts(), data_json=json_texts())
    redactions = st.builds(pb.Redaction, index=st.integers(-2, 10), message=messages())
    return st.builds(
        pb.TurnUpdate,
        messages=st.lists(messages(), max_size=3),
        state_json=st.one_of(st.just(""), json_texts()),
        events=st.one_of(st.just([]), st.lists(events, max_size=2)),
        redactions=st.one_of(st.just([]), st.lists(redactions, max_size=1)),
    )


def valid_messages() -> st.SearchStrategy[content_pb2.Message]:
    """Well-formed user / assistant text messages."""
    return st.builds(
        content_pb2.Message,
        role=st.sampled_from([content_pb2.ROLE_USER, content_pb2.ROLE_ASSISTANT]),
        content=st.lists(
            st.builds(content_pb2.ContentBlock, text=st.text(max_size=30)), min_size=1, max_size=3
        ),
    )


def labels() -> st.SearchStrategy[dict[str, str]]:
    return st.dictionaries(hostile_ids(), hostile_ids(), max_size=3)
