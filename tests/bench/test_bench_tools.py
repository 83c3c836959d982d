"""The benchmark's helpers: metrics parsing, quantiles, the latency proxy's framing."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import proxy  # noqa: E402
from bench.procs import by_op, parse_store_requests  # noqa: E402
from bench.report import Report, Row, count_summary, ops_text, quantile  # noqa: E402

METRICS = """\
# HELP sessiond_store_requests_total Object-store requests, by operation and outcome.
# TYPE sessiond_store_requests_total counter
sessiond_store_requests_total{operation="put",outcome="ok"} 3.0
sessiond_store_requests_total{operation="put",outcome="precondition_failed"} 1.0
sessiond_store_requests_total{operation="get",outcome="not_modified"} 2.0
sessiond_store_requests_created{operation="put",outcome="ok"} 1.7e+09
"""


def test_store_requests_are_parsed_by_op_and_outcome() -> None:
    counts = parse_store_requests(METRICS)
    assert by_op(counts) == {"get": 2, "put": 4}
    assert counts["put:precondition_failed"] == 1
    assert counts["get:not_modified"] == 2


def test_quantiles_and_count_summaries() -> None:
    assert quantile([1, 2, 3, 4], 0.5) == 2.5
    assert quantile([5], 0.99) == 5
    summary = count_summary([{"put": 3}, {"put": 3}, {"put": 3, "get": 2}])
    assert summary["median"] == 3 and summary["max"] == 5
    assert summary["median_by_op"] == {"get": 0, "put": 3}
    assert ops_text({"put": 3, "get": 1}) == "1 GET + 3 PUT"


def test_rows_compute_ratios_and_render() -> None:
    report = Report()
    report.add(Row("Chat", "requests", 3, 2, target="≤ 5", passed=True))
    assert report.rows[0].ratio == 1.5
    assert "PASS" in report.table()
    assert "| Chat | requests | 3 | 2 | 1.500 | ≤ 5 | PASS |" in report.markdown()


async def _echo_server(seen: list[bytes]) -> asyncio.Server:
    """An HTTP/1.1 upstream answering each request with 204, recording what arrived."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length, chunked = proxy._body_framing(head)
            if chunked:
                body = b""
                while True:
                    size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                    chunk = await reader.readexactly(size + 2)
                    if size == 0:
                        break
                    body += chunk[:-2]
            else:
                body = await reader.readexactly(length)
            seen.append(head.split(b"\r\n", 1)[0] + b" " + body)
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest.mark.parametrize("chunked", [False, True])
async def test_proxy_delays_each_request_on_a_keep_alive_connection(chunked: bool) -> None:
    seen: list[bytes] = []
    upstream = await _echo_server(seen)
    up_port = upstream.sockets[0].getsockname()[1]
    port = _free_port()
    task = asyncio.get_running_loop().create_task(proxy.serve(port, f"127.0.0.1:{up_port}", 0.05))
    try:
        for _ in range(50):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.02)
        started = time.perf_counter()
        for number in range(3):
            body = f"body-{number}".encode()
            if chunked:
                request = (
                    b"PUT /k HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + f"{len(body):x}\r\n".encode()
                    + body
                    + b"\r\n0\r\n\r\n"
                )
            else:
                request = (
                    b"PUT /k HTTP/1.1\r\nHost: x\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
            writer.write(request)
            await writer.drain()
            await reader.readuntil(b"\r\n\r\n")
        elapsed = time.perf_counter() - started
        writer.close()
    finally:
        task.cancel()
        upstream.close()
    assert seen == [f"PUT /k HTTP/1.1 body-{n}".encode() for n in range(3)]
    assert elapsed >= 3 * 0.05  # one delay per request (a lower bound only)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
