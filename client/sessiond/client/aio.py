"""The asyncio client of sessiond: one method per RPC, typed errors, ``run()`` for turns.

Every method returns the contract's generated messages (``sessiond.v1.*_pb2``)
and raises the typed errors of :mod:`sessiond.errors` (never a bare
``grpc.aio.AioRpcError``). Mutations get a fresh ``request_id`` when the caller
gives none, so a transport retry of UNAVAILABLE applies them at most once.

The methods are grouped by topic: :class:`~sessiond.client.sessions.SessionMethods`,
:class:`~sessiond.client.turn_methods.TurnMethods` and
:class:`~sessiond.client.bundles.BundleMethods`.
"""

# ruff: noqa: ASYNC109 - `timeout` is the gRPC deadline sent with the call, not a local wait.

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence

import grpc

from sessiond.client.bundles import BundleMethods, ExportedBundle, TransferProgress
from sessiond.client.calls import DEFAULT, Timeout
from sessiond.client.connection import DEFAULT_TARGET, Tls, open_channel
from sessiond.client.messages import event, message_text, text_message
from sessiond.client.sessions import SessionMethods
from sessiond.client.turn_methods import TurnMethods
from sessiond.client.turns import RunTurn
from sessiond.v1 import session_service_pb2_grpc

__all__ = [
    "DEFAULT",
    "AsyncClient",
    "ExportedBundle",
    "RunTurn",
    "Timeout",
    "TransferProgress",
    "event",
    "message_text",
    "text_message",
]


class AsyncClient(SessionMethods, TurnMethods, BundleMethods):
    """A connection to a sessiond server (``grpc.aio``).

    Use as ``async with AsyncClient(target) as client:`` or call :meth:`close`.

    Args:
        target: ``host:port`` of the server (or any gRPC target string).
        timeout: Default deadline of unary calls in seconds (None: none);
            every method also takes ``timeout=``. Streams (``run``,
            ``export``, ``import``) have no deadline unless given one.
        channel: An existing channel to use instead of opening one (the TLS,
            token and retry arguments are then ignored).
        tls: Use TLS; implied by ``ca_file``, ``cert_file`` or ``server_name``.
        ca_file: PEM roots that sign the server's certificate (system roots if None).
        cert_file: PEM client certificate chain, for mutual TLS.
        key_file: PEM private key of ``cert_file``.
        server_name: The name the server's certificate must carry, if not the
            target's host.
        token: Bearer token, sent as ``authorization: Bearer <token>`` (call
            credentials over TLS, call metadata on a plaintext channel).
        metadata: Extra metadata sent with every call.
        retries: Retry UNAVAILABLE on reads and on mutations (which always carry
            a request id), through the channel's service config. ABORTED and
            the streams are never retried.

    Attributes:
        target: The target.
        timeout: The default deadline of unary calls.
        stub: The generated stub, for anything the methods do not cover.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout: float | None = 30.0,
        channel: grpc.aio.Channel | None = None,
        tls: bool = False,
        ca_file: str | os.PathLike[str] | None = None,
        cert_file: str | os.PathLike[str] | None = None,
        key_file: str | os.PathLike[str] | None = None,
        server_name: str | None = None,
        token: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        retries: bool = True,
    ) -> None:
        self.target = target
        self.timeout = timeout
        token_metadata: tuple[tuple[str, str], ...] = ()
        if channel is None:
            use_tls = tls or any(v is not None for v in (ca_file, cert_file, server_name))
            settings = Tls(ca_file, cert_file, key_file, server_name) if use_tls else None
            channel, token_metadata = open_channel(
                target, tls=settings, token=token, retries=retries
            )
        self._channel = channel
        self._metadata = (*token_metadata, *metadata)
        self.stub = session_service_pb2_grpc.SessionServiceStub(channel)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel (calls in flight are cancelled)."""
        await self._channel.close()

    async def wait_ready(self, timeout: float | None = None) -> None:
        """Waits until the channel has connected to the server.

        Raises:
            TimeoutError: Not connected within ``timeout`` seconds.
        """
        await asyncio.wait_for(self._channel.channel_ready(), timeout)
