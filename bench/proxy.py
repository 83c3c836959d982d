"""An HTTP/1.1 proxy that delays every request by a fixed time (a remote store's latency).

    python -m bench.proxy --port 9100 --upstream 127.0.0.1:5000 --delay-ms 20

Each request's head is held ``delay`` before it is forwarded; its body then
streams through (so ``Expect: 100-continue`` keeps working), and responses
are piped back untouched. Requests on a keep-alive connection are told apart
by ``Content-Length`` or chunked framing. A client waiting for each response
before its next request (botocore, aiobotocore) so sees one extra ``delay``
per request: what one round trip to a store ``delay`` away adds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib


class Closed(Exception):
    """The client closed its connection."""


async def _read_head(reader: asyncio.StreamReader, buffer: bytearray) -> bytes:
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buffer[: end + 4])
            del buffer[: end + 4]
            return head
        data = await reader.read(65536)
        if not data:
            raise Closed
        buffer.extend(data)


async def _forward(
    count: int, reader: asyncio.StreamReader, buffer: bytearray, writer: asyncio.StreamWriter
) -> None:
    """Forwards exactly ``count`` bytes of body (buffered first)."""
    take = min(count, len(buffer))
    if take:
        writer.write(bytes(buffer[:take]))
        del buffer[:take]
        count -= take
    while count > 0:
        data = await reader.read(min(count, 1 << 20))
        if not data:
            raise Closed
        writer.write(data)
        count -= len(data)
        await writer.drain()


async def _read_line(reader: asyncio.StreamReader, buffer: bytearray) -> bytes:
    while True:
        end = buffer.find(b"\r\n")
        if end >= 0:
            line = bytes(buffer[: end + 2])
            del buffer[: end + 2]
            return line
        data = await reader.read(65536)
        if not data:
            raise Closed
        buffer.extend(data)


async def _forward_chunked(
    reader: asyncio.StreamReader, buffer: bytearray, writer: asyncio.StreamWriter
) -> None:
    while True:
        line = await _read_line(reader, buffer)
        writer.write(line)
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while True:  # trailers, up to the empty line
                trailer = await _read_line(reader, buffer)
                writer.write(trailer)
                if trailer == b"\r\n":
                    return
        await _forward(size + 2, reader, buffer, writer)


def _body_framing(head: bytes) -> tuple[int, bool]:
    length, chunked = 0, False
    for raw in head.split(b"\r\n")[1:]:
        name, _, value = raw.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    return length, chunked


async def _requests(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float
) -> None:
    buffer = bytearray()
    with contextlib.suppress(Closed, ConnectionError):
        while True:
            head = await _read_head(reader, buffer)
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(head)
            length, chunked = _body_framing(head)
            if chunked:
                await _forward_chunked(reader, buffer, writer)
            else:
                await _forward(length, reader, buffer, writer)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


async def _responses(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(1 << 20):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(Exception):
        writer.close()


async def serve(port: int, upstream: str, delay: float) -> None:
    """Serves until killed."""
    host, _, upstream_port = upstream.rpartition(":")

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(upstream_port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(_requests(reader, up_writer, delay), _responses(up_reader, writer))

    server = await asyncio.start_server(connection, "127.0.0.1", port, backlog=1024)
    async with server:
        await server.serve_forever()


def main() -> None:
    """Parses the flags and serves."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="host:port")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.upstream, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
