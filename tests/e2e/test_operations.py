"""Operations: health, reflection, settings, metrics, logs and graceful shutdown.

The process tests run the real ``sessiond serve`` console script.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from prometheus_client.metrics import MetricWrapperBase

from sessiond.client.aio import AsyncClient, text_message
from sessiond.errors import SessionBusy, SessionNotFound
from sessiond.server.app import build_server
from sessiond.server.ops.metrics import Metrics
from sessiond.server.ops.settings import Settings
from sessiond.server.storage.faults import FaultInjectingStore, FaultRates
from sessiond.server.storage.local import LocalDirectoryStore
from sessiond.v1 import session_pb2

SERVICE = "sessiond.v1.SessionService"
SESSIOND = Path(sys.executable).with_name("sessiond")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def health_status(target: str, service: str) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
        return response.status


async def test_health_answers_per_service_name(served) -> None:
    for service in ("", SERVICE):
        assert await health_status(served.target, service) == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health_status(served.target, "no.such.Service")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_reflection_lists_and_describes_the_service(served) -> None:
    # The reflection client library is synchronous: run it off the event
    # loop that serves the calls.
    await asyncio.to_thread(_check_reflection, served.target)


def _check_reflection(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = database.get_services()
        assert SERVICE in services and "grpc.health.v1.Health" in services
        from google.protobuf.descriptor_pool import DescriptorPool

        pool = DescriptorPool(database)
        service = pool.FindServiceByName(SERVICE)
        methods = {method.name for method in service.methods}
        assert {
            "Start",
            "Run",
            "Chat",
            "Resume",
            "ListPendingReviews",
            "Archive",
            "Export",
        } <= methods
        assert {"Get", "List", "ListMessages", "ResolveReview", "Unarchive", "Import"} <= methods
        assert {"Delete", "Replay"} <= methods


async def test_metrics_count_rpcs_store_requests_conflicts_and_leases(tmp_path: Path) -> None:
    """Every family the issue names moves with the work that feeds it."""
    metrics = Metrics()
    local = LocalDirectoryStore(tmp_path / "data", observer=metrics.store_request)
    # 50 ms per request: two concurrent Archives both read the head before
    # either writes it, so exactly one loses its compare-and-swap.
    store = FaultInjectingStore(local, seed=5, rates=FaultRates(latency=(0.05, 0.05)))
    settings = Settings(listen="127.0.0.1:0", metrics_listen="", log_format="text")
    server = build_server(settings, store=store, metrics=metrics)
    await server.start()
    client = AsyncClient(f"127.0.0.1:{server.port}")
    try:
        await client.start("m")
        await client.chat("m", "hi")
        assert (
            sample(metrics, "sessiond_rpc_requests_total", method="Chat", code="OK", reason="") == 1
        )
        assert sample(metrics, "sessiond_rpc_duration_seconds_count", method="Start") == 1
        assert sample(metrics, "sessiond_store_requests_total", operation="put", outcome="ok") > 0
        assert sample(metrics, "sessiond_store_requests_total", operation="get", outcome="ok") > 0
        with pytest.raises(SessionNotFound):
            await client.get("absent")
        assert sample(
            metrics, "sessiond_store_requests_total", operation="get", outcome="not_found"
        )
        # Leases held: 1 while a Run holds the session, 0 once it ended.
        async with client.run("m", text_message("user", "hold it")) as turn:
            assert sample(metrics, "sessiond_leases_held") == 1
            await turn.finish()
        assert sample(metrics, "sessiond_leases_held") == 0
        # Claim conflicts: compare-and-swaps of the head lost to another writer.
        before = sample(metrics, "sessiond_claim_conflicts_total")
        await client.start("c")
        outcomes = await asyncio.gather(
            client.archive("c"), client.archive("c"), return_exceptions=True
        )
        assert any(not isinstance(o, BaseException) for o in outcomes), outcomes
        assert sample(metrics, "sessiond_claim_conflicts_total") >= before + 1
        # A caller refused because the session is busy: counted by its reason.
        async with client.run("m", text_message("user", "hold it again")) as turn:
            with pytest.raises(SessionBusy):
                await client.chat("m", "me too")
            await turn.finish()
        busy = sample(
            metrics,
            "sessiond_rpc_requests_total",
            method="Chat",
            code="ABORTED",
            reason="SESSION_BUSY",
        )
        assert busy == 1
    finally:
        await client.close()
        await server.stop(0)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    """The value of one sample of the server's metrics (0 when absent)."""
    value = metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def start_process(tmp_path: Path, **env: str) -> tuple[subprocess.Popen, str, int, Path]:
    port, metrics_port = free_port(), free_port()
    log = tmp_path / f"server-{port}.log"
    environment = {
        **os.environ,
        "SESSIOND_LISTEN": f"127.0.0.1:{port}",
        "SESSIOND_STORE": str(tmp_path / "data"),
        "SESSIOND_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        "SESSIOND_PAGE_TOKEN_SECRET": "s3cr3t-value",
        "SESSIOND_SHUTDOWN_DRAIN_SECONDS": "0.5",
        **env,
    }
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(SESSIOND), "serve", "--shutdown-grace-seconds", "2"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
        )
    target = f"127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return asyncio.run(health_status(target, SERVICE)) == 1
        except Exception:
            return False

    wait_for(healthy)
    return proc, target, metrics_port, log


