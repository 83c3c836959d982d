"""The container image recipe (Dockerfile) without a container engine.

CI has no Docker engine, so the slow test replays the Dockerfile itself: it
parses the file, runs the builder stage's RUN commands with the image's
paths moved under a temporary "root" (a fresh wheel build, a fresh venv, the
dependencies from the registry), copies what the final stage copies, starts
ENTRYPOINT + CMD with the final stage's ENV, and runs the HEALTHCHECK
command. A change to those steps changes what this test runs, so the recipe
cannot silently rot. What it cannot check (the base image, USER, the file
system of a real container) the static tests check on the text.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sessiond.server.app import SERVICE_NAME

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [rest for key, rest in self.instructions if key == keyword]

    def one(self, keyword: str) -> str:
        (rest,) = self.all(keyword)
        return rest


def instructions(text: str) -> list[tuple[str, str]]:
    """``(KEYWORD, rest)`` per instruction: continuations joined, comments dropped."""
    found, pending = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or (not line.strip() and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical = (pending + line).strip()
        pending = ""
        keyword, _, rest = logical.partition(" ")
        found.append((keyword.upper(), rest.strip()))
    return found


def parse() -> tuple[dict[str, str], list[Stage]]:
    """The global ARGs and the stages of the Dockerfile."""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for keyword, rest in instructions(DOCKERFILE.read_text()):
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), ""), value)


def env_of(stage: Stage, base: dict[str, str]) -> dict[str, str]:
    """A stage's ENV, in order, each value expanded with what came before."""
    env: dict[str, str] = {}
    for rest in stage.all("ENV"):
        for word in shlex.split(rest):
            key, _, value = word.partition("=")
            env[key] = expand(value, {**base, **env})
    return env


def ignored(relative: str, patterns: list[str]) -> bool:
    for pattern in patterns:
        bare = pattern.removeprefix("**/")
        if fnmatch.fnmatch(relative, pattern) or any(
            fnmatch.fnmatch(part, bare) for part in relative.split("/")
        ):
            return True
    return False


def dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def copy_sources(rest: str) -> tuple[list[str], str, dict[str, str]]:
    words = rest.split()
    options = dict(w[2:].split("=", 1) for w in words if w.startswith("--"))
    paths = [w for w in words if not w.startswith("--")]
    return paths[:-1], paths[-1], options


# ---- static checks ----------------------------------------------------------


def test_multi_stage_slim_base() -> None:
    args, stages = parse()
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert len(stages) == 2 and stages[0].name == "builder"
    # Both stages on the same Python: the venv links to that interpreter.
    assert stages[0].base == stages[1].base == "${PYTHON_IMAGE}"


