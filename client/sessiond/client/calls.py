"""The base of :class:`~sessiond.client.aio.AsyncClient`: one unary call, deadlines, request ids."""

# ruff: noqa: ASYNC109 - `timeout` is the gRPC deadline sent with the call, not a local wait.

from __future__ import annotations

import enum
import uuid
from typing import Any

import grpc

from sessiond.client.errors import from_rpc_error
from sessiond.v1 import session_service_pb2_grpc


class _Default(enum.Enum):
    TIMEOUT = "default"


#: ``timeout=DEFAULT`` (the default of every unary method) uses the client's timeout.
DEFAULT = _Default.TIMEOUT

#: A per-call deadline in seconds, None for none, or ``DEFAULT``.
Timeout = float | None | _Default


def idempotency_key(given: str = "") -> str:
    """``given``, or a fresh idempotency key (``py-<uuid4 hex>``) when it is empty."""
    return given or f"py-{uuid.uuid4().hex}"


class CallBase:
    """What the method groups of the client share.

    Attributes:
        stub: The generated ``SessionServiceStub``.
        timeout: The default deadline of unary calls, in seconds (None: none).
    """

    stub: session_service_pb2_grpc.SessionServiceStub
    timeout: float | None
    _metadata: tuple[tuple[str, str], ...]

    def _deadline(self, timeout: Timeout) -> float | None:
        return self.timeout if isinstance(timeout, _Default) else timeout

    def _call_metadata(self) -> tuple[tuple[str, str], ...] | None:
        return self._metadata or None

    async def _call(self, method: str, request: Any, timeout: Timeout = DEFAULT) -> Any:
        """Calls a unary RPC; a failure becomes the typed sessiond error."""
        try:
            return await getattr(self.stub, method)(
                request, timeout=self._deadline(timeout), metadata=self._call_metadata()
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
