"""The Node.js / TypeScript client (client/node) against a real ``sessiond serve``.

The Node suite itself is ``client/node/test/client.test.ts`` (``node --test``):
sessions, chat, typed errors, a full Run turn driven by Node as the runtime
(context, appends, hibernate with a review, resolve, resume, finish), pending
reviews across sessions, export to a file and import, SessionBusy from a
concurrent run, health per service name. This module builds the package,
starts the server, runs the suite and the example, and checks that the
generated code and the error classes match the contract and the Python client.
"""

from __future__ import annotations

import json
import re
import statistics
import time
import uuid
from pathlib import Path

import pytest
from polyglot.helpers import ROOT, ServerProcess, run, start_server, stop_server

from sessiond.client.aio import AsyncClient
from sessiond.errors import ERRORS_BY_REASON, SessiondError


def test_node_suite_passes_against_a_real_server(
    node_client: Path, sessiond_server: ServerProcess
) -> None:
    done = run(
        [
            "node",
            "--test",
            "--test-force-exit",
            "--test-reporter=spec",
            "dist/test/client.test.js",
            "dist/test/errors.test.js",
        ],
        node_client,
        env={"SESSIOND_TARGET": sessiond_server.target},
        timeout=180,
    )
    print(done.stdout)
    # The spec reporter ends with "<info sign> tests N", "... pass N", "... fail N".
    summary = dict(re.findall(r"^\S (tests|pass|fail) (\d+)$", done.stdout, re.MULTILINE))
    assert int(summary["fail"]) == 0 and int(summary["pass"]) == int(summary["tests"]) >= 10


def test_example_runs(node_client: Path, sessiond_server: ServerProcess) -> None:
    done = run(["node", "dist/examples/chat.js", sessiond_server.target], node_client)
    print(done.stdout)
    assert "chat: echo: hello" in done.stdout
    assert re.search(r"run: turn t\d+ FINISHED", done.stdout)
    assert "busy until " in done.stdout
    assert "4 assistant: Booked: LIS, Friday 9:40." in done.stdout


def test_generated_typescript_matches_the_protos(node_client: Path, buf: Path) -> None:
    run([str(ROOT / "scripts" / "gen_node.sh"), "--check"], ROOT)


def test_node_error_classes_mirror_the_python_ones(node_client: Path) -> None:
    script = (
        'import { ERROR_CLASSES } from "./dist/src/errors.js";'
        "console.log(JSON.stringify(ERROR_CLASSES.map((c) => [c.name, c.code, c.reason])));"
    )
    done = run(["node", "--input-type=module", "-e", script], node_client)
    node = {name: (code, reason) for name, code, reason in json.loads(done.stdout)}

    def subclasses(cls: type[SessiondError]) -> list[type[SessiondError]]:
        return [cls, *(s for sub in cls.__subclasses__() for s in subclasses(sub))]

    python = {cls.__name__: (cls.code, cls.reason) for cls in subclasses(SessiondError)}
    assert node == python
    assert set(ERRORS_BY_REASON) <= set(node.values())


async def _python_chat_rtt(target: str, count: int, warmup: int) -> list[float]:
    async with AsyncClient(target) as client:
        session_id = f"rtt-python-{uuid.uuid4().hex[:8]}"
        await client.start(session_id)
        for number in range(warmup):
            await client.chat(session_id, f"warm {number}")
        times = []
        for number in range(count):
            started = time.perf_counter()
            await client.chat(session_id, f"hello {number}")
            times.append((time.perf_counter() - started) * 1000)
        return times


async def test_chat_round_trip_node_vs_python(
    node_client: Path, tmp_path: Path, record_property: pytest.RecordProperty
) -> None:
    """Median Chat round trip over 100 calls, Node and Python, on one memory-store server."""
    process, server = start_server(tmp_path, store="memory://")
    try:
        done = run(["node", "dist/bench/chat_rtt.js", server.target, "100", "10"], node_client)
        node = json.loads(done.stdout)
        python = await _python_chat_rtt(server.target, 100, 10)
    finally:
        stop_server(process)
    python_median = statistics.median(python)
    figures = (
        f"Chat round trip, median of 100 calls (memory store, echo engine): "
        f"Node {node['median_ms']:.2f} ms (p90 {node['p90_ms']:.2f}), "
        f"Python {python_median:.2f} ms (p90 {statistics.quantiles(python, n=10)[-1]:.2f})"
    )
    print(figures)
    record_property("chat_rtt_node_median_ms", round(node["median_ms"], 3))
    record_property("chat_rtt_python_median_ms", round(python_median, 3))
    assert node["n"] == 100 and len(python) == 100
    assert 0 < node["median_ms"] < 1000 and 0 < python_median < 1000
