"""Running the real ``sessiond`` console script as a subprocess against a test's server.

The server runs on the test's event loop, so subprocesses are awaited with
``asyncio.create_subprocess_exec`` and interactive sessions (``pexpect``) run
in a worker thread: the loop keeps serving meanwhile.

Fixtures:

``cli_env``
    The environment of a CLI process: no inherited ``SESSIOND_*`` variables,
    ``XDG_STATE_HOME`` and ``HOME`` in the test's temporary directory.
``sessiond``
    ``await sessiond(*args, target=..., env=..., stdin=b"")`` runs the command
    and returns a :class:`Result`.
``spawn``
    ``spawn(*args, target=...)`` starts the command in a pseudo-terminal
    (``pexpect.spawn``) from a worker thread; closed at teardown.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pexpect
import pytest

SESSIOND = Path(sys.executable).with_name("sessiond")


@dataclass
class Result:
    """A finished CLI process."""

    code: int
    out: str
    err: str
    raw: bytes

    def json(self) -> Any:
        """Standard output parsed as JSON."""
        return json.loads(self.out)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
    (tmp_path / "home").mkdir(exist_ok=True)
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        TERM="xterm",
        LANG="C.UTF-8",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def sessiond(cli_env: dict[str, str], tmp_path: Path):
    async def run(
        *args: str,
        target: str | None = None,
        env: dict[str, str] | None = None,
        stdin: bytes | None = None,
        cwd: Path | None = None,
    ) -> Result:
        environment = {**cli_env, **(env or {})}
        if target is not None:
            environment["SESSIOND_TARGET"] = target
        process = await asyncio.create_subprocess_exec(
            str(SESSIOND),
            *args,
            env=environment,
            cwd=str(cwd or tmp_path),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout=60)
        return Result(process.returncode or 0, out.decode(errors="replace"), err.decode(), out)

    return run


@pytest.fixture
def spawn(cli_env: dict[str, str], tmp_path: Path) -> Iterator[Any]:
    children: list[pexpect.spawn] = []

    def start(*args: str, target: str) -> pexpect.spawn:
        child = pexpect.spawn(
            str(SESSIOND),
            list(args),
            env={**cli_env, "SESSIOND_TARGET": target},
            cwd=str(tmp_path),
            encoding="utf-8",
            timeout=20,
            dimensions=(50, 200),
        )
        children.append(child)
        return child

    yield start
    for child in children:
        if child.isalive():
            child.terminate(force=True)
