"""What every RPC handler shares: tenant resolution, deadlines, error mapping, metrics.

Handlers stay thin: each is wrapped by :func:`unary` or :func:`streaming`,
which resolve the caller's tenant, map any failure to a gRPC status in one
place (``errors.abort``) and record the call's code and latency.

Deadlines propagate: a unary handler runs under ``asyncio.timeout`` set a
little before the caller's deadline (``context.time_remaining()``), so a slow
store stops being waited for and the call ends with ``DEADLINE_EXCEEDED``
while the caller still listens. The cancellation unwinds the handler like any
other: a turn cancelled mid-commit releases its lease (or leaves files that
readers ignore, since they trust the head). Streaming handlers are left to
gRPC's own cancellation at the deadline (a timeout scope cannot span the
``yield`` of an async generator safely).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar

import grpc

from sessiond.errors import DeadlineExceeded, Overloaded
from sessiond.server.api.errors import abort, as_domain_error
from sessiond.server.domain.keys import TenantKeys

#: The tenant of the call being served (for logs).
current_tenant: ContextVar[str] = ContextVar("sessiond_tenant", default="-")
#: The method of the call being served (for logs).
current_method: ContextVar[str] = ContextVar("sessiond_method", default="-")


class RpcObserver(Protocol):
    """Receives one record per finished call."""

    def rpc_done(self, method: str, code: str, seconds: float, reason: str = "") -> None:
        """Records a finished call (``reason``: its ErrorInfo reason, "" when it succeeded)."""
        ...


class Tenancy(Protocol):
    """Decides which tenant a call belongs to (from its authenticated identity)."""

    def tenant_of(self, context: grpc.aio.ServicerContext) -> str:
        """The caller's tenant; raises a SessiondError when the caller is not allowed."""
        ...


class SingleTenant:
    """No authentication: every caller is the one tenant (``default``)."""

    def __init__(self, tenant: str = "default") -> None:
        self.tenant = tenant

    def tenant_of(self, context: grpc.aio.ServicerContext) -> str:
        """Always the configured tenant."""
        return self.tenant


class Admission:
    """Bounds concurrent SessionService calls; beyond the bound, fail fast.

    gRPC's own ``maximum_concurrent_rpcs`` counts every call, health checks
    included, so an overloaded server would fail its Kubernetes probes. This
    counts only SessionService calls, with separate budgets for unary calls
    and streams (a Run stream holds its slot for its whole life), and refuses
    extra ones at once with ``RESOURCE_EXHAUSTED`` / ``OVERLOADED``.
    """

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self._active = {"unary": 0, "stream": 0}

    def enter(self, kind: str) -> None:
        """Takes a slot or raises ``Overloaded``."""
        if self.limit is not None and self._active[kind] >= self.limit:
            raise Overloaded(
                "too many concurrent calls; retry shortly", limit=self.limit, kind=kind
            )
        self._active[kind] += 1

    def leave(self, kind: str) -> None:
        """Gives a slot back."""
        self._active[kind] -= 1


class CallHost(Protocol):
    """What a servicer provides to the wrappers."""

    tenancy: Tenancy
    observer: RpcObserver
    admission: Admission
    #: Where a tenant's keys live (``--tenant-prefix``).
    key_prefix: str


R = TypeVar("R")

#: The server gives up this long before the caller's deadline (at most), so
#: its DEADLINE_EXCEEDED arrives while the caller still waits...
DEADLINE_MARGIN_SECONDS = 0.05
#: ...but never more than this fraction of the time the call has left.
DEADLINE_MARGIN_FRACTION = 0.1


def handler_budget(context: grpc.aio.ServicerContext) -> float | None:
    """Seconds a handler may run: the call's time remaining less a small margin.

    None when the caller set no deadline.
    """
    try:
        remaining = context.time_remaining()
    except Exception:  # a test double without deadlines
        return None
    if remaining is None:
        return None
    margin = min(DEADLINE_MARGIN_SECONDS, remaining * DEADLINE_MARGIN_FRACTION)
    return max(0.0, remaining - margin)


async def within_deadline(call: Awaitable[R], budget: float | None) -> R:
    """Awaits ``call`` under ``budget`` seconds (None: no limit).

    Raises:
        DeadlineExceeded: The budget ran out (the call was cancelled).
    """
    if budget is None:
        return await call
    try:
        async with asyncio.timeout(budget) as scope:
            return await call
    except TimeoutError:
        if scope.expired():
            raise DeadlineExceeded(
                "the call's deadline passed before it completed", budget_seconds=f"{budget:.3f}"
            ) from None
        raise  # a TimeoutError of the handler's own


def _keys(host: CallHost, context: grpc.aio.ServicerContext) -> TenantKeys:
    tenant = host.tenancy.tenant_of(context)
    current_tenant.set(tenant)
    return TenantKeys(tenant, host.key_prefix)


def unary(
    name: str,
) -> Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]:
    """Wraps a unary-response handler ``fn(self, request, context, keys)``.

    The handler runs under the caller's deadline (see :func:`handler_budget`).
    """

    def wrap(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        @functools.wraps(fn)
        async def handler(self: CallHost, request: Any, context: grpc.aio.ServicerContext) -> R:
            current_method.set(name)
            started, code, reason, admitted = time.perf_counter(), "OK", "", False
            try:
                self.admission.enter("unary")
                admitted = True
                keys = _keys(self, context)
                return await within_deadline(
                    fn(self, request, context, keys), handler_budget(context)
                )
            except grpc.aio.AbortError:
                code = "ABORTED_BY_HANDLER"
                raise
            except Exception as exc:
                error = as_domain_error(exc)
                code, reason = error.code, error.reason
                await abort(context, error)
                raise  # abort raises; this line is never reached
            finally:
                if admitted:
                    self.admission.leave("unary")
                self.observer.rpc_done(name, code, time.perf_counter() - started, reason)

        return handler

    return wrap


def streaming(
    name: str,
) -> Callable[[Callable[..., AsyncIterator[Any]]], Callable[..., AsyncIterator[Any]]]:
    """Wraps a server-streaming handler ``fn(self, request, context, keys)``."""

    def wrap(fn: Callable[..., AsyncIterator[Any]]) -> Callable[..., AsyncIterator[Any]]:
        @functools.wraps(fn)
        async def handler(
            self: CallHost, request: Any, context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            current_method.set(name)
            started, code, reason, admitted = time.perf_counter(), "OK", "", False
            try:
                self.admission.enter("stream")
                admitted = True
                async for item in fn(self, request, context, _keys(self, context)):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                error = as_domain_error(exc)
                code, reason = error.code, error.reason
                await abort(context, error)
            finally:
                if admitted:
                    self.admission.leave("stream")
                self.observer.rpc_done(name, code, time.perf_counter() - started, reason)

        return handler

    return wrap
