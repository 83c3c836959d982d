"""The ``sessiond`` command line: ``serve``, ``chat`` and the session commands.

Client commands print friendly text, or stable JSON with ``--output json``;
errors are one line on stderr (a traceback only with ``--debug``) and the exit
code follows the gRPC status code (see :mod:`sessiond.client.cli.failures` and
docs/cli.md). ``serve`` imports the server only when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import Any

from sessiond.client.cli import chat, commands, transfer
from sessiond.client.cli.context import Context
from sessiond.client.cli.failures import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    report,
    report_local,
)
from sessiond.client.cli.options import Options, UsageError, add_options, resolve
from sessiond.errors import SessiondError

__all__ = ["build_parser", "main"]

DESCRIPTION = "sessiond: sessions for AI agents. Run `sessiond COMMAND --help` for details."


def build_parser(*, with_server: bool = True) -> argparse.ArgumentParser:
    """The argument parser of every subcommand.

    Args:
        with_server: Add the flags of ``serve`` (they come from the server's
            settings, so building them imports the server).
    """
    parser = argparse.ArgumentParser(prog="sessiond", description=DESCRIPTION)
    add_options(parser)
    subcommands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = subcommands.add_parser(
        "serve", help="run the server", description="Run the sessiond server."
    )
    if with_server:
        from sessiond.server.ops.settings import add_arguments

        add_arguments(serve)

    def add(name: str, *, help: str) -> argparse.ArgumentParser:
        sub = subcommands.add_parser(name, help=help, description=help[:1].upper() + help[1:] + ".")
        add_options(sub)
        return sub

    chat.register(add)
    commands.register(add)
    transfer.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sessiond`` console script; returns the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(with_server="serve" in arguments)
    args = parser.parse_args(arguments)
    if args.command == "serve":
        return _serve(args)
    try:
        options = resolve(args)
    except UsageError as error:
        parser.exit(EXIT_USAGE, f"sessiond: {error}\n")
    return run(args, options)


def run(args: argparse.Namespace, options: Options) -> int:
    """Runs a client command, turning every failure into one line and an exit code."""
    context = Context(options)
    json_output = options.output == "json"
    try:
        return int(args.handler(args, context))
    except SessiondError as error:
        _traceback(options)
        return report(error, json_output=json_output, target=options.target)
    except UsageError as error:
        return report_local(str(error), json_output=json_output, code=EXIT_USAGE)
    except KeyboardInterrupt:
        return report_local("interrupted", json_output=json_output, code=EXIT_INTERRUPTED)
    except BrokenPipeError:
        # The reader went away (`sessiond ls | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR
    except (OSError, ValueError) as error:
        _traceback(options)
        return report_local(str(error), json_output=json_output, code=EXIT_ERROR)
    except Exception as error:
        _traceback(options)
        hint = "" if options.debug else " (--debug shows the traceback)"
        message = f"unexpected error: {type(error).__name__}: {error}{hint}"
        return report_local(message, json_output=json_output, code=EXIT_ERROR)
    finally:
        _close(context)


def _traceback(options: Options) -> None:
    if options.debug:
        traceback.print_exc()


def _close(context: Context) -> None:
    try:
        context.close()
    except Exception:  # closing must not mask the command's outcome
        pass


def _serve(args: Any) -> int:
    from pydantic import ValidationError

    from sessiond.server.main import run as run_server
    from sessiond.server.ops.settings import from_arguments

    try:
        settings = from_arguments(args)
    except ValidationError as exc:
        print(f"sessiond: invalid settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    run_server(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
