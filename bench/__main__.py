"""``python -m bench``: sessiond and Strands side by side on one moto, one table, one JSON.

    .venv/bin/python -m bench                 # the full run (~20 min on 2 cores)
    .venv/bin/python -m bench --quick         # every phase, tiny sizes (< 1 min; CI smoke)
    .venv/bin/python -m bench --latency-ms 50 --phases turns,latency

Prints the table on stdout (progress on stderr) and writes every figure to
``bench/results/latest.json``. Exit status 1 if a phase crashed; a missed
target is a figure, not a crash (``--strict`` makes it exit 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.suite import PHASES, Bench, Options


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CI smoke run)")
    parser.add_argument(
        "--latency-ms", type=float, default=20.0, help="delay per S3 request in the latency phase"
    )
    parser.add_argument(
        "--phases",
        default=",".join(PHASES),
        help=f"comma-separated subset of {','.join(PHASES)}",
    )
    parser.add_argument("--json", type=Path, default=Options.json_path, help="figures file")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown")
    parser.add_argument("--keep-logs", action="store_true", help="keep process logs")
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    args = parser.parse_args(argv)
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        parser.error(f"unknown phases: {', '.join(unknown)}")
    options = Options(
        quick=args.quick,
        latency_ms=args.latency_ms,
        phases=phases,
        json_path=args.json,
        markdown_path=args.markdown,
        keep_logs=args.keep_logs,
    )
    bench = Bench(options)
    report = bench.run()
    env = report.environment
    print(report.table())
    print(
        f"\n{env['cpus']} CPUs; load average {env['load_before'][0]:.1f} before, "
        f"{env['load_after'][0]:.1f} after; {env['seconds']:.0f}s in all "
        f"({', '.join(f'{k} {v:.0f}s' for k, v in env['phase_seconds'].items())})"
    )
    report.write_json(options.json_path)
    print(f"figures: {options.json_path}")
    if options.markdown_path:
        options.markdown_path.write_text(report.markdown() + "\n")
    if "logs" in env:
        print(f"process logs: {env['logs']}")
    if bench.failures:
        print(f"crashed phases: {', '.join(bench.failures)}", file=sys.stderr)
        return 1
    if args.strict and any(row.passed is False for row in report.rows):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
