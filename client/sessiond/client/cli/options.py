"""The command line's connection and output options, from flags or ``SESSIOND_*`` variables.

Precedence: flag, then environment variable, then default. These variables are
read only by the client commands; ``sessiond serve`` reads only the variables
of its own settings, so both kinds can share one environment.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass

from sessiond.client.connection import DEFAULT_TARGET, read_token_file

#: Each option's environment variable.
ENVIRONMENT = {
    "target": "SESSIOND_TARGET",
    "tls": "SESSIOND_TLS",
    "ca_file": "SESSIOND_CA_FILE",
    "cert_file": "SESSIOND_CERT_FILE",
    "key_file": "SESSIOND_KEY_FILE",
    "server_name": "SESSIOND_TLS_SERVER_NAME",
    "token": "SESSIOND_TOKEN",
    "token_file": "SESSIOND_TOKEN_FILE",
    "timeout": "SESSIOND_TIMEOUT",
    "output": "SESSIOND_OUTPUT",
    "debug": "SESSIOND_DEBUG",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class UsageError(Exception):
    """A bad option or environment variable (exit code 2)."""


def add_options(parser: argparse.ArgumentParser) -> None:
    """Adds the connection and output options.

    Every default is ``SUPPRESS``, so the options can be given before or after
    the subcommand, and :func:`resolve` tells a given flag from the environment.
    """
    group = parser.add_argument_group("connection and output (also SESSIOND_* variables)")
    add = group.add_argument
    hide = argparse.SUPPRESS
    add(
        "--target",
        metavar="HOST:PORT",
        default=hide,
        help=f"server host:port (SESSIOND_TARGET; {DEFAULT_TARGET})",
    )
    add(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=hide,
        help="use TLS (SESSIOND_TLS); implied by --ca-file / --cert-file",
    )
    add(
        "--ca-file",
        metavar="FILE",
        default=hide,
        help="PEM roots of the server's certificate (SESSIOND_CA_FILE)",
    )
    add(
        "--cert-file",
        metavar="FILE",
        default=hide,
        help="PEM client certificate, mTLS (SESSIOND_CERT_FILE)",
    )
    add(
        "--key-file",
        metavar="FILE",
        default=hide,
        help="PEM key of --cert-file (SESSIOND_KEY_FILE)",
    )
    add(
        "--tls-server-name",
        dest="server_name",
        metavar="NAME",
        default=hide,
        help="name to verify the server's certificate against (SESSIOND_TLS_SERVER_NAME)",
    )
    add("--token", default=hide, help="bearer token (SESSIOND_TOKEN)")
    add(
        "--token-file",
        metavar="FILE",
        default=hide,
        help="file holding the bearer token (SESSIOND_TOKEN_FILE)",
    )
    add(
        "--timeout",
        type=float,
        metavar="SECONDS",
        default=hide,
        help="per-call deadline in seconds (SESSIOND_TIMEOUT; 30)",
    )
    add(
        "--output",
        "-O",
        choices=["text", "json"],
        metavar="{text,json}",
        default=hide,
        help="output format (SESSIOND_OUTPUT; text)",
    )
    add(
        "--debug",
        action="store_true",
        default=hide,
        help="show tracebacks of errors (SESSIOND_DEBUG)",
    )


@dataclass(frozen=True)
class Options:
    """The resolved options of a client command.

    Attributes:
        target: Server ``host:port``.
        tls: Whether to use TLS.
        ca_file: PEM roots, or None for the system's.
        cert_file: Client certificate (mTLS), or None.
        key_file: Its key, or None.
        server_name: TLS name override, or None.
        token: Bearer token, or None.
        timeout: Per-call deadline in seconds.
        timeout_given: Whether the deadline was set (flag or SESSIOND_TIMEOUT)
            rather than defaulted; a chat turn has no deadline unless it was.
        output: ``"text"`` or ``"json"``.
        debug: Print tracebacks.
    """

    target: str = DEFAULT_TARGET
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    token: str | None = None
    timeout: float = 30.0
    timeout_given: bool = False
    output: str = "text"
    debug: bool = False

    def client_arguments(self) -> dict[str, object]:
        """Keyword arguments of ``Client`` / ``AsyncClient``."""
        tls = self.tls
        return {
            "timeout": self.timeout,
            "tls": tls,
            "ca_file": self.ca_file if tls else None,
            "cert_file": self.cert_file if tls else None,
            "key_file": self.key_file if tls else None,
            "server_name": self.server_name if tls else None,
            "token": self.token,
        }


def _flag(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise UsageError(f"{ENVIRONMENT[name]} must be true or false, not {value!r}")


def resolve(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> Options:
    """The options of a command: flags over ``SESSIOND_*`` variables over defaults.

    Raises:
        UsageError: A value is malformed, or both a token and a token file are given.
    """
    environ = os.environ if environ is None else environ

    def value(name: str) -> str | None:
        if name in vars(args):
            return getattr(args, name)  # type: ignore[no-any-return]
        return environ.get(ENVIRONMENT[name]) or None

    # An explicit choice (flag, else a non-empty SESSIOND_TLS) wins; otherwise TLS
    # is implied by a CA file, a client certificate or a server name.
    tls_given = vars(args).get("tls")
    if tls_given is None and environ.get("SESSIOND_TLS", "").strip():
        tls_given = _flag("tls", environ["SESSIOND_TLS"])
    debug = bool(vars(args).get("debug")) or _flag("debug", environ.get("SESSIOND_DEBUG", ""))
    output = value("output") or "text"
    if output not in ("text", "json"):
        raise UsageError(f"SESSIOND_OUTPUT must be text or json, not {output!r}")
    raw_timeout = value("timeout")
    try:
        timeout = float(raw_timeout) if raw_timeout is not None else 30.0
    except ValueError:
        raise UsageError(f"SESSIOND_TIMEOUT must be a number, not {raw_timeout!r}") from None
    if timeout <= 0:
        raise UsageError("the timeout must be positive")
    token, token_file = value("token"), value("token_file")
    if token and token_file:
        raise UsageError("give either a token or a token file, not both")
    if token_file:
        try:
            token = read_token_file(token_file)
        except (OSError, ValueError) as error:
            raise UsageError(f"cannot read the token file: {error}") from None
    files = {name: value(name) for name in ("ca_file", "cert_file", "key_file", "server_name")}
    if (files["cert_file"] is None) != (files["key_file"] is None):
        raise UsageError("a client certificate needs both --cert-file and --key-file")
    implied = any(files[name] for name in ("ca_file", "cert_file", "server_name"))
    return Options(
        target=value("target") or DEFAULT_TARGET,
        tls=bool(tls_given) if tls_given is not None else implied,
        token=token,
        timeout=timeout,
        timeout_given=raw_timeout is not None,
        output=output,
        debug=debug,
        **files,
    )
