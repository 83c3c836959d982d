"""The CLI's pure parts: option resolution, the JSON mapping, the progress bar, exit codes."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
import types

import pytest

from sessiond.client.bundles import TransferProgress
from sessiond.client.cli import build_parser
from sessiond.client.cli.failures import EXIT_CODES, exit_code
from sessiond.client.cli.options import UsageError, resolve
from sessiond.client.cli.output import to_json
from sessiond.client.cli.transfer import ProgressBar
from sessiond.errors import ERRORS_BY_REASON, SessionBusy
from sessiond.v1 import content_pb2, session_pb2


def parse(*argv: str) -> argparse.Namespace:
    return build_parser(with_server=False).parse_args(list(argv))


def test_flags_win_over_variables_over_defaults(tmp_path) -> None:
    assert resolve(parse("ls"), {}).target == "127.0.0.1:50051"
    environ = {"SESSIOND_TARGET": "env:1", "SESSIOND_OUTPUT": "json", "SESSIOND_TIMEOUT": "7"}
    from_env = resolve(parse("ls"), environ)
    assert (from_env.target, from_env.output, from_env.timeout) == ("env:1", "json", 7.0)
    # Before or after the command name.
    assert resolve(parse("--target", "flag:1", "ls"), environ).target == "flag:1"
    assert resolve(parse("ls", "--target", "flag:2", "-O", "text"), environ).output == "text"
    token = tmp_path / "token"
    token.write_text("  abc\n")
    assert resolve(parse("ls", "--token-file", str(token)), {}).token == "abc"
    assert resolve(parse("ls"), {"SESSIOND_TOKEN_FILE": str(token)}).token == "abc"


def test_tls_is_implied_by_files_unless_turned_off() -> None:
    assert not resolve(parse("ls"), {}).tls
    assert resolve(parse("ls", "--ca-file", "ca.pem"), {}).tls
    assert resolve(parse("ls"), {"SESSIOND_TLS_SERVER_NAME": "x"}).tls
    assert not resolve(parse("ls", "--no-tls"), {"SESSIOND_CA_FILE": "ca.pem"}).tls
    assert not resolve(parse("ls"), {"SESSIOND_CA_FILE": "ca.pem", "SESSIOND_TLS": "false"}).tls
    off = resolve(parse("ls", "--no-tls", "--ca-file", "ca.pem"), {})
    assert off.client_arguments()["ca_file"] is None


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["ls"], {"SESSIOND_TLS": "maybe"}, "SESSIOND_TLS must be true or false"),
        (["ls"], {"SESSIOND_TIMEOUT": "soon"}, "SESSIOND_TIMEOUT must be a number"),
        (["ls", "--timeout", "0"], {}, "the timeout must be positive"),
        (["ls", "--cert-file", "c.pem"], {}, "needs both --cert-file and --key-file"),
        (["ls", "--token", "a"], {"SESSIOND_TOKEN_FILE": "/nonexistent"}, "either a token"),
        (["ls", "--token-file", "/nonexistent"], {}, "cannot read the token file"),
    ],
)
def test_bad_options_are_usage_errors(argv, environ, message) -> None:
    with pytest.raises(UsageError, match=message):
        resolve(parse(*argv), environ)


def test_json_mapping_is_stable() -> None:
    session = session_pb2.Session(
        session_id="s",
        status=session_pb2.SESSION_STATUS_WAITING,
        message_count=2**40,
        labels={"k": "v"},
    )
    body = to_json(session)
    assert body["status"] == "WAITING"
    assert body["message_count"] == 2**40 and isinstance(body["message_count"], int)
    assert body["labels"] == {"k": "v"} and body["metadata"] == {}
    assert body["lease"] is None and body["create_time"] is None and body["agents"] == []
    session.create_time.FromSeconds(0)
    session.create_time.nanos = 5_000_000
    assert to_json(session)["create_time"] == "1970-01-01T00:00:00.005Z"
    message = content_pb2.Message(
        role=content_pb2.ROLE_ASSISTANT,
        content=[
            content_pb2.ContentBlock(text="hi"),
            content_pb2.ContentBlock(image=content_pb2.ImageBlock(format="png", data=b"\x00\xff")),
        ],
    )
    assert to_json(message) == {
        "role": "ASSISTANT",
        "content": [{"text": "hi"}, {"image": {"format": "png", "data": "AP8="}}],
        "metadata_json": "",
        "extra_json": "",
    }


def test_progress_bar_draws_in_place() -> None:
    stream = io.StringIO()
    bar = ProgressBar("export", stream, width=10, interval=0)
    assert bar.render(TransferProgress(1, 4, 2048)) == "export [##--------]  1/4 sessions  2.0 KiB"
    importing = ProgressBar("import", stream, width=10)
    half = TransferProgress(bytes_done=512, bytes_total=1024)
    assert importing.render(half) == "import [#####-----]   50%  512 B / 1.0 KiB"
    bar(TransferProgress(1, 4, 10))
    bar(TransferProgress(4, 4, 20))
    bar.close()
    assert stream.getvalue().count("\r") == 3 and stream.getvalue().endswith("4/4 sessions  20 B\n")


def test_every_error_class_has_an_exit_code() -> None:
    for (code, _), cls in ERRORS_BY_REASON.items():
        expected = EXIT_CODES.get(code, 1)
        assert exit_code(cls("x")) == expected
    assert exit_code(SessionBusy("busy")) == 6


def test_client_commands_do_not_import_the_server() -> None:
    script = (
        "import sys\n"
        "from sessiond.client.cli import main\n"
        "try:\n    main(['ls', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith(('sessiond.server', 'pydantic'))))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_chat_turns_have_no_deadline_unless_one_is_set() -> None:
    """A model may take longer than the 30 s default of other commands."""
    from sessiond.client.cli.chat import Chat

    class Recorder:
        """Stands in for the connection; records the deadline each Chat call asks for."""

        def __init__(self) -> None:
            self.timeouts: list[object] = []

        def chat(self, session_id: str, text: str, **kwargs: object) -> object:
            self.timeouts.append(kwargs.get("timeout"))
            return types.SimpleNamespace(text="an answer")

    assert resolve(parse("chat"), {}).timeout_given is False
    assert resolve(parse("chat", "--timeout", "5"), {}).timeout_given is True
    assert resolve(parse("chat"), {"SESSIOND_TIMEOUT": "9"}).timeout_given is True
    for given, expected in ((None, None), (5.0, 5.0)):
        recorder = Recorder()
        chat = Chat(recorder, turn_timeout=given)  # type: ignore[arg-type]
        chat.session_id = "s"
        chat.say("hello")
        assert recorder.timeouts == [expected]


def test_a_negative_limit_is_a_usage_error(capsys) -> None:
    assert parse("ls", "--limit", "0").limit == 0
    with pytest.raises(SystemExit) as caught:
        parse("ls", "--limit", "-1")
    assert caught.value.code == 2
    assert "must not be negative" in capsys.readouterr().err
