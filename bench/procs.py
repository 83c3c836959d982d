"""The benchmark's processes: moto, the latency proxy, sessiond servers and workers.

Everything measured runs in its own process, as in production: the S3 store
(``python -m moto.server``), each sessiond server (``sessiond serve``), and
the clients (``python -m bench.worker``: sessiond clients, Strands agents, a
raw S3 load generator). The orchestrator (``python -m bench``) only starts
them, hands out tasks and collects figures.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import botocore.session

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
ROOT = Path(__file__).resolve().parent.parent
_SAMPLE = re.compile(
    r'^sessiond_store_requests_total\{operation="(?P<op>[^"]+)",outcome="(?P<outcome>[^"]+)"\}'
    r" (?P<value>\S+)$"
)


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: no AWS settings but moto's dummy credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SESSIOND_"))}
    env.update(CREDENTIALS, AWS_DEFAULT_REGION=REGION, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), str(ROOT / "tests"), env.get("PYTHONPATH", "")) if p
    )
    env.update(extra)
    return env


def wait_http(url: str, proc: subprocess.Popen[Any], what: str, timeout: float = 60.0) -> None:
    """Polls ``url`` until it answers (any HTTP status), or fails if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up on {url} within {timeout:.0f}s")


def stop(proc: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM (bytes) of a process, from /proc."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) * 1024
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_load() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    return os.getloadavg()


class Moto:
    """``python -m moto.server`` in a subprocess."""

    def __init__(self, logdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(logdir / "moto.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=clean_env(),
        )
        wait_http(f"{self.url}/moto-api/", self.proc, "moto")
        self._s3 = botocore.session.get_session().create_client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create_bucket(self, name: str) -> str:
        """Creates a bucket; returns its name."""
        self._s3.create_bucket(Bucket=name)
        return name

    def object_size(self, bucket: str, key: str) -> int:
        """The size of an object in bytes."""
        return int(self._s3.head_object(Bucket=bucket, Key=key)["ContentLength"])

    def close(self) -> None:
        """Stops moto."""
        stop(self.proc)
        self._log.close()


class Proxy:
    """The latency proxy (``python -m bench.proxy``) in front of an HTTP endpoint."""

    def __init__(self, upstream: str, delay_ms: float, logdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        host, _, port = upstream.removeprefix("http://").rpartition(":")
        self._log = open(logdir / "proxy.log", "wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.proxy",
                "--port",
                str(self.port),
                "--upstream",
                f"{host}:{port}",
                "--delay-ms",
                str(delay_ms),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=clean_env(),
            cwd=ROOT,
        )
        wait_http(f"{self.url}/moto-api/", self.proc, "latency proxy")

    def close(self) -> None:
        """Stops the proxy."""
        stop(self.proc)
        self._log.close()


def sessiond_command() -> list[str]:
    """How to run ``sessiond``: the console script next to this interpreter."""
    script = Path(sys.executable).with_name("sessiond")
    if script.exists():
        return [str(script)]
    found = shutil.which("sessiond")
    if found:
        return [found]
    return [sys.executable, "-c", "from sessiond.client.cli import main; main()"]


class Sessiond:
    """One ``sessiond serve`` process with its Prometheus endpoint."""

    def __init__(
        self,
        name: str,
        store: str,
        logdir: Path,
        *,
        endpoint: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.port = free_port()
        self.metrics_port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        args = [
            *sessiond_command(),
            "serve",
            "--listen",
            self.target,
            "--store",
            store,
            "--metrics-listen",
            f"127.0.0.1:{self.metrics_port}",
            "--log-level",
            "WARNING",
            "--log-format",
            "text",
            "--replica-id",
            f"bench-{name}",
            # The periodic readiness probe (a LIST) is no part of any workload.
            "--health-check-interval-seconds",
            "3600",
        ]
        if endpoint:
            args += ["--s3-endpoint", endpoint, "--s3-region", REGION]
        for flag, value in (extra or {}).items():
            args += [flag, value]
        self._log = open(logdir / f"sessiond-{name}.log", "wb")
        # The export spool goes to a directory of its own (removed at close).
        self._tmp = tempfile.mkdtemp(prefix=f"bench-{name}-", dir=logdir)
        self.proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=clean_env(TMPDIR=self._tmp),
            cwd=ROOT,
        )
        self.started = time.perf_counter()
        wait_http(self.metrics_url, self.proc, f"sessiond {name}")
        self.startup_seconds = time.perf_counter() - self.started

    def scrape(self) -> Counter[str]:
        """Store requests so far, by ``op`` and by ``op:outcome``."""
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            text = response.read().decode()
        return parse_store_requests(text)

    def memory(self) -> dict[str, int]:
        """VmRSS and VmHWM (peak) of the server process, in bytes."""
        return proc_status(self.proc.pid)

    def cpu(self) -> float:
        """CPU seconds used by the server so far."""
        return cpu_seconds(self.proc.pid)

    def close(self) -> None:
        """Stops the server (SIGTERM: graceful) and removes its spool directory."""
        stop(self.proc)
        self._log.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


def parse_store_requests(text: str) -> Counter[str]:
    """``sessiond_store_requests_total`` samples as counts by ``op`` and ``op:outcome``."""
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match:
            value = int(float(match["value"]))
            counts[match["op"]] += value
            counts[f"{match['op']}:{match['outcome']}"] += value
    return counts


def by_op(delta: Counter[str]) -> dict[str, int]:
    """The per-operation part of a scrape delta (no ``op:outcome`` keys), zeros dropped."""
    return {k: v for k, v in sorted(delta.items()) if ":" not in k and v}


class WorkerError(RuntimeError):
    """A task failed in a worker process (carries the worker's traceback)."""


class Worker:
    """A long-lived ``python -m bench.worker <kind>`` speaking JSON lines.

    ``call(task, **params)`` sends ``{"task": ..., "params": ...}`` and waits
    for one JSON line back: ``{"ok": result}`` or ``{"error": traceback}``.
    """

    def __init__(self, kind: str, logdir: Path, name: str = "") -> None:
        self.kind = kind
        self.name = name or kind
        self._log = open(logdir / f"worker-{self.name}.log", "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.worker", kind],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=clean_env(),
            cwd=ROOT,
        )

    def call(self, task: str, **params: Any) -> Any:
        """Runs one task in the worker; returns its result."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps({"task": task, "params": params}) + "\n").encode())
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise WorkerError(f"worker {self.name} died during {task} (see worker-{self.name}.log)")
        answer = json.loads(line)
        if "error" in answer:
            raise WorkerError(f"{self.name}.{task} failed:\n{answer['error']}")
        return answer["ok"]

    def cpu(self) -> float:
        """CPU seconds the worker has used."""
        return cpu_seconds(self.proc.pid)

    def close(self) -> None:
        """Ends the worker (closing stdin ends its loop)."""
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
