"""A real sessiond server on its own event loop in a thread, for synchronous tests.

Hypothesis drives synchronous test functions, so a fuzz test cannot await
on the test session's event loop. This server (and an ``AsyncClient`` bound
to it) lives on a private loop in a daemon thread; the test hands it
coroutines with :meth:`ThreadedServer.run`::

    with ThreadedServer(store) as server:
        session = server.run(server.client.get("s1"))
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sessiond.client.aio import AsyncClient
from sessiond.server.app import Server, build_server
from sessiond.server.ops.settings import Settings
from sessiond.server.storage.port import ObjectStore

T = TypeVar("T")


class ThreadedServer:
    """Builds and starts a server on a private loop; stops it on exit.

    Attributes:
        store: The server's store.
        server: The built server (after start).
        client: A client on the same loop (no transparent retries).
    """

    def __init__(self, store: ObjectStore, **settings: Any) -> None:
        self.store = store
        self._settings = {
            "listen": "127.0.0.1:0",
            "metrics_listen": "",
            "log_format": "text",
            **settings,
        }
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.server: Server | None = None
        self.client: AsyncClient | None = None

    def run(self, awaitable: Awaitable[T], timeout: float = 30.0) -> T:
        """Runs ``awaitable`` on the server's loop and returns its result."""

        async def wrapper() -> T:
            return await awaitable

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout)

    def call(self, factory: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        """Like :meth:`run`, for a coroutine that must be created on the loop's thread."""

        async def wrapper() -> T:
            return await factory()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(timeout)

    @property
    def target(self) -> str:
        """host:port."""
        assert self.server is not None
        return f"127.0.0.1:{self.server.port}"

    def start(self) -> ThreadedServer:
        """Starts the loop thread, the server and the client."""
        self._thread.start()

        async def up() -> None:
            self.server = build_server(Settings(**self._settings), store=self.store)
            await self.server.start()
            self.client = AsyncClient(self.target, retries=False, timeout=30)

        self.call(up)
        return self

    def stop(self) -> None:
        """Stops the client, the server and the loop."""

        async def down() -> None:
            if self.client is not None:
                await self.client.close()
            if self.server is not None:
                await self.server.stop(0)

        try:
            self.call(down)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
