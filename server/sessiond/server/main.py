"""``sessiond serve``: run the server until SIGTERM / SIGINT, then shut down gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal

from prometheus_client import start_http_server

from sessiond.server.app import build_server
from sessiond.server.ops import logs
from sessiond.server.ops.settings import DEVELOPMENT_TOKEN_SECRET, Settings

log = logging.getLogger("sessiond.server")


async def serve(settings: Settings) -> None:
    """Builds, starts and runs the server until a termination signal."""
    server = build_server(settings)
    log.info("starting sessiond", extra={"settings": settings.redacted()})
    if settings.page_token_secret.get_secret_value() == DEVELOPMENT_TOKEN_SECRET:
        log.warning("page_token_secret is the development default; set SESSIOND_PAGE_TOKEN_SECRET")
    port = await server.start()
    if settings.metrics_listen:
        host, _, metrics_port = settings.metrics_listen.rpartition(":")
        start_http_server(int(metrics_port), addr=host, registry=server.metrics.registry)
    log.info("serving", extra={"port": port, "store": settings.store})
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    await stopping.wait()
    log.info("shutting down", extra={"grace_seconds": settings.shutdown_grace_seconds})
    await server.stop()
    log.info("stopped")


def run(settings: Settings) -> None:
    """Configures logging and serves (blocking)."""
    logs.configure(settings.log_level, settings.log_format)
    asyncio.run(serve(settings))
