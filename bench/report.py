"""Figures → one table (stdout) and one JSON file."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) by linear interpolation; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(seconds: Sequence[float]) -> dict[str, float]:
    """n, p50, p99, mean, max of durations, in milliseconds."""
    return {
        "n": len(seconds),
        "p50_ms": quantile(seconds, 0.5) * 1000,
        "p99_ms": quantile(seconds, 0.99) * 1000,
        "mean_ms": (statistics.fmean(seconds) * 1000) if seconds else math.nan,
        "max_ms": (max(seconds) * 1000) if seconds else math.nan,
    }


def count_summary(samples: Iterable[dict[str, int]]) -> dict[str, Any]:
    """Median / p99 / max of the total per sample, and the median per operation."""
    samples = list(samples)
    totals = [sum(s.values()) for s in samples]
    ops = sorted({op for s in samples for op in s})
    return {
        "n": len(samples),
        "median": quantile(totals, 0.5),
        "p99": quantile(totals, 0.99),
        "max": max(totals) if totals else math.nan,
        "median_by_op": {op: quantile([s.get(op, 0) for s in samples], 0.5) for op in ops},
    }


def fmt(value: Any, digits: int = 1) -> str:
    """A compact cell."""
    if value is None:
        return "—"
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if value >= 100 or value == int(value):
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def ops_text(by_op: dict[str, float]) -> str:
    """``{"put": 3, "get": 1}`` → ``"3 PUT + 1 GET"``."""
    parts = [f"{fmt(float(n))} {op.upper()}" for op, n in sorted(by_op.items()) if n]
    return " + ".join(parts) if parts else "0"


@dataclass
class Row:
    """One line of the table."""

    workload: str
    metric: str
    sessiond: Any
    strands: Any = None
    target: str = ""
    passed: bool | None = None
    note: str = ""
    #: sessiond / strands; computed when both are numbers unless given.
    ratio: float | None = None

    def __post_init__(self) -> None:
        if (
            self.ratio is None
            and isinstance(self.sessiond, int | float)
            and isinstance(self.strands, int | float)
            and self.strands
        ):
            self.ratio = float(self.sessiond) / float(self.strands)


@dataclass
class Report:
    """Rows plus every figure behind them."""

    rows: list[Row] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    def add(self, *rows: Row) -> None:
        """Appends rows."""
        self.rows.extend(rows)

    def table(self) -> str:
        """The table as aligned text."""
        header = ["workload", "metric", "sessiond", "strands", "ratio", "target", "pass"]
        lines = [header]
        for row in self.rows:
            verdict = {True: "PASS", False: "FAIL", None: ""}[row.passed]
            lines.append(
                [
                    row.workload,
                    row.metric + (f" [{row.note}]" if row.note else ""),
                    fmt(row.sessiond),
                    fmt(row.strands),
                    fmt(row.ratio, 3) if row.ratio is not None else "—",
                    row.target,
                    verdict,
                ]
            )
        widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
        out = []
        for number, line in enumerate(lines):
            out.append(
                "  ".join(
                    str(cell).rjust(widths[i]) if 2 <= i <= 4 else str(cell).ljust(widths[i])
                    for i, cell in enumerate(line)
                ).rstrip()
            )
            if number == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    def markdown(self) -> str:
        """The table as Markdown (for docs/performance.md)."""
        out = [
            "| workload | metric | sessiond | strands | ratio | target | pass |",
            "|---|---|--:|--:|--:|---|---|",
        ]
        for row in self.rows:
            verdict = {True: "PASS", False: "**FAIL**", None: ""}[row.passed]
            metric = row.metric + (f" ({row.note})" if row.note else "")
            ratio = fmt(row.ratio, 3) if row.ratio is not None else "—"
            out.append(
                f"| {row.workload} | {metric} | {fmt(row.sessiond)} | {fmt(row.strands)} "
                f"| {ratio} | {row.target} | {verdict} |"
            )
        return "\n".join(out)

    def write_json(self, path: Path) -> None:
        """Writes rows, figures and environment as JSON."""
        path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "environment": self.environment,
            "rows": [asdict(row) for row in self.rows],
            "figures": self.figures,
        }
        path.write_text(json.dumps(clean(document), indent=2, default=str) + "\n")


def clean(value: Any) -> Any:
    """``value`` with NaN / infinities replaced by None (strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value
