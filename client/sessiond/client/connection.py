"""Channels to a sessiond server: TLS, bearer tokens, keepalive, message sizes, retries.

Retries are left to gRPC itself, through the channel's service config: only
``UNAVAILABLE`` is retried, and only for calls that are safe to send twice —
the reads, and the mutations the client always sends with a ``request_id``
(the server applies a request id at most once). ``ABORTED`` is never retried
(a busy or fenced session needs a decision by the caller), and neither are the
``Run``, ``Export`` and ``Import`` streams.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

#: The full name of the service.
SERVICE = "sessiond.v1.SessionService"

#: The target used when none is given (the default ``listen`` of ``sessiond serve``).
DEFAULT_TARGET = "127.0.0.1:50051"

#: Read-only RPCs: retried on UNAVAILABLE.
READ_METHODS = ("Get", "List", "ListMessages", "ListPendingReviews", "Replay")

#: Mutations the client always sends with a ``request_id``: retried on UNAVAILABLE.
IDEMPOTENT_MUTATIONS = (
    "Start",
    "Chat",
    "Resume",
    "ResolveReview",
    "Archive",
    "Unarchive",
    "Delete",
)

#: The retry policy of those RPCs (gRPC caps ``maxAttempts`` at 5).
RETRY_POLICY: dict[str, Any] = {
    "maxAttempts": 4,
    "initialBackoff": "0.2s",
    "maxBackoff": "3s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

#: Largest message the client sends or accepts (the server's own limit is lower).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def service_config(*, retries: bool = True) -> str:
    """The channel's service config as JSON.

    Args:
        retries: Whether to include the retry policy (and its throttling).

    Returns:
        The JSON for the ``grpc.service_config`` channel option.
    """
    if not retries:
        return json.dumps({"methodConfig": []})
    names = [{"service": SERVICE, "method": m} for m in (*READ_METHODS, *IDEMPOTENT_MUTATIONS)]
    return json.dumps(
        {
            "methodConfig": [{"name": names, "retryPolicy": RETRY_POLICY}],
            # Stops retrying when most calls fail, so an outage is not amplified.
            "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
        }
    )


def channel_options(
    *, retries: bool = True, server_name: str | None = None
) -> list[tuple[str, Any]]:
    """The options of every channel the client opens.

    Args:
        retries: Whether UNAVAILABLE is retried (see :func:`service_config`).
        server_name: TLS only: the name to verify the server's certificate
            against, when it differs from the target's host.

    Returns:
        ``(key, value)`` pairs for ``grpc.aio.*_channel``.
    """
    options: list[tuple[str, Any]] = [
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        # Detects a dead peer during long calls (a Run turn may be quiet for
        # minutes); the server accepts a ping every 10 s.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 0),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.enable_retries", 1 if retries else 0),
        ("grpc.service_config", service_config(retries=retries)),
        ("grpc.primary_user_agent", "sessiond-python"),
    ]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    return options


@dataclass(frozen=True)
class Tls:
    """TLS settings of a channel.

    Attributes:
        ca_file: PEM file of the root certificates that sign the server's
            certificate; the system's roots when None.
        cert_file: PEM certificate chain of this client (mutual TLS).
        key_file: PEM private key of ``cert_file``.
        server_name: The name to check the server's certificate against,
            when it is not the target's host.
    """

    ca_file: str | os.PathLike[str] | None = None
    cert_file: str | os.PathLike[str] | None = None
    key_file: str | os.PathLike[str] | None = None
    server_name: str | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        """The channel credentials of these settings.

        Raises:
            ValueError: Only one of ``cert_file`` and ``key_file`` is set.
            OSError: A file cannot be read.
        """
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a client certificate needs both cert_file and key_file")
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file),
            private_key=_read(self.key_file),
            certificate_chain=_read(self.cert_file),
        )


def _read(path: str | os.PathLike[str] | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The bearer token stored in a file (surrounding whitespace removed).

    Raises:
        ValueError: The file is empty.
        OSError: The file cannot be read.
    """
    token = Path(path).read_text(encoding="utf-8").strip()
    if not token:
        raise ValueError(f"the token file {os.fspath(path)} is empty")
    return token


def open_channel(
    target: str,
    *,
    tls: Tls | None = None,
    token: str | None = None,
    retries: bool = True,
    options: Sequence[tuple[str, Any]] = (),
) -> tuple[grpc.aio.Channel, tuple[tuple[str, str], ...]]:
    """Opens a channel to ``target``.

    The token is sent as ``authorization: Bearer <token>``: as call
    credentials over TLS, and as call metadata on an insecure channel (gRPC
    refuses call credentials there), which the caller must add to every call.

    Args:
        target: ``host:port`` or any gRPC target string.
        tls: TLS settings; an insecure (plaintext) channel when None.
        token: Bearer token, if the server wants one.
        retries: Whether UNAVAILABLE is retried for idempotent calls.
        options: Extra channel options, applied after the defaults.

    Returns:
        The channel, and the metadata to send with every call.
    """
    all_options = [
        *channel_options(retries=retries, server_name=tls.server_name if tls else None),
        *options,
    ]
    if tls is not None:
        credentials = tls.credentials()
        if token:
            credentials = grpc.composite_channel_credentials(
                credentials, grpc.access_token_call_credentials(token)
            )
        return grpc.aio.secure_channel(target, credentials, options=all_options), ()
    metadata = (("authorization", f"Bearer {token}"),) if token else ()
    return grpc.aio.insecure_channel(target, options=all_options), metadata
