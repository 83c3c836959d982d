"""The contract stays safe to change: lint, format and breaking-change checks, the reference.

``scripts/check_contract.sh`` runs ``buf lint`` (STANDARD), ``buf format`` and
``buf breaking`` against the released contract
(``protos/released/sessiond-v1.binpb``). These tests run it on the repository
and on edited copies of the protos: every kind of breaking change is caught,
additions pass. ``docs/api-reference.md`` must match the protos.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from polyglot.helpers import ROOT, run

from sessiond.errors import ERRORS_BY_REASON
from sessiond.v1 import session_service_pb2

SCRIPT = ROOT / "scripts" / "check_contract.sh"
BASELINE = ROOT / "protos" / "released" / "sessiond-v1.binpb"


def check(protos: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), "--protos", str(protos), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def edited_copy(tmp_path: Path, file: str, old: str, new: str) -> Path:
    """A copy of protos/ with one edit in one file."""
    copy = tmp_path / "protos"
    shutil.copytree(ROOT / "protos", copy, ignore=shutil.ignore_patterns("released"))
    path = copy / "sessiond" / "v1" / file
    text = path.read_text()
    assert old in text, f"{old!r} not in {file}"
    path.write_text(text.replace(old, new, 1))
    return copy


def test_the_contract_passes(buf: Path) -> None:
    done = run([str(SCRIPT)], ROOT)
    assert "contract check passed" in done.stdout


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        pytest.param(
            "session.proto",
            "  string title = 3;\n",
            "",
            'Previously present field "3" with name "title" on message "Session" was deleted',
            id="remove-field",
        ),
        pytest.param(
            "session_service.proto",
            "rpc Replay(ReplayRequest) returns (ReplayResponse);",
            "rpc Timeline(ReplayRequest) returns (ReplayResponse);",
            'Previously present RPC "Replay" on service "SessionService" was deleted',
            id="rename-rpc",
        ),
        pytest.param(
            "session.proto",
            "int64 message_count = 9;",
            "int32 message_count = 9;",
            'changed type from "int64" to "int32"',
            id="change-field-type",
        ),
        pytest.param(
            "session.proto",
            "string etag = 14;",
            "string etag = 18;",
            'Previously present field "14" with name "etag"',
            id="renumber-field",
        ),
        pytest.param(
            "turn.proto",
            "TURN_STATUS_WAITING = 3;",
            "TURN_STATUS_BLOCKED = 3;",
            'changed name from "TURN_STATUS_WAITING" to "TURN_STATUS_BLOCKED"',
            id="rename-enum-value",
        ),
        pytest.param(
            "session_service.proto",
            "rpc Export(ExportRequest) returns (stream ExportResponse);",
            "rpc Export(ExportRequest) returns (ExportResponse);",
            "server streaming",
            id="streaming-to-unary",
        ),
    ],
)
def test_a_breaking_change_is_caught(
    buf: Path, tmp_path: Path, file: str, old: str, new: str, expected: str
) -> None:
    done = check(edited_copy(tmp_path, file, old, new))
    assert done.returncode == 1, done.stdout + done.stderr
    assert expected in done.stdout + done.stderr
    assert "contract check FAILED" in done.stderr


def test_an_addition_passes(buf: Path, tmp_path: Path) -> None:
    copy = edited_copy(
        tmp_path,
        "session_service.proto",
        "  // Returns the session's timeline",
        "  // Counts sessions.\n"
        "  rpc Count(CountRequest) returns (CountResponse);\n"
        "  // Returns the session's timeline",
    )
    service = copy / "sessiond" / "v1" / "session_service.proto"
    service.write_text(
        service.read_text()
        + "\n// Request of `Count`.\nmessage CountRequest {\n"
        + "  // Only archived sessions.\n  bool archived = 1;\n}\n"
        + "\n// Response of `Count`.\nmessage CountResponse {\n"
        + "  // Sessions.\n  int64 count = 1;\n}\n"
    )
    done = check(copy)
    assert done.returncode == 0, done.stdout + done.stderr


def test_lint_and_format_problems_are_caught(buf: Path, tmp_path: Path) -> None:
    copy = edited_copy(
        tmp_path,
        "session.proto",
        "// Token usage of model calls.",
        "message bad_name {\n    string Field = 1;\n}\n\n// Token usage of model calls.",
    )
    done = check(copy)
    assert done.returncode == 1
    output = done.stdout + done.stderr
    assert 'Message name "bad_name" should be PascalCase' in output
    assert "+  string Field = 1;" in output  # the format diff


def test_against_a_git_commit(buf: Path) -> None:
    done = run([str(SCRIPT), "--against-ref", "HEAD"], ROOT)
    assert "buf breaking against HEAD" in done.stdout


def test_the_baseline_is_a_released_contract() -> None:
    image = descriptor_pb2.FileDescriptorSet.FromString(BASELINE.read_bytes())
    files = {file.name: file for file in image.file}
    assert {
        "sessiond/v1/session_service.proto",
        "sessiond/v1/session.proto",
        "sessiond/v1/turn.proto",
        "sessiond/v1/content.proto",
    } <= set(files)
    [service] = files["sessiond/v1/session_service.proto"].service
    released = {method.name for method in service.method}
    service_now = session_service_pb2.DESCRIPTOR.services_by_name["SessionService"]
    current = {method.name for method in service_now.methods}
    assert released <= current  # nothing released was removed


def test_the_api_reference_is_current() -> None:
    run([sys.executable, "scripts/gen_api_reference.py", "--check"], ROOT)
    reference = (ROOT / "docs" / "api-reference.md").read_text()
    file = session_service_pb2.DESCRIPTOR
    for method in file.services_by_name["SessionService"].methods:
        assert f"### `{method.name}`" in reference
    for name in file.message_types_by_name:
        assert f"### `{name}`" in reference


def test_api_md_documents_every_rpc_and_reason() -> None:
    text = (ROOT / "docs" / "api.md").read_text()
    methods = session_service_pb2.DESCRIPTOR.services_by_name["SessionService"].methods
    for method in methods:
        assert f'<a id="rpc-{method.name.lower()}"></a>' in text, method.name
    reasons = set(re.findall(r"`([A-Z_]+)`", text))
    missing = {reason for _, reason in ERRORS_BY_REASON} - reasons
    assert not missing, f"error reasons not in docs/api.md: {sorted(missing)}"
