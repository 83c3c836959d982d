"""A coverage-guided fuzz harness (atheris) for the content codec and input validation.

Run by ``tests/security/test_fuzz_atheris.py``::

    python tests/support/atheris_harness.py -runs=30000 -seed=1

Each input drives one of five targets; any exception other than the typed
``SessiondError`` the code is meant to raise (or a failed round-trip
assertion) is a crash, which atheris reports with the input that caused it:

0. protobuf ``Message`` bytes -> stored dict -> ``check_message`` -> protobuf
   -> dict again: the codec must round-trip every message it accepts;
1. a ``raw_json`` block: the same round trip for one block;
2. an id: ``check_id`` accepts only ``[A-Za-z0-9._-]`` ids starting with a
   letter or digit, and every key built from an accepted id stays inside
   the tenant's prefix;
3. a page token: only ``InvalidPageToken`` for anything forged;
4. a JSON field: ``parse_json`` raises only ``InvalidArgument``.

:func:`one` decodes its input with a small deterministic reader, so it can
also run without atheris (on seeded random bytes).
"""

from __future__ import annotations

import re
import sys
from contextlib import nullcontext

try:
    import atheris
except ImportError:  # the fallback in the test feeds random bytes instead
    atheris = None

with atheris.instrument_imports(include=["sessiond"]) if atheris else nullcontext():
    from google.protobuf.message import DecodeError

    from sessiond.content import block_from_dict, block_to_dict, message_from_dict, message_to_dict
    from sessiond.errors import InvalidArgument, InvalidPageToken, SessiondError
    from sessiond.server.domain.content import check_message
    from sessiond.server.domain.keys import TenantKeys
    from sessiond.server.domain.limits import Limits
    from sessiond.server.domain.pagination import PageTokens
    from sessiond.server.domain.validation import check_id, parse_json
    from sessiond.v1 import content_pb2

LIMITS = Limits()
TOKENS = PageTokens(b"harness-secret")
KEYS = TenantKeys("default")
ALLOWED_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


class Reader:
    """Takes typed values from the front of a byte string (deterministic)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def byte(self) -> int:
        value = self.data[self.at] if self.at < len(self.data) else 0
        self.at += 1
        return value

    def rest(self) -> bytes:
        value, self.at = self.data[self.at :], len(self.data)
        return value

    def text(self) -> str:
        return self.rest().decode("utf-8", errors="replace")


def _message(reader: Reader) -> None:
    try:
        message = content_pb2.Message.FromString(reader.rest())
    except DecodeError:
        return
    try:
        stored = message_to_dict(message)
        check_message(stored, LIMITS)
    except SessiondError:
        return
    again = message_to_dict(message_from_dict(stored))
    assert again == stored, (stored, again)


def _raw_block(reader: Reader) -> None:
    block = content_pb2.ContentBlock(raw_json=reader.text())
    try:
        stored = block_to_dict(block, field="block")
    except SessiondError:
        return
    again = block_to_dict(block_from_dict(stored), field="block")
    assert again == stored, (stored, again)


def _id(reader: Reader) -> None:
    value = reader.text()
    try:
        check_id(value, field="session_id")
    except InvalidArgument:
        assert not ALLOWED_ID.fullmatch(value)
        return
    assert ALLOWED_ID.fullmatch(value), value
    for key in (KEYS.head(value), KEYS.message(value, value, 0), KEYS.tombstone(value)):
        assert key.startswith(KEYS.root), key
        assert ".." not in key.split("/") and "//" not in key, key


def _token(reader: Reader) -> None:
    try:
        TOKENS.read(reader.text(), kind="messages", tenant="default", filters="f")
    except InvalidPageToken:
        return


def _json(reader: Reader) -> None:
    try:
        parse_json(reader.text(), field="state_json")
    except InvalidArgument:
        return


TARGETS = (_message, _raw_block, _id, _token, _json)


def seed_corpus() -> list[bytes]:
    """Valid inputs for every target, for the fuzzer to mutate from."""
    message = content_pb2.Message(
        role=content_pb2.ROLE_ASSISTANT,
        content=[
            content_pb2.ContentBlock(text="hello"),
            content_pb2.ContentBlock(
                tool_use=content_pb2.ToolUseBlock(tool_use_id="t1", name="f", input_json="{}")
            ),
            content_pb2.ContentBlock(image=content_pb2.ImageBlock(format="png", data=b"\x89PNG")),
            content_pb2.ContentBlock(raw_json='{"reasoningContent": {"reasoningText": {}}}'),
        ],
        metadata_json='{"usage": {"inputTokens": 1}}',
    )
    token = TOKENS.make(kind="messages", tenant="default", filters="f", position={"after": 3})
    return [
        bytes([0]) + message.SerializeToString(),
        bytes([1]) + b'{"json": {"__bytes_encoded__": true, "data": "AAEC"}}',
        bytes([1]) + b'{"toolResult": {"toolUseId": "t", "content": [{"text": "x"}]}}',
        bytes([2]) + b"session-1.a_b",
        bytes([3]) + token.encode(),
        bytes([4]) + b'{"a": [1, 2.5, "x", null, true]}',
    ]


def one(data: bytes) -> None:
    """Runs one input through the target its first byte selects."""
    reader = Reader(data)
    TARGETS[reader.byte() % len(TARGETS)](reader)


if __name__ == "__main__":
    if atheris is None:
        sys.exit("atheris is not installed")
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()
