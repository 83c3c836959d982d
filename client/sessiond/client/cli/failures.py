"""Exit codes and one-line error reports of the command line."""

from __future__ import annotations

import json
import sys
from typing import TextIO

from sessiond.errors import SessiondError

#: Success.
EXIT_OK = 0
#: An unexpected error (INTERNAL, UNKNOWN, a local failure such as an unwritable file).
EXIT_ERROR = 1
#: A usage error: unknown command or flag, bad option value.
EXIT_USAGE = 2
#: Interrupted (Ctrl-C).
EXIT_INTERRUPTED = 130

#: The exit code of each gRPC status code (documented in docs/cli.md).
EXIT_CODES: dict[str, int] = {
    "OK": EXIT_OK,
    "INVALID_ARGUMENT": 3,
    "OUT_OF_RANGE": 3,
    "NOT_FOUND": 4,
    "ALREADY_EXISTS": 5,
    "ABORTED": 6,
    "FAILED_PRECONDITION": 7,
    "UNAVAILABLE": 8,
    "DEADLINE_EXCEEDED": 9,
    "UNAUTHENTICATED": 10,
    "PERMISSION_DENIED": 10,
    "DATA_LOSS": 11,
    "RESOURCE_EXHAUSTED": 12,
    "CANCELLED": EXIT_INTERRUPTED,
}


def exit_code(error: SessiondError) -> int:
    """The exit code of a sessiond error: by its gRPC code, 1 for the others."""
    return EXIT_CODES.get(error.code, EXIT_ERROR)


def describe(error: SessiondError, target: str | None = None) -> str:
    """One line: the message, its metadata and its reason.

    Example: ``another runner holds the session (session_id=a, lease_expire_time=...)
    [SESSION_BUSY]``.
    """
    message = error.message or type(error).__name__
    if error.code == "UNAVAILABLE" and error.reason == "UNAVAILABLE" and target:
        message = f"cannot reach {target}: {message}"
    details = ", ".join(f"{key}={value}" for key, value in sorted(error.metadata.items()))
    line = f"{message} ({details})" if details else message
    return " ".join(f"{line} [{error.reason}]".split())


def report(
    error: SessiondError, *, json_output: bool, target: str | None, stream: TextIO | None = None
) -> int:
    """Prints the error on stderr (one line, or one JSON object); returns the exit code."""
    stream = stream or sys.stderr
    code = exit_code(error)
    if json_output:
        body = {
            "error": {
                "code": error.code,
                "reason": error.reason,
                "message": error.message,
                "metadata": dict(sorted(error.metadata.items())),
                "exit_code": code,
            }
        }
        stream.write(json.dumps(body, ensure_ascii=False) + "\n")
    else:
        stream.write(f"sessiond: {describe(error, target)}\n")
    return code


def report_local(
    message: str, *, json_output: bool, code: int, stream: TextIO | None = None
) -> int:
    """Prints an error that did not come from the server; returns ``code``."""
    stream = stream or sys.stderr
    if json_output:
        body = {
            "error": {
                "code": "LOCAL",
                "reason": "",
                "message": message,
                "metadata": {},
                "exit_code": code,
            }
        }
        stream.write(json.dumps(body, ensure_ascii=False) + "\n")
    else:
        stream.write(f"sessiond: {' '.join(message.split())}\n")
    return code
