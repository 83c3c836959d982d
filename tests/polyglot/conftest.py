"""Fixtures of the polyglot tier: the Node client built, buf, a real ``sessiond serve``.

``node_client`` (session)
    client/node with its npm dependencies installed (``npm install``, skipped
    while node_modules is newer than package.json and package-lock.json) and
    built (``tsc``: the client, its tests and the examples). Returns the
    package directory.
``buf`` (session)
    The buf binary from tools/node_modules (``npm install`` in tools/ first
    when missing).
``sessiond_server`` (module)
    A ``sessiond serve`` process on a free port with a local-directory store in
    a temporary directory; ``.target`` and ``.store`` (the directory).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from polyglot.helpers import (
    NODE_CLIENT,
    TOOLS,
    ServerProcess,
    npm_install,
    run,
    start_server,
    stop_server,
)


@pytest.fixture(scope="session")
def node_client() -> Path:
    """client/node, installed and built."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail("Node.js 20+ and npm are needed for the polyglot tier", pytrace=False)
    npm_install(NODE_CLIENT)
    run(["npm", "run", "--silent", "build"], NODE_CLIENT)
    return NODE_CLIENT


@pytest.fixture(scope="session")
def buf() -> Path:
    """The buf binary from tools/node_modules."""
    path = TOOLS / "node_modules" / ".bin" / "buf"
    if not path.exists():
        if shutil.which("npm") is None:
            pytest.fail("npm is needed to install buf (tools/package.json)", pytrace=False)
        run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error"], TOOLS)
    return path


@pytest.fixture(scope="module")
def sessiond_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A ``sessiond serve`` process on a local-directory store."""
    process, server = start_server(tmp_path_factory.mktemp("sessiond"))
    try:
        yield server
    finally:
        stop_server(process)
