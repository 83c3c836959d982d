"""Helpers of the polyglot tier: running commands, starting ``sessiond serve``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[2]
NODE_CLIENT = ROOT / "client" / "node"
TOOLS = ROOT / "tools"
SESSIOND = Path(sys.executable).with_name("sessiond")
SERVICE = "sessiond.v1.SessionService"


def run(
    command: list[str], cwd: Path, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Runs a command; fails the test with its output when it exits non-zero."""
    started = time.monotonic()
    done = subprocess.run(
        command,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    seconds = time.monotonic() - started
    print(f"$ {' '.join(command)}  ({seconds:.1f} s, exit {done.returncode})")
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(command)} exited {done.returncode}\n"
            f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}",
            pytrace=False,
        )
    return done


def npm_install(package: Path) -> None:
    """``npm install`` unless node_modules is newer than the manifest and lockfile."""
    stamp = package / "node_modules" / ".sessiond-installed"
    inputs = [package / "package.json", package / "package-lock.json"]
    newest = max(path.stat().st_mtime for path in inputs if path.exists())
    if stamp.exists() and stamp.stat().st_mtime >= newest:
        return
    # `npm install` rather than `npm ci`: the registry mirror lacks some
    # other-platform optional packages that `npm ci` insists on (see Makefile).
    run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], package)
    stamp.touch()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serving(target: str, service: str = SERVICE) -> bool:
    """Whether the health service answers SERVING for ``service``."""
    try:
        with grpc.insecure_channel(target) as channel:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1
            )
    except grpc.RpcError:
        return False
    return response.status == health_pb2.HealthCheckResponse.SERVING


@dataclass
class ServerProcess:
    """A running ``sessiond serve``."""

    target: str
    store: Path
    log: Path


def start_server(
    directory: Path, store: str | None = None
) -> tuple[subprocess.Popen, ServerProcess]:
    """Starts ``sessiond serve`` and waits until its health service answers SERVING."""
    port = free_port()
    data = directory / "store"
    data.mkdir(parents=True, exist_ok=True)
    log = directory / f"sessiond-{port}.log"
    command = [
        str(SESSIOND),
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--store",
        store or str(data),
        "--metrics-listen",
        "",
        "--log-format",
        "text",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    target = f"127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not serving(target):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"sessiond did not start:\n{log.read_text()}", pytrace=False)
        time.sleep(0.05)
    return process, ServerProcess(target, data, log)


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
