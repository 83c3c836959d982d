"""Seeded fault injection on the S3 wire, through botocore's ``before-send`` event.

Registered on a started :class:`S3Store`'s client, it decides for every HTTP
request, with a seeded random generator, to let it through or to:

``503``
    answer ``503 SlowDown`` instead of moto (never sent: not applied);
``reset``
    fail to connect (``EndpointConnectionError`` wrapping a connector error:
    never sent, not applied);
``409``
    answer ``409 ConditionalRequestConflict`` to a conditional PUT (not applied);
``500-after``
    send the request to moto (it applies) and answer ``500 InternalError``;
``timeout-after``
    send it (it applies) and raise a read timeout;
``reset-after``
    send it (it applies) and fail as a reset connection (``ClientOSError``).

The last three are the ambiguous writes: the store changed, the response was
lost. :attr:`injected` counts each kind by operation.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiobotocore.awsrequest import AioAWSResponse
from botocore import exceptions as bce

from sessiond.server.storage.s3 import S3Store


@dataclass(frozen=True)
class WireRates:
    """Probability of each fault per request (``conflict``: conditional PUTs only)."""

    slowdown: float = 0.0
    reset: float = 0.0
    conflict: float = 0.0
    error_after: float = 0.0
    timeout_after: float = 0.0
    reset_after: float = 0.0


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self) -> bytes:
        return self._body


def _error_response(url: str, status: int, code: str) -> AioAWSResponse:
    body = f"<Error><Code>{code}</Code><Message>injected {code}</Message></Error>".encode()
    headers = {"content-type": "application/xml", "content-length": str(len(body))}
    return AioAWSResponse(url, status, headers, _Raw(body))


def _connector_error() -> aiohttp.ClientConnectorError:
    key = type("Key", (), {"host": "127.0.0.1", "port": 1, "ssl": False})()
    return aiohttp.ClientConnectorError(key, ConnectionResetError(104, "injected reset"))


class WireFaults:
    """Injects seeded faults into every request of one S3Store's client.

    Attributes:
        enabled: Set False to let every request through.
        injected: Faults injected, as ``"<kind> <operation>"`` counts.
        requests: Requests seen, by operation.
    """

    def __init__(self, store: S3Store, *, seed: int, rates: WireRates) -> None:
        self.client = store.client
        self.rates = rates
        self.seed = seed
        self.enabled = True
        self.injected: Counter[str] = Counter()
        self.requests: Counter[str] = Counter()
        self._random = random.Random(seed)
        self.client.meta.events.register("before-send.s3", self._before_send)

    def _roll(self, probability: float) -> bool:
        return probability > 0 and self._random.random() < probability

    async def _before_send(self, request: Any, event_name: str, **_: Any) -> Any:
        operation = event_name.rsplit(".", 1)[-1]
        self.requests[operation] += 1
        if not self.enabled:
            return None
        rates = self.rates
        headers = {k.lower() for k in request.headers}
        conditional = operation == "PutObject" and bool(headers & {"if-match", "if-none-match"})
        if self._roll(rates.slowdown):
            return self._answer("503", operation, request, 503, "SlowDown")
        if self._roll(rates.reset):
            self.injected[f"reset {operation}"] += 1
            raise bce.EndpointConnectionError(endpoint_url=request.url, error=_connector_error())
        if conditional and self._roll(rates.conflict):
            return self._answer("409", operation, request, 409, "ConditionalRequestConflict")
        is_write = operation in ("PutObject", "DeleteObject")
        if is_write and self._roll(rates.error_after):
            await self._forward(request)
            return self._answer("500-after", operation, request, 500, "InternalError")
        if is_write and self._roll(rates.timeout_after):
            await self._forward(request)
            self.injected[f"timeout-after {operation}"] += 1
            raise bce.ReadTimeoutError(endpoint_url=request.url)
        if self._roll(rates.reset_after):
            await self._forward(request)
            self.injected[f"reset-after {operation}"] += 1
            raise bce.EndpointConnectionError(
                endpoint_url=request.url, error=aiohttp.ClientOSError(104, "injected reset")
            )
        return None  # send for real

    def _answer(self, kind: str, operation: str, request: Any, status: int, code: str) -> Any:
        self.injected[f"{kind} {operation}"] += 1
        return _error_response(request.url, status, code)

    async def _forward(self, request: Any) -> None:
        """Sends the request to moto (so it applies) and drops the response."""
        response = await self.client._endpoint.http_session.send(request)
        await response.content  # read it, so the connection can be reused

    def by_kind(self) -> dict[str, int]:
        """Faults injected, by kind (summed over operations)."""
        kinds: Counter[str] = Counter()
        for key, count in self.injected.items():
            kinds[key.split(" ", 1)[0]] += count
        return dict(kinds)
