"""Real sessiond servers for tests: grpc.aio on a free port, driven through the client.

Fixtures:

``serve`` (function)
    ``await serve(store=None, clock=None, **settings)`` builds and starts a
    server (MemoryStore by default) on 127.0.0.1:0 and returns a
    :class:`Served` with the server, a connected ``AsyncClient`` and the store.
    Everything is stopped at teardown.
``served`` (function)
    One started server on the store kind of the ``store_kind`` parameter
    ("memory", "local", "s3"); tests parametrise ``store_kind`` indirectly or
    use the default ("memory").
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sessiond.client.aio import AsyncClient
from sessiond.server.app import Server, build_server
from sessiond.server.ops.settings import Settings
from sessiond.server.storage.local import LocalDirectoryStore
from sessiond.server.storage.memory import MemoryStore
from sessiond.server.storage.port import ObjectStore


@dataclass
class Served:
    """A started server and a client connected to it."""

    server: Server
    client: AsyncClient
    store: ObjectStore

    @property
    def target(self) -> str:
        """host:port of the server."""
        return f"127.0.0.1:{self.server.port}"


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Yields ``serve(store=None, clock=None, engines=None, **settings) -> Served``."""
    started: list[Served] = []

    async def _serve(
        store: ObjectStore | None = None,
        clock: Any = None,
        engines: Any = None,
        **settings: Any,
    ) -> Served:
        store = store or MemoryStore()
        options = {"listen": "127.0.0.1:0", "metrics_listen": "", "log_format": "text"}
        options.update(settings)
        server = build_server(Settings(**options), store=store, clock=clock, engines=engines)
        await server.start()
        served = Served(server, AsyncClient(f"127.0.0.1:{server.port}"), store)
        started.append(served)
        return served

    yield _serve
    for served in reversed(started):
        await served.client.close()
        await served.server.stop(0)


@pytest.fixture(params=["memory"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """The kind of store ``make_store`` / ``served`` use (override with indirect params)."""
    return str(request.param)


@pytest.fixture
def make_store(
    store_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[..., Awaitable[ObjectStore]]:
    """``await make_store(name="")``: a store of ``store_kind``.

    Calls with the same name give stores on the same data (for local and S3 a
    new adapter on the same directory / prefix, as a second replica would
    have; for memory the same instance); different names are independent.
    """
    # Resolved here, outside the event loop: async fixtures cannot be set up
    # from inside a running coroutine.
    make_s3 = request.getfixturevalue("make_s3_store") if store_kind == "s3" else None
    memory: dict[str, MemoryStore] = {}

    async def _make(name: str = "") -> ObjectStore:
        if store_kind == "memory":
            return memory.setdefault(name, MemoryStore())
        if store_kind == "local":
            root = tmp_path / f"store{name}"
            root.mkdir(exist_ok=True)
            return LocalDirectoryStore(root)
        if store_kind == "s3":
            assert make_s3 is not None
            return await make_s3(prefix=f"root{name}")
        raise ValueError(store_kind)

    return _make


@pytest.fixture
async def served(serve: Serve, make_store: Callable[..., Awaitable[ObjectStore]]) -> Served:
    """A started server on a store of ``store_kind``."""
    return await serve(store=await make_store())