def test_serve_process_settings_logs_metrics_and_sigterm(tmp_path: Path) -> None:
    proc, target, metrics_port, log = start_process(tmp_path)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            assert b"sessiond_rpc_requests_total" in r.read()

        async def hold_a_turn_then_signal() -> tuple[float, list[int]]:
            client = AsyncClient(target)
            await client.start("held")
            turn = client.run("held", "working on it")
            await turn.__aenter__()
            statuses: list[int] = []
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            # Health goes NOT_SERVING before the server stops taking calls.
            for _ in range(100):
                try:
                    statuses.append(await health_status(target, SERVICE))
                except grpc.aio.AioRpcError:
                    break
                if statuses[-1] == health_pb2.HealthCheckResponse.NOT_SERVING:
                    break
                await asyncio.sleep(0.02)
            await asyncio.get_running_loop().run_in_executor(None, proc.wait, 10)
            elapsed = time.monotonic() - started
            await client.close()
            return elapsed, statuses

        elapsed, statuses = asyncio.run(hold_a_turn_then_signal())
        assert statuses and statuses[-1] == health_pb2.HealthCheckResponse.NOT_SERVING
        assert proc.returncode == 0
        assert elapsed < 0.5 + 2 + 3  # drain, grace, lease release
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    starting = [line for line in lines if line["message"] == "starting sessiond"]
    assert len(starting) == 1
    assert starting[0]["settings"]["page_token_secret"] == "***"
    assert "s3cr3t-value" not in log.read_text()
    assert any(line["message"] == "stopped" for line in lines)

    # A restarted process serves again, and the held turn's lease was released.
    proc, target, _, _ = start_process(tmp_path)
    try:

        async def check() -> session_pb2.Session:
            async with AsyncClient(target) as client:
                return await client.get("held")

        session = asyncio.run(check())
        assert session.status == session_pb2.SESSION_STATUS_ERROR
        assert not session.HasField("lease")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def test_invalid_settings_exit_with_a_clear_message(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(SESSIOND), "serve", "--lease-ttl-seconds", "-3"],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "SESSIOND_LISTEN": "nonsense"},
    )
    assert result.returncode == 2
    assert "invalid settings" in result.stderr
    assert "Traceback" not in result.stderr


def test_every_metric_family_is_documented() -> None:
    """docs/kubernetes.md's metrics table names every family, with its labels."""
    docs = (Path(__file__).parents[2] / "docs" / "kubernetes.md").read_text()
    table = docs.split("### Metrics", 1)[1].split("\n### ", 1)[0]
    metrics = Metrics()
    collectors = [c for c in vars(metrics).values() if isinstance(c, MetricWrapperBase)]
    assert len(collectors) == len(list(metrics.registry.collect()))
    for collector in collectors:
        (family,) = collector.describe()
        name = family.name + ("_total" if family.type == "counter" else "")
        row = next((line for line in table.splitlines() if f"`{name}`" in line), None)
        assert row is not None, f"{name} is not in the metrics table of docs/kubernetes.md"
        for label in collector._labelnames:
            assert f"`{label}`" in row, f"label {label} of {name} is not documented"