def test_final_stage_is_non_root_without_build_tools() -> None:
    _, (builder, final) = parse()
    user = final.one("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) >= 10000 and gid.isdigit(), user
    # USER comes after every RUN: nothing later runs as root.
    keywords = [key for key, _ in final.instructions]
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    for command in final.all("RUN"):
        for tool in ("apt-get", "apk", "pip ", "pip3", "gcc", "build-essential", "make "):
            assert tool not in command, f"final stage runs {tool}: {command}"
    # The final stage takes only the venv from the builder.
    from_builder = [copy_sources(rest) for rest in final.all("COPY") if "--from=builder" in rest]
    venv = env_of(builder, {})["VENV"]
    assert from_builder == [([venv], venv, {"from": "builder"})]
    assert json.loads(final.one("ENTRYPOINT")) == ["sessiond"]
    assert json.loads(final.one("CMD"))[0] == "serve"


def test_healthcheck_uses_the_grpc_health_service() -> None:
    _, (_, final) = parse()
    healthcheck = final.one("HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    for option in ("--interval=", "--timeout=", "--start-period=", "--retries="):
        assert option in options
    argv = json.loads(command)  # exec form: no shell in the way
    copied = {dest: sources for sources, dest, _ in map(copy_sources, final.all("COPY"))}
    assert argv[1] in copied and copied[argv[1]] == ["scripts/grpc_health_check.py"]
    script = (REPO / "scripts" / "grpc_health_check.py").read_text()
    assert "grpc_health" in script and "SESSIOND_LISTEN" in script


def test_build_context_has_what_copy_needs_and_nothing_else() -> None:
    patterns = dockerignore()
    for must in (".git", ".venv", ".cache", "tests", "**/__pycache__"):
        assert must in patterns, must
    _, stages = parse()
    for stage in stages:
        for rest in stage.all("COPY"):
            sources, _, options = copy_sources(rest)
            if "from" in options:
                continue
            for source in sources:
                assert (REPO / source).exists(), source
                assert not ignored(source.rstrip("/"), patterns), f"{source} is dockerignored"


def test_builder_runs_name_paths_through_env() -> None:
    _, (builder, _) = parse()
    for command in builder.all("RUN"):
        for word in shlex.split(command):
            for part in word.split("="):
                assert not part.startswith("/"), f"literal path {part} in: {command}"


# ---- the replay -------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def health(target: str, service: str) -> int:
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=2).status


@pytest.mark.slow
def test_recipe_builds_a_venv_that_serves_and_passes_its_healthcheck(tmp_path: Path) -> None:
    _, (builder, final) = parse()
    root = tmp_path / "root"  # stands for the image's "/"

    def host(path: str) -> Path:
        return root / path.lstrip("/")

    def mapped(value: str) -> str:
        """An image path (or a PATH-like list) moved under ``root`` where it exists there."""
        parts = value.split(":")
        return ":".join(
            str(host(p)) if p.startswith("/") and host(p).parent.exists() else p for p in parts
        )

    # A "python" command: the interpreter running the tests.
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (shims / "python").chmod(0o755)
    outside = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIOND_", "VIRTUAL"))}
    outside["PATH"] = f"{shims}:{os.environ['PATH']}"

    # Builder: ENV paths under root, COPY from the context, RUN as written.
    env = {key: str(host(v)) if v.startswith("/") else v for key, v in env_of(builder, {}).items()}
    for path in env.values():
        if path.startswith(str(root)):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    workdir = host(builder.one("WORKDIR"))
    workdir.mkdir(parents=True)
    patterns = dockerignore()
    for rest in builder.all("COPY"):
        sources, dest, _ = copy_sources(rest)
        for source in sources:
            target = workdir / dest if not dest.startswith("/") else host(dest)
            if (REPO / source).is_dir():
                shutil.copytree(
                    REPO / source,
                    target,
                    ignore=lambda d, names: [
                        n for n in names if ignored(str(Path(d, n).relative_to(REPO)), patterns)
                    ],
                )
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / source, target / Path(source).name)
    # pip's cache changes how fast, not what, it installs: let the replay use it.
    env.pop("PIP_NO_CACHE_DIR", None)
    for command in builder.all("RUN"):
        result = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=workdir,
            env={**outside, **env},
            capture_output=True,
            text=True,
            timeout=540,
        )
        assert result.returncode == 0, f"RUN {command}\n{result.stdout}\n{result.stderr}"

    # Final stage: what it copies from the context; the venv is already in place.
    for rest in final.all("COPY"):
        sources, dest, options = copy_sources(rest)
        if options.get("from") == "builder":
            assert sources == [dest]
            continue
        for source in sources:
            host(dest).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / source, host(dest))
    final_env = env_of(final, {"PATH": outside["PATH"]})
    image_env = {key: mapped(value) for key, value in final_env.items()}
    # The image listens on every interface; here: free loopback ports, a temp store.
    assert final_env["SESSIOND_LISTEN"] == "0.0.0.0:50051"
    assert final_env["SESSIOND_METRICS_LISTEN"] == "0.0.0.0:9464"
    port, metrics_port = free_port(), free_port()
    image_env |= {
        "SESSIOND_LISTEN": f"127.0.0.1:{port}",
        "SESSIOND_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        "SESSIOND_STORE": str(tmp_path / "store"),
        "SESSIOND_SHUTDOWN_GRACE_SECONDS": "1",
        "HOME": str(tmp_path),
    }
    run_env = {**outside, **image_env}
    argv = json.loads(final.one("ENTRYPOINT")) + json.loads(final.one("CMD"))
    program = shutil.which(argv[0], path=image_env["PATH"])
    assert program and Path(program).is_relative_to(root), f"{argv[0]} not from the image venv"
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [program, *argv[1:]], env=run_env, stdout=out, stderr=subprocess.STDOUT
        )
    target = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if health(target, SERVICE_NAME) == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        assert health(target, "") == health_pb2.HealthCheckResponse.SERVING

        _, _, command = final.one("HEALTHCHECK").partition(" CMD ")
        healthcheck = [mapped(word) for word in json.loads(command)]
        assert Path(healthcheck[0]).is_relative_to(root)

        def check(*extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [*healthcheck, *extra], env=run_env, capture_output=True, text=True, timeout=30
            )

        assert check().returncode == 0
        assert check("--service", SERVICE_NAME).returncode == 0
        refused = check("--service", "no.such.Service")
        assert refused.returncode == 1 and "NOT_FOUND" in refused.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(20)
        finally:
            if server.poll() is None:
                server.kill()
    assert server.returncode == 0, log.read_text()
    # With the server gone the health check fails, as it must.
    assert check().returncode == 1
