"""``sessiond serve``: run the server until SIGTERM / SIGINT, then shut down gracefully."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from urllib.parse import urlsplit

from prometheus_client import start_http_server

from sessiond.server.app import Server, build_server
from sessiond.server.ops import logs
from sessiond.server.ops.security_checks import is_loopback
from sessiond.server.ops.settings import DEVELOPMENT_TOKEN_SECRET, Settings
from sessiond.server.storage.port import StoreError

log = logging.getLogger("sessiond.server")

#: Exit code of a refused start (bad settings or files), as for invalid flags.
EXIT_REFUSED = 2

#: Allocations between two young-generation collections (CPython's default: 700).
GC_YOUNG_THRESHOLD = 50_000


class StartRefused(Exception):
    """The server will not start with these settings (the message says why)."""


def _build(settings: Settings) -> Server:
    """Builds the server; a configuration problem becomes :class:`StartRefused`."""
    try:
        return build_server(settings)
    except ValueError as error:  # ConfigurationError and engine settings; no secrets inside
        raise StartRefused(str(error)) from None


def _tune_gc() -> None:
    """Makes cyclic garbage collection rarer; see docs/performance.md.

    A turn allocates thousands of short-lived objects (pydantic records,
    protobuf messages) that reference counting frees anyway; with CPython's
    default threshold the collector runs every few turns and traverses every
    cached head, ~25 % of a turn's CPU. What exists at startup (modules,
    settings) is moved out of the collector's sight for good.
    """
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def _warn_about_exposure(settings: Settings, server: Server) -> None:
    """Warnings for settings that are allowed but weaken security."""
    network = not is_loopback(settings.listen.rpartition(":")[0])
    if settings.page_token_secret.get_secret_value() == DEVELOPMENT_TOKEN_SECRET:
        log.warning("page_token_secret is the development default; set SESSIOND_PAGE_TOKEN_SECRET")
    if network and server.tls is None:
        log.warning(
            "serving plaintext gRPC on a network address (allow_insecure): credentials and"
            " sessions cross the network unencrypted unless a mesh protects them",
            extra={"listen": settings.listen},
        )
    endpoint = urlsplit(settings.s3_endpoint or "")
    if endpoint.scheme == "http" and not is_loopback(endpoint.hostname or ""):
        log.warning(
            "the S3 endpoint is plain http: sessions cross the network unencrypted",
            extra={"s3_endpoint": f"http://{endpoint.hostname}:{endpoint.port or 80}"},
        )
    if network and server.authenticator is None:
        log.warning(
            "authentication is off on a network address: every caller is tenant %r",
            settings.tenant,
            extra={"listen": settings.listen},
        )


async def serve(settings: Settings) -> None:
    """Builds, starts and runs the server until a termination signal.

    Raises:
        StartRefused: A TLS, token or key file (or the engine settings) is not
            usable, or the store is unreachable or ignores conditional writes.
    """
    server = _build(settings)
    log.info("starting sessiond", extra={"settings": settings.redacted()})
    _warn_about_exposure(settings, server)
    try:
        port = await server.start()
    except StoreError as error:
        # An unreachable store, or one that ignores conditional writes: one
        # clear line for the operator instead of a traceback.
        await server.store.close()
        raise StartRefused(
            f"the store {settings.store} is not usable: {error or type(error).__name__}"
        ) from None
    _tune_gc()
    if settings.metrics_listen:
        host, _, metrics_port = settings.metrics_listen.rpartition(":")
        start_http_server(int(metrics_port), addr=host, registry=server.metrics.registry)
    log.info(
        "serving",
        extra={
            "port": port,
            "store": settings.store,
            "tls": "mutual" if server.tls and server.tls.mutual else bool(server.tls),
            "auth": server.authenticator.sources if server.authenticator else [],
            "health_port": server.health_port or None,
        },
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    log.info("shutting down", extra={"grace_seconds": settings.shutdown_grace_seconds})
    await server.stop()
    log.info("stopped")


def run(settings: Settings) -> None:
    """Configures logging and serves (blocking); exits with code 2 when the start is refused."""
    logs.configure(settings.log_level, settings.log_format)
    try:
        asyncio.run(serve(settings))
    except StartRefused as refused:
        log.error("refusing to start", extra={"reason": str(refused)})
        print(f"sessiond: refusing to start: {refused}", file=sys.stderr)
        raise SystemExit(EXIT_REFUSED) from None
