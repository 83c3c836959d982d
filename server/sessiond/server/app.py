"""The composition root: builds the whole server from settings and injectable parts.

Tests call :func:`build_server` with a fake store, a manual clock and port 0;
``sessiond serve`` calls it with what the settings say.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from sessiond.server.api.auth import Authenticator, AuthInterceptor, TokenTenancy, exempt_prefixes
from sessiond.server.api.calls import Admission, SingleTenant, Tenancy
from sessiond.server.api.servicer import Domain, SessionServicer
from sessiond.server.domain.adoption import Adoption
from sessiond.server.domain.clock import Clock, IdSource, SystemClock, default_replica_id
from sessiond.server.domain.context import ServiceContext
from sessiond.server.domain.engines import Engine
from sessiond.server.domain.index import TenantIndex
from sessiond.server.domain.keys import check_tenant_prefix
from sessiond.server.domain.limits import Limits
from sessiond.server.domain.pagination import PageTokens
from sessiond.server.domain.repository import SessionRepository
from sessiond.server.domain.reviews import ReviewService
from sessiond.server.domain.sessions import SessionLifecycle
from sessiond.server.domain.turn_service import TurnService
from sessiond.server.engines.config import build_registry
from sessiond.server.ops.metrics import Metrics
from sessiond.server.ops.settings import Settings
from sessiond.server.ops.tls import ServerTls
from sessiond.server.storage.factory import open_store
from sessiond.server.storage.port import ObjectStore
from sessiond.v1 import session_service_pb2, session_service_pb2_grpc

log = logging.getLogger("sessiond.server")

SERVICE_NAME = session_service_pb2.DESCRIPTOR.services_by_name["SessionService"].full_name


@dataclass
class Server:
    """A built server: start it, serve, stop it gracefully.

    Attributes:
        grpc_server: The grpc.aio server.
        port: The bound port (after ``start``).
        health: The health servicer (per service name).
        metrics: The server's metrics.
        store: The object store.
        context: The domain services' shared dependencies.
        servicer: The SessionService servicer.
        tls: The TLS credentials of the gRPC port (None: plaintext).
        authenticator: Checks bearer tokens (None: authentication off).
        health_server: The plaintext health-only server (``health_listen``), if any.
        health_port: Its bound port (after ``start``).
    """

    grpc_server: grpc.aio.Server
    settings: Settings
    health: HealthServicer
    metrics: Metrics
    store: ObjectStore
    context: ServiceContext
    servicer: SessionServicer
    port: int = 0
    tls: ServerTls | None = None
    authenticator: Authenticator | None = None
    health_server: grpc.aio.Server | None = None
    health_port: int = 0
    _health_task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def start(self) -> int:
        """Opens the store (which probes conditional writes), binds and starts serving."""
        await self.store.start()
        if self.tls is not None:
            credentials = self.tls.credentials()
            self.port = self.grpc_server.add_secure_port(self.settings.listen, credentials)
        else:
            self.port = self.grpc_server.add_insecure_port(self.settings.listen)
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {self.settings.listen}")
        if self.health_server is not None:
            self.health_port = self.health_server.add_insecure_port(self.settings.health_listen)
            if self.health_port == 0:
                raise RuntimeError(f"cannot listen on {self.settings.health_listen}")
            await self.health_server.start()
        await self.grpc_server.start()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
        self._health_task = asyncio.get_running_loop().create_task(self._watch_store())
        return self.port

    async def _watch_store(self) -> None:
        """Readiness follows the store: NOT_SERVING for SessionService while it fails."""
        interval = self.settings.health_check_interval_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                probe = self.settings.tenant_prefix.partition("{tenant}")[0]
                await asyncio.wait_for(self.store.list(probe, limit=1), timeout=interval)
                status = health_pb2.HealthCheckResponse.SERVING
            except Exception:
                status = health_pb2.HealthCheckResponse.NOT_SERVING
            await self.health.set(SERVICE_NAME, status)

    async def stop(self, grace: float | None = None, *, drain: float | None = None) -> None:
        """Graceful shutdown.

        1. Health reports NOT_SERVING, and the server keeps serving for the
           drain period so load balancers and probes notice first.
        2. New calls are refused; calls in flight get the grace period.
        3. Calls still running are cancelled; their turns release the lease.
        4. Background work finishes; the store is closed.
        """
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        drain = self.settings.shutdown_drain_seconds if drain is None else drain
        if self._health_task is not None:
            self._health_task.cancel()
        await self.health.enter_graceful_shutdown()
        if drain > 0:
            await asyncio.sleep(drain)
        await self.grpc_server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(0)
        # Calls still running at the end of the grace period were cancelled;
        # release the leases of their turns now rather than let them expire.
        # Bounded: a store that hangs must not keep the process alive past
        # its grace period (an unreleased lease just expires).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self.context.active_turns.release_all("SHUTDOWN", "the server shut down"),
                timeout=max(1.0, min(grace, 5.0)),
            )
        await self.servicer.drain(max(grace, 1.0))
        await self.context.background.drain(max(grace, 1.0))
        await self.context.engines.aclose()
        await self.store.close()

    async def wait(self) -> None:
        """Serves until the server stops."""
        await self.grpc_server.wait_for_termination()


def build_server(
    settings: Settings,
    *,
    store: ObjectStore | None = None,
    clock: Clock | None = None,
    ids: IdSource | None = None,
    engines: list[Engine] | None = None,
    tenancy: Tenancy | None = None,
    limits: Limits | None = None,
    metrics: Metrics | None = None,
) -> Server:
    """Builds a server (not yet started) from settings and optional injected parts.

    An injected ``store`` reports its requests to whatever observer it was
    built with: pass ``metrics`` too, with ``metrics.store_request`` as that
    observer, to count them in the server's metrics.

    ``engines`` replace the built-in ``echo``; the engines the settings
    configure are added (an injected engine wins over a configured one of the
    same name).

    Raises:
        ValueError: The engine settings are inconsistent, or a TLS, token or key
            file cannot be read or is invalid (``ConfigurationError``); no
            secret is in the message.
    """
    metrics = metrics or Metrics()
    tls = ServerTls.from_settings(settings)
    authenticator = Authenticator.from_settings(settings)
    key_prefix = check_tenant_prefix(
        settings.tenant_prefix, multi_tenant=authenticator is not None or tenancy is not None
    )
    if store is None:
        store = open_store(
            settings.store,
            s3_endpoint=settings.s3_endpoint,
            s3_region=settings.s3_region,
            observer=metrics.store_request,
        )
    clock = clock or SystemClock()
    ids = ids or IdSource()
    limits = limits or Limits(max_message_bytes=settings.max_message_bytes)
    registry = build_registry(settings, engines)
    secret = hashlib.sha256(settings.page_token_secret.get_secret_value().encode()).digest()
    context = ServiceContext(
        repo=SessionRepository(store),
        index=TenantIndex(store, capacity=settings.index_segment_capacity),
        clock=clock,
        ids=ids,
        tokens=PageTokens(secret),
        limits=limits,
        engines=registry,
        holder=settings.replica_id or default_replica_id(),
        lease_ttl=timedelta(seconds=settings.lease_ttl_seconds),
        adopt_on_claim=settings.adopt_on_claim,
        metrics=metrics,
    )
    adoption = Adoption(context, discovery_interval=settings.discovery_interval_seconds)
    context.adoption = adoption
    context.repo.on_missing = adoption.adopt_session
    domain = Domain(
        sessions=SessionLifecycle(context, adoption=adoption),
        turns=TurnService(context),
        reviews=ReviewService(context),
        engines=registry,
        ids=ids,
        clock=clock,
        limits=limits,
    )
    from sessiond.server.api.bundles import BundleRpc

    servicer = SessionServicer(
        domain,
        key_prefix=key_prefix,
        tenancy=tenancy or _tenancy(settings, authenticator),
        admission=Admission(settings.max_concurrent_rpcs),
        observer=metrics,
        bundles=BundleRpc(context),
    )
    options = [
        ("grpc.max_receive_message_length", settings.max_receive_bytes),
        ("grpc.max_send_message_length", settings.max_receive_bytes),
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
    ]
    interceptors = []
    if authenticator is not None:
        exempt = exempt_prefixes(settings)
        interceptors.append(AuthInterceptor(authenticator, exempt=exempt, observer=metrics))
    grpc_server = grpc.aio.server(options=options, interceptors=interceptors)
    session_service_pb2_grpc.add_SessionServiceServicer_to_server(servicer, grpc_server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, grpc_server)
    reflection.enable_server_reflection(
        [
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ],
        grpc_server,
    )
    health_server = None
    if settings.health_listen:
        # Plaintext and health only: kubelet's gRPC probes cannot do TLS or tokens.
        health_server = grpc.aio.server(options=options)
        health_pb2_grpc.add_HealthServicer_to_server(health, health_server)
    return Server(
        grpc_server=grpc_server,
        settings=settings,
        health=health,
        metrics=metrics,
        store=store,
        context=context,
        servicer=servicer,
        tls=tls,
        authenticator=authenticator,
        health_server=health_server,
    )


def _tenancy(settings: Settings, authenticator: Authenticator | None) -> Tenancy:
    """The tenant of a call: from its bearer token when authentication is on."""
    if authenticator is None:
        return SingleTenant(settings.tenant)
    return TokenTenancy(authenticator)
