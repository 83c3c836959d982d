"""The ``sessiond`` command line."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="sessiond", description="sessiond: sessions for AI agents"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    from sessiond.server.ops.settings import add_arguments

    add_arguments(serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``sessiond`` console script."""
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        from pydantic import ValidationError

        from sessiond.server.main import run
        from sessiond.server.ops.settings import from_arguments

        try:
            settings = from_arguments(args)
        except ValidationError as exc:
            print(f"sessiond: invalid settings: {exc}", file=sys.stderr)
            return 2
        run(settings)
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
