"""Real ``sessiond serve`` processes on a moto bucket, for crash and replica tests.

::

    proc = SessiondProcess.start(tmp_path, endpoint, bucket, prefix="p")
    ...                       # proc.target is host:port; health is SERVING
    proc.kill()               # SIGKILL: no cleanup at all
    proc.restart()            # same port, same store
    proc.terminate()          # SIGTERM and wait

Every process gets the test settings of the brief: a 2 s lease, a 2 s
shutdown grace, a 0.3 s drain, JSON logs to a file, no metrics listener, and
moto's dummy credentials in its environment (nothing else of ``AWS_*``).
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sessiond.client.aio import AsyncClient

SERVICE = "sessiond.v1.SessionService"
SESSIOND = Path(sys.executable).with_name("sessiond")

#: The settings of every test process (flags of ``sessiond serve``).
TEST_FLAGS: dict[str, str] = {
    "--s3-region": "us-east-1",
    "--metrics-listen": "",
    "--lease-ttl-seconds": "2",
    "--shutdown-grace-seconds": "2",
    "--shutdown-drain-seconds": "0.3",
    "--log-format": "json",
}


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def process_env() -> dict[str, str]:
    """The environment of a test process: ours without ``AWS_*``, plus moto's credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


async def health_status(target: str, service: str = SERVICE, deadline: float = 2.0) -> int:
    """The health status of ``service`` at ``target`` (raises ``AioRpcError`` if unreachable)."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service=service)
        response = await stub.Check(request, timeout=deadline)
        return int(response.status)


def fresh_client(target: str, *, deadline: float = 15.0) -> AsyncClient:
    """A client on its own channel and subchannel pool, without transparent retries.

    gRPC shares subchannels between channels to one target by default, so a
    new channel to a restarted process could inherit the connection failure
    (and its reconnect backoff) that an older channel saw when the process
    died. A local subchannel pool connects afresh.
    """
    channel = grpc.aio.insecure_channel(
        target,
        options=[("grpc.use_local_subchannel_pool", 1), ("grpc.enable_retries", 0)],
    )
    return AsyncClient(target, channel=channel, timeout=deadline)


def is_serving(target: str) -> bool:
    """True when ``target`` answers SERVING for the SessionService (synchronous)."""
    try:
        with grpc.insecure_channel(target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            request = health_pb2.HealthCheckRequest(service=SERVICE)
            response = stub.Check(request, timeout=1)
            return response.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


@dataclass
class SessiondProcess:
    """One ``sessiond serve`` process (restartable on the same port and store).

    Attributes:
        args: The command line.
        port: The gRPC port.
        log_path: Where its output goes (appended on restarts).
        proc: The running process.
    """

    args: list[str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    started_at: list[float] = field(default_factory=list)

    @classmethod
    def launch(
        cls,
        tmp_path: Path,
        endpoint: str,
        bucket: str,
        *,
        prefix: str = "sessiond",
        name: str = "",
        extra: dict[str, str] | None = None,
        wait: bool = True,
    ) -> SessiondProcess:
        """Starts a process on ``s3://bucket/prefix`` at ``endpoint`` (waits for SERVING)."""
        port = free_port()
        flags = {
            "--listen": f"127.0.0.1:{port}",
            "--store": f"s3://{bucket}/{prefix}",
            "--s3-endpoint": endpoint,
            "--replica-id": name or f"replica-{port}",
            **TEST_FLAGS,
            **(extra or {}),
        }
        args = [str(SESSIOND), "serve"]
        for flag, value in flags.items():
            args += [flag, value]
        process = cls(args=args, port=port, log_path=tmp_path / f"sessiond-{name or port}.log")
        process.spawn(wait=wait)
        return process

    @property
    def target(self) -> str:
        """``127.0.0.1:<port>``."""
        return f"127.0.0.1:{self.port}"

    def spawn(self, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Starts the process (again) and, unless told not to, waits until it serves."""
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, env=process_env()
            )
        self.started_at.append(time.monotonic())
        if wait:
            self.wait_serving(timeout)

    def wait_serving(self, timeout: float = 30.0) -> None:
        """Waits for health SERVING; raises with the log's tail if it does not come."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                break
            if is_serving(self.target):
                return
            time.sleep(0.05)
        raise RuntimeError(f"sessiond did not start on {self.target}:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the process's output."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far."""
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process dies at once, holding whatever it held."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def signal_term(self) -> None:
        """Sends SIGTERM (does not wait)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def terminate(self, timeout: float = 15.0) -> int:
        """SIGTERM and waits; kills it if it does not exit in ``timeout``. Returns the code."""
        if not self.alive:
            return self.proc.returncode if self.proc is not None else 0
        self.signal_term()
        try:
            return self.proc.wait(timeout)  # type: ignore[union-attr]
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def restart(self) -> None:
        """Starts a stopped process again on the same port and store."""
        assert not self.alive
        self.spawn()


async def wait_exit(process: SessiondProcess, seconds: float) -> int:
    """Awaits the process's exit without blocking the event loop; returns its code."""
    assert process.proc is not None
    return await asyncio.get_running_loop().run_in_executor(None, process.proc.wait, seconds)


def stop_all(processes: list[SessiondProcess]) -> None:
    """Terminates every process still running (test teardown)."""
    for process in processes:
        if process.alive:
            process.signal_term()
    for process in processes:
        if process.proc is not None:
            try:
                process.proc.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
