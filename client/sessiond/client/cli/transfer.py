"""``sessiond export`` and ``sessiond import``, with a progress bar on stderr."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import TextIO

from sessiond.client.bundles import TransferProgress
from sessiond.client.cli import output
from sessiond.client.cli.context import Context
from sessiond.client.cli.options import UsageError

Register = Callable[..., argparse.ArgumentParser]


class ProgressBar:
    """A one-line progress bar redrawn in place (``\\r``) on a terminal stream.

    Export: ``export [######--------------]  3/10 sessions  1.2 MiB``.
    Import: ``import [######--------------]  30%  1.2 MiB / 4.0 MiB``.

    Args:
        label: ``"export"`` or ``"import"``.
        stream: Where to draw (stderr).
        width: Characters of the bar.
        interval: Least seconds between redraws (the last state is always drawn).
    """

    def __init__(
        self, label: str, stream: TextIO, *, width: int = 24, interval: float = 0.1
    ) -> None:
        self.label = label
        self.stream = stream
        self.width = width
        self.interval = interval
        self._last_draw = 0.0
        self._latest: TransferProgress | None = None
        self._line_length = 0

    def render(self, progress: TransferProgress) -> str:
        """The bar's text for a progress state."""
        if progress.bytes_total:
            fraction = min(progress.bytes_done / progress.bytes_total, 1.0)
            detail = (
                f"{fraction * 100:3.0f}%  {output.size(progress.bytes_done)}"
                f" / {output.size(progress.bytes_total)}"
            )
        elif progress.sessions_total:
            fraction = min(progress.sessions_done / progress.sessions_total, 1.0)
            detail = (
                f"{progress.sessions_done}/{progress.sessions_total} sessions"
                f"  {output.size(progress.bytes_done)}"
            )
        else:
            fraction = 0.0
            detail = output.size(progress.bytes_done)
        filled = int(fraction * self.width)
        return f"{self.label} [{'#' * filled}{'-' * (self.width - filled)}]  {detail}"

    def __call__(self, progress: TransferProgress) -> None:
        """Records a progress state; redraws at most every ``interval`` seconds."""
        self._latest = progress
        now = time.monotonic()
        if now - self._last_draw >= self.interval:
            self._draw(progress)
            self._last_draw = now

    def _draw(self, progress: TransferProgress) -> None:
        line = self.render(progress)
        padding = " " * max(self._line_length - len(line), 0)
        self._line_length = len(line)
        self.stream.write(f"\r{line}{padding}")
        self.stream.flush()

    def close(self, final: TransferProgress | None = None) -> None:
        """Draws the last state and ends the line."""
        latest = final or self._latest
        if latest is not None:
            self._draw(latest)
            self.stream.write("\n")
            self.stream.flush()


def register(add: Register) -> None:
    """Adds ``export`` and ``import``; ``add(name, help=...)`` makes a subcommand parser."""
    export = add("export", help="export sessions to a tar.gz bundle")
    export.add_argument(
        "sessions", nargs="*", metavar="SESSION", help="sessions to export (default: every session)"
    )
    export.add_argument(
        "-o",
        "--out",
        required=True,
        metavar="FILE",
        help="the bundle file to write ('-': standard output)",
    )
    export.add_argument(
        "--include-archived", action="store_true", help="with no SESSION: archived sessions too"
    )
    _progress_flag(export)
    export.set_defaults(handler=cmd_export)

    import_ = add("import", help="import a bundle made by export")
    import_.add_argument("file", metavar="FILE", help="the bundle ('-': standard input)")
    import_.add_argument(
        "--skip-existing",
        action="store_true",
        help="leave sessions that exist already as they are (default: refuse)",
    )
    _progress_flag(import_)
    import_.set_defaults(handler=cmd_import)


def _progress_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="draw a progress bar on stderr (default: when stderr is a terminal)",
    )


def _bar(args: argparse.Namespace, label: str) -> ProgressBar | None:
    show = args.progress if args.progress is not None else sys.stderr.isatty()
    return ProgressBar(label, sys.stderr) if show else None


def cmd_export(args: argparse.Namespace, ctx: Context) -> int:
    """``sessiond export``."""
    to_stdout = args.out == "-"
    if to_stdout and sys.stdout.isatty():
        raise UsageError("refusing to write a bundle to a terminal; use -o FILE")
    if to_stdout and ctx.json:
        raise UsageError("--output json needs -o FILE (standard output carries the bundle)")
    bar = _bar(args, "export")
    try:
        result = ctx.client.export_to_file(
            sys.stdout.buffer if to_stdout else args.out,
            session_ids=args.sessions,
            include_archived=args.include_archived,
            on_progress=bar,
        )
    finally:
        if bar is not None:
            bar.close()
    manifest = output.to_json(result.manifest)
    manifest.pop("manifest_json", None)
    if ctx.json:
        ctx.emit({"path": result.path, "bytes": result.size, "manifest": manifest})
        return 0
    m = result.manifest
    summary = (
        f"exported {m.session_count} sessions ({m.message_count} messages, {m.turn_count} turns,"
        f" {m.review_count} reviews) to {result.path or 'standard output'}"
        f" ({output.size(result.size)})"
    )
    print(summary, file=sys.stderr if to_stdout else sys.stdout)
    return 0


def cmd_import(args: argparse.Namespace, ctx: Context) -> int:
    """``sessiond import``."""
    source = sys.stdin.buffer if args.file == "-" else args.file
    bar = _bar(args, "import")
    try:
        result = ctx.client.import_file(
            source, on_conflict="skip" if args.skip_existing else "fail", on_progress=bar
        )
    finally:
        if bar is not None:
            bar.close()
    if ctx.json:
        ctx.emit(output.to_json(result))
        return 0
    imported = list(result.imported_session_ids)
    print(
        f"imported {len(imported)} sessions ({result.message_count} messages)"
        + (f": {', '.join(imported)}" if imported else "")
    )
    if result.skipped_session_ids:
        skipped = list(result.skipped_session_ids)
        print(f"skipped {len(skipped)} existing sessions: {', '.join(skipped)}")
    return 0
