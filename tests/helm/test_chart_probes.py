"""The chart's probes do what the chart promises, on a real server run with the chart's settings.

The environment and arguments the chart renders start the real ``sessiond
serve`` against a moto server of the test's own; the probes are then asked
exactly as the kubelet would ask them (their gRPC port and service, from the
rendered Deployment). Stopping moto is the storage outage: readiness must
turn NOT_SERVING while liveness and startup stay SERVING (a storage blip must
not restart pods), and readiness must come back with the store. SIGTERM must
take the pod out of rotation and end within terminationGracePeriodSeconds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from support.helm import CHART, render, server_container, server_deployment, server_environment

SESSIOND = Path(sys.executable).with_name("sessiond")
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class Moto:
    """A moto server on a fixed port that can be stopped and started again."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / "moto.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, bucket: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**env, **TEST_CREDENTIALS},
            )
        # The chart's development-mode script makes the bucket (and waits for moto).
        script = CHART / "files" / "ensure_bucket.py"
        subprocess.run(
            [sys.executable, str(script)],
            env={"MOTO_URL": self.url, "BUCKET": bucket, "TIMEOUT_SECONDS": "30"},
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(10)

    def up(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1):
                return True
        except OSError:
            return False


def probe_status(probe: dict[str, Any]) -> int | None:
    """What a kubelet gRPC probe sees: the status, or None when the call fails."""
    target = f"127.0.0.1:{probe['grpc']['port']}"
    try:
        with grpc.insecure_channel(target) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=probe["grpc"].get("service", "")),
                timeout=probe["timeoutSeconds"],
            )
            return response.status
    except grpc.RpcError:
        return None


@pytest.mark.slow
def test_probes_follow_the_store_and_the_shutdown(tmp_path: Path) -> None:
    moto = Moto(tmp_path)
    bucket = "probe-bucket"
    moto.start(bucket)
    values = {
        "store": {
            "bucket": bucket,
            "endpoint": moto.url,
            "region": "us-east-1",
            "healthCheckIntervalSeconds": 0.5,
        },
        "server": {
            "grpcPort": free_port(),
            "listenHost": "127.0.0.1",
            "shutdownDrainSeconds": 1,
            "shutdownGraceSeconds": 1,
        },
        "metrics": {"port": free_port()},
        "pageTokens": {"existingSecret": "page-tokens"},
    }
    docs = render(values=values)
    container = server_container(docs)
    grace = server_deployment(docs)["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    startup, liveness, readiness = (
        container[name] for name in ("startupProbe", "livenessProbe", "readinessProbe")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIOND_", "AWS_"))}
    for name, value in server_environment(docs).items():
        if isinstance(value, dict):  # what Kubernetes would resolve
            value = "pod-0" if "fieldRef" in value else "secret-value"
        env[name] = value
    env.update(TEST_CREDENTIALS)  # what IRSA / a credentials Secret would provide
    log = tmp_path / "sessiond.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(SESSIOND), *container["args"]], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: probe_status(startup) == SERVING or server.poll() is not None, "start")
        assert server.poll() is None, log.read_text()
        assert probe_status(liveness) == SERVING
        wait_for(lambda: probe_status(readiness) == SERVING, "ready")

        # A storage outage: not ready, still alive.
        moto.stop()
        wait_for(lambda: probe_status(readiness) == NOT_SERVING, "readiness to follow the store")
        for _ in range(5):
            assert probe_status(liveness) == SERVING
            assert probe_status(startup) == SERVING
            time.sleep(0.2)

        # The store is back (an empty moto: the bucket is made again): ready again.
        moto.start(bucket)
        wait_for(lambda: probe_status(readiness) == SERVING, "readiness to come back")
        assert server.poll() is None

        # SIGTERM: out of rotation during the drain, gone within the grace period.
        stopped_at = time.monotonic()
        server.send_signal(signal.SIGTERM)
        wait_for(lambda: probe_status(readiness) != SERVING, "drain", timeout=5)
        server.wait(grace)
        assert server.returncode == 0, log.read_text()
        assert time.monotonic() - stopped_at < grace
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        if moto.proc is not None and moto.proc.poll() is None:
            moto.stop()
