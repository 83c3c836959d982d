"""The benchmark's CI smoke run: ``python -m bench --quick`` must keep working.

Every phase runs at tiny sizes against a real moto subprocess, real sessiond
server processes and Strands. Nothing here asserts a duration (the machine is
shared and noisy); what is asserted is that every phase ran and produced its
figures, and the request-count budgets, which do not depend on timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Rows whose budget is a request count (deterministic), by (workload prefix, metric prefix).
COUNT_ROWS = [
    ("Chat turn (echo)", "S3 requests/turn, median"),
    ("Run turn (client runtime)", "S3 requests/turn, median"),
    ("Warm restore", "S3 requests"),
    ("Get, head cached", "S3 requests"),
    ("List over", "page of 100: S3 requests"),
    ("ListPendingReviews", "S3 requests per page"),
]


@pytest.mark.slow
def test_quick_benchmark_runs_every_phase(tmp_path: Path) -> None:
    figures_path = tmp_path / "figures.json"
    table_path = tmp_path / "table.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--json",
            str(figures_path),
            "--markdown",
            str(table_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr[-5000:]}"
    document = json.loads(figures_path.read_text())
    figures, rows = document["figures"], document["rows"]

    assert "errors" not in figures
    for phase in (
        "turns",
        "restore",
        "strands_manager",
        "throughput",
        "latency",
        "memory_store",
        "listing",
        "export",
    ):
        assert phase in figures, phase
    assert document["environment"]["phase_seconds"].keys() >= {"turns", "export"}
    # Both sides were measured in the same run.
    turns = figures["turns"]
    assert turns["chat"]["latency"]["n"] > 0 and turns["strands"]["call"]["n"] > 0
    assert turns["strands"]["requests"]["median"] >= 2  # Strands writes per message
    for size in figures["restore"]["sizes"].values():
        assert size["cold"]["messages"] == size["strands"]["messages"]
    manager = figures["strands_manager"]
    # A Strands agent restored through sessiond gets every message, in a few requests.
    assert manager["restore"]["sessiond"]["messages"] == manager["restore"]["strands"]["messages"]
    assert manager["restore"]["sessiond"]["requests"]["max"] <= 12
    assert figures["throughput"]["raw_put"]["rate"] > 0
    assert figures["export"]["export"]["sessions"] > 0
    assert figures["listing"]["pending_reviews"]["found"] > 0

    for workload, metric in COUNT_ROWS:
        matching = [
            row
            for row in rows
            if row["workload"].startswith(workload) and row["metric"].startswith(metric)
        ]
        assert matching, (workload, metric)
        for row in matching:
            assert row["passed"] is True, row
    # Cold restores read a handful of objects, never one per message.
    for row in rows:
        if row["workload"].startswith("Cold restore") and row["metric"].startswith("S3"):
            assert row["sessiond"] <= 12 < row["strands"], row
    assert "| workload |" in table_path.read_text()
    assert "workload" in done.stdout  # the table was printed
