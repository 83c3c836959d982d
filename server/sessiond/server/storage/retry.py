"""Retry policy and failure classification for the S3 adapter.

The SDK's own retries are switched off, because they cannot tell a
conditional write that was *maybe applied* (read timeout, 500) from one that
was *certainly not applied* (connection refused, 503 SlowDown). This module
makes that distinction so :mod:`sessiond.server.storage.s3` can retry safely
and recognise its own lost-response writes.
"""

from __future__ import annotations

import asyncio
import enum
import random
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from botocore import exceptions as bce

from sessiond.server.storage.port import StoreError, StoreUnavailable

T = TypeVar("T")


class Applied(enum.Enum):
    """What a failed attempt tells about whether a write reached the store."""

    NO = "no"
    """The request was certainly not applied (never sent, or refused before applying)."""

    MAYBE = "maybe"
    """The request may have been applied and only the response was lost."""


@dataclass(frozen=True)
class Failure:
    """A classified failure of one request.

    Attributes:
        retryable: Whether sending the same request again may succeed.
        applied: Whether the failed request may have been applied.
        status: The HTTP status, when the store answered.
        code: The S3 error code (``SlowDown``, ``NoSuchKey``...) or, for a
            transport failure, the botocore exception class name.
        answer: The store answered 304, 404 or 412 about the object itself
            (not about a missing bucket): the caller maps it to ``NotModified``,
            ``NotFound``, ``AlreadyExists`` or ``PreconditionFailed``.
    """

    retryable: bool
    applied: Applied
    status: int | None
    code: str
    answer: bool = False


# Statuses that are an *answer* rather than a failure: the caller maps them to
# NotFound / NotModified / AlreadyExists / PreconditionFailed.
ANSWER_STATUSES = frozenset({304, 404, 412})

# Rejected before anything was applied, and worth retrying.
_RETRY_NOT_APPLIED_CODES = frozenset(
    {
        "SlowDown",
        "ServiceUnavailable",
        "ConditionalRequestConflict",
        "OperationAborted",
        "RequestTimeout",  # the server gave up reading our body
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
    }
)


def client_error_status(exc: BaseException) -> int | None:
    """Returns the HTTP status of a botocore ``ClientError``, else ``None``."""
    if isinstance(exc, bce.ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return int(status) if status is not None else None
    return None


def client_error_code(exc: BaseException) -> str:
    """Returns the S3 error code of a ``ClientError`` or the exception's class name."""
    if isinstance(exc, bce.ClientError):
        return str(exc.response.get("Error", {}).get("Code", "Unknown"))
    return type(exc).__name__


def classify(exc: BaseException) -> Failure | None:
    """Classifies an exception raised by one S3 request.

    Args:
        exc: What the aiobotocore call raised.

    Returns:
        The classification, or ``None`` when ``exc`` is not a store failure at
        all (a programming error such as a parameter validation error), which
        the caller must let propagate unchanged.
    """
    code = client_error_code(exc)
    if isinstance(exc, bce.ClientError):
        status = client_error_status(exc)
        if status in ANSWER_STATUSES and code != "NoSuchBucket":
            return Failure(False, Applied.NO, status, code, answer=True)
        if code in _RETRY_NOT_APPLIED_CODES or status in (429, 503):
            return Failure(True, Applied.NO, status, code)
        if status is not None and status >= 500 and status != 501:
            # 500 InternalError, 502, 504: the write may have gone through.
            return Failure(True, Applied.MAYBE, status, code)
        # Other 4xx (403, 400...) and 501: the store refused the request.
        return Failure(False, Applied.NO, status, code)
    if isinstance(exc, bce.EndpointConnectionError):
        # aiobotocore also wraps "connection reset" (aiohttp.ClientOSError) in
        # EndpointConnectionError; only a failure to *connect* proves the
        # request was never sent.
        cause = exc.kwargs.get("error")
        if isinstance(cause, aiohttp.ClientConnectorError | socket.gaierror):
            return Failure(True, Applied.NO, None, code)
        return Failure(True, Applied.MAYBE, None, code)
    if isinstance(exc, bce.ConnectionError):
        # ConnectTimeoutError, SSLError (handshake), ProxyConnectionError.
        return Failure(True, Applied.NO, None, code)
    if isinstance(exc, bce.HTTPClientError | aiohttp.ClientError | asyncio.TimeoutError | OSError):
        # ReadTimeoutError, ConnectionClosedError, ResponseStreamingError...
        return Failure(True, Applied.MAYBE, None, code)
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return Failure(False, Applied.NO, None, code)
    return None


def describe(op: str, key: str | None, failure: Failure, attempts: int = 1) -> str:
    """Builds a short, sanitised error message (no SDK text, no URLs).

    Args:
        op: The store operation ("get", "put"...).
        key: The key involved, if any.
        failure: The classified failure.
        attempts: How many requests were made.
    """
    what = f"s3 {op}" + (f" {key!r}" if key is not None else "")
    status = f"HTTP {failure.status} " if failure.status is not None else ""
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    return f"{what}: {status}{failure.code}{tries}"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with full jitter.

    Attributes:
        max_attempts: Requests per operation, first attempt included.
        base_delay: Backoff cap of the first retry, in seconds.
        max_delay: Upper bound of any single backoff, in seconds.
    """

    max_attempts: int = 5
    base_delay: float = 0.05
    max_delay: float = 2.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def backoff(self, failures: int) -> float:
        """Returns the delay before the next attempt.

        Args:
            failures: How many attempts have failed so far (1 after the first).
        """
        # Full jitter spreads competing writers apart (AWS architecture blog).
        cap = min(self.max_delay, self.base_delay * (2 ** max(0, failures - 1)))
        return random.uniform(0, cap)

    async def run(
        self,
        op: str,
        key: str | None,
        attempt: Callable[[], Awaitable[T]],
        answers: Mapping[int, type[StoreError]],
    ) -> T:
        """Runs an idempotent request, retrying transient failures with backoff.

        Args:
            op: The store operation, for messages.
            key: The key, for messages.
            attempt: Makes one request.
            answers: Maps the statuses 304/404/412 to the error to raise.

        Raises:
            StoreError: An ``answers`` error, or ``StoreUnavailable`` once the
                failure is not retryable or the attempts are exhausted.
        """
        attempts = 0
        while True:
            attempts += 1
            try:
                return await attempt()
            except Exception as exc:
                failure = classify(exc)
                if failure is None:
                    raise
                if failure.answer and failure.status in answers:
                    raise answers[failure.status](describe(op, key, failure)) from exc
                if not failure.retryable or attempts >= self.max_attempts:
                    raise StoreUnavailable(describe(op, key, failure, attempts)) from exc
            await asyncio.sleep(self.backoff(attempts))
