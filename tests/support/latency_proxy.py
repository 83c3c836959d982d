"""An HTTP/1.1 proxy that delays requests: a slow object store in front of moto.

It runs on its own event loop in a daemon thread, so both synchronous tests
(driving ``sessiond serve`` processes) and asynchronous ones can use it::

    with LatencyProxy("127.0.0.1:5000", delay=lambda method, path: 0.3) as proxy:
        endpoint = proxy.url          # give this to sessiond as --s3-endpoint

Each request's head is held ``delay(method, path)`` seconds before it is
forwarded; its body (``Content-Length`` or chunked) then streams through,
and responses are piped back untouched. botocore waits for a response before
it sends the next request on a connection, so each request sees exactly one
extra delay. ``delay`` may be changed while the proxy runs (``proxy.delay = ...``).

A very long delay *holds* a request: :meth:`LatencyProxy.drop_held` then
closes the held connections without forwarding anything (a request that
never reached the store), which with a SIGKILL of the client models a crash
in the middle of a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from collections.abc import Callable

Delay = Callable[[str, str], float]


class _Closed(Exception):
    """A peer closed its connection."""


async def _read_until(reader: asyncio.StreamReader, buffer: bytearray, marker: bytes) -> bytes:
    while True:
        end = buffer.find(marker)
        if end >= 0:
            chunk = bytes(buffer[: end + len(marker)])
            del buffer[: end + len(marker)]
            return chunk
        data = await reader.read(65536)
        if not data:
            raise _Closed
        buffer.extend(data)


async def _copy_exact(
    count: int, reader: asyncio.StreamReader, buffer: bytearray, writer: asyncio.StreamWriter
) -> None:
    take = min(count, len(buffer))
    if take:
        writer.write(bytes(buffer[:take]))
        del buffer[:take]
        count -= take
    while count > 0:
        data = await reader.read(min(count, 1 << 20))
        if not data:
            raise _Closed
        writer.write(data)
        count -= len(data)
    await writer.drain()


async def _copy_chunked(
    reader: asyncio.StreamReader, buffer: bytearray, writer: asyncio.StreamWriter
) -> None:
    while True:
        line = await _read_until(reader, buffer, b"\r\n")
        writer.write(line)
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while (trailer := await _read_until(reader, buffer, b"\r\n")) != b"\r\n":
                writer.write(trailer)
            writer.write(b"\r\n")
            await writer.drain()
            return
        await _copy_exact(size + 2, reader, buffer, writer)


class LatencyProxy:
    """Delays every request to ``upstream`` (``host:port``) by ``delay(method, path)`` seconds.

    Attributes:
        url: ``http://127.0.0.1:<port>`` to use instead of the upstream.
        delay: The delay function (replaceable at any time).
        requests: Requests forwarded, by method.
    """

    def __init__(self, upstream: str, delay: Delay | float = 0.0) -> None:
        host, _, port = upstream.removeprefix("http://").rstrip("/").rpartition(":")
        self._upstream = (host, int(port))
        self.delay: Delay = delay if callable(delay) else (lambda _m, _p, d=delay: d)
        self.requests: Counter[str] = Counter()
        #: Paths of the requests being delayed right now (method and path).
        self.waiting: list[tuple[str, str]] = []
        self.url = ""
        self._sleeping: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None

    def start(self) -> LatencyProxy:
        """Starts serving on a free port of 127.0.0.1."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        port = future.result(timeout=10)
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    def close(self) -> None:
        """Stops serving and ends the thread."""
        if self._server is not None:

            async def stop() -> None:
                assert self._server is not None
                self._server.close()
                for task in asyncio.all_tasks():
                    if task is not asyncio.current_task():
                        task.cancel()

            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    def drop_held(self) -> int:
        """Closes every connection whose request is being delayed; returns how many."""

        async def drop() -> int:
            tasks = list(self._sleeping)
            for task in tasks:
                task.cancel()
            return len(tasks)

        return asyncio.run_coroutine_threadsafe(drop(), self._loop).result(timeout=5)

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._upstream)
        except OSError:
            writer.close()
            return
        back = asyncio.ensure_future(self._pipe(up_reader, writer))
        try:
            await self._requests(reader, up_writer)
        except (_Closed, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            back.cancel()
            for stream in (writer, up_writer):
                with contextlib.suppress(Exception):
                    stream.close()

    async def _requests(self, reader: asyncio.StreamReader, upstream: asyncio.StreamWriter) -> None:
        buffer = bytearray()
        while True:
            head = await _read_until(reader, buffer, b"\r\n\r\n")
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, path, *_ = [*request_line.split(" "), "", ""]
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in header_lines if line)
            }
            self.requests[method] += 1
            wait = self.delay(method, path)
            if wait > 0:
                task = asyncio.current_task()
                assert task is not None
                self._sleeping.add(task)  # type: ignore[arg-type]
                self.waiting.append((method, path))
                try:
                    await asyncio.sleep(wait)
                finally:
                    self._sleeping.discard(task)  # type: ignore[arg-type]
                    self.waiting.remove((method, path))
            upstream.write(head)
            if headers.get("transfer-encoding", "").lower() == "chunked":
                await _copy_chunked(reader, buffer, upstream)
            else:
                await _copy_exact(int(headers.get("content-length", "0")), reader, buffer, upstream)
            await upstream.drain()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(Exception):
            writer.close()
