"""Authentication of callers: bearer tokens checked before any handler runs.

Authentication is on when any token source is configured: a static token
file (``auth_tokens_file``, :mod:`~sessiond.server.api.tokens`) and/or JWT
verification (``auth_jwt_key_file``, ``auth_jwks_file``,
``auth_jwt_secret_file``, :mod:`~sessiond.server.api.jwt_auth`). Every call
then needs ``authorization: Bearer <token>``.

Two pieces use the same :class:`Authenticator`:

- :class:`AuthInterceptor` refuses a call without valid credentials with
  ``UNAUTHENTICATED`` (one ``ErrorInfo``, through ``api/errors.py``) before
  any handler runs or any admission slot is taken; health checks and
  reflection are exempt per settings.
- :class:`TokenTenancy` resolves the tenant of SessionService calls from the
  same credential, in the handler (``calls._keys``). The tenant only ever
  comes from the credential, never from a request field or from state the
  interceptor left behind.

Nothing here logs, stores or returns a token: failures carry a fixed message
and a ``problem`` word (``missing``, ``malformed``, ``invalid``, ``expired``...).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import grpc

from sessiond.errors import SessiondError, Unauthenticated
from sessiond.server.api.calls import RpcObserver
from sessiond.server.api.errors import abort
from sessiond.server.api.jwt_auth import JwtVerifier
from sessiond.server.api.tokens import TokenFile
from sessiond.server.ops.settings import Settings

log = logging.getLogger("sessiond.server.auth")

#: Longest bearer token looked at (gRPC's default metadata limit is 8 KiB).
MAX_TOKEN_CHARS = 8192
#: How long a refused streaming call waits for its first request message.
FIRST_MESSAGE_WAIT_SECONDS = 1.0
HEALTH_PREFIX = "/grpc.health.v1.Health/"
REFLECTION_PREFIXES = (
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    Attributes:
        tenant: The tenant every storage key of the call is built from.
        subject: Who, for logs: ``token:<id>`` (a digest prefix) or the JWT's ``sub``.
        source: ``token-file`` or ``jwt``.
    """

    tenant: str
    subject: str
    source: str


def bearer_token(metadata: Iterable[Any] | None) -> str:
    """The token of the call's one ``authorization: Bearer <token>`` header.

    Raises:
        Unauthenticated: No header, several, another scheme, or an oversized token.
    """
    values = [value for key, value in (metadata or ()) if key.lower() == "authorization"]
    if not values:
        raise Unauthenticated(
            "this server requires a bearer token (authorization: Bearer <token>)",
            problem="missing",
        )
    if len(values) > 1 or not isinstance(values[0], str):
        raise Unauthenticated("send exactly one authorization header", problem="malformed")
    scheme, _, token = values[0].strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or len(token) > MAX_TOKEN_CHARS:
        raise Unauthenticated(
            "the authorization header must be 'Bearer <token>'", problem="malformed"
        )
    return token


class Authenticator:
    """Checks a call's bearer token against the token file, then JWT verification.

    Args:
        tokens: The static token file, if configured.
        jwt: The JWT verifier, if configured.
    """

    def __init__(self, tokens: TokenFile | None = None, jwt: JwtVerifier | None = None) -> None:
        if tokens is None and jwt is None:
            raise ValueError("an Authenticator needs a token file or a JWT verifier")
        self.tokens = tokens
        self.jwt = jwt

    @property
    def sources(self) -> list[str]:
        """The configured sources, for the startup log."""
        return [name for name, on in (("token-file", self.tokens), ("jwt", self.jwt)) if on]

    def authenticate(self, metadata: Iterable[Any] | None) -> Principal:
        """The caller of a call with this metadata.

        Raises:
            Unauthenticated: Missing or invalid credentials.
            PermissionDenied: A valid JWT without a usable tenant claim.
        """
        token = bearer_token(metadata)
        if self.tokens is not None:
            entry = self.tokens.lookup(token)
            if entry is not None:
                return Principal(entry.tenant, f"token:{entry.token_id}", "token-file")
        if self.jwt is not None and token.count(".") == 2:
            identity = self.jwt.verify(token)
            return Principal(identity.tenant, identity.subject, "jwt")
        raise Unauthenticated("the bearer token is not valid", problem="invalid")

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator | None:
        """The authenticator of these settings; None when authentication is off.

        Raises:
            ConfigurationError: A token or key file cannot be read or is invalid.
        """
        tokens = (
            TokenFile(settings.auth_tokens_file, reload_seconds=settings.auth_reload_seconds)
            if settings.auth_tokens_file
            else None
        )
        jwt_on = settings.auth_jwt_key_file or settings.auth_jwks_file
        jwt = JwtVerifier(settings) if jwt_on or settings.auth_jwt_secret_file else None
        if tokens is None and jwt is None:
            return None
        return cls(tokens, jwt)


class TokenTenancy:
    """The tenant of a call is the one its bearer token names (see :class:`Authenticator`)."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator

    def tenant_of(self, context: grpc.aio.ServicerContext) -> str:
        """The caller's tenant; raises ``Unauthenticated`` / ``PermissionDenied``."""
        return self.authenticator.authenticate(context.invocation_metadata()).tenant


def exempt_prefixes(settings: Settings) -> tuple[str, ...]:
    """Method prefixes that need no credentials under these settings."""
    prefixes: tuple[str, ...] = ()
    if settings.auth_exempt_health:
        prefixes += (HEALTH_PREFIX,)
    if settings.auth_exempt_reflection:
        prefixes += REFLECTION_PREFIXES
    return prefixes


Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without valid credentials before their handler runs.

    Args:
        authenticator: Checks the credentials.
        exempt: Method prefixes served without credentials.
        observer: Counts refused calls (method, ``UNAUTHENTICATED``...).
    """

    def __init__(
        self,
        authenticator: Authenticator,
        *,
        exempt: tuple[str, ...] = (HEALTH_PREFIX,),
        observer: RpcObserver | None = None,
    ) -> None:
        self.authenticator = authenticator
        self.exempt = exempt
        self.observer = observer

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        """Passes authenticated (or exempt) calls on; answers the others with the error."""
        method = handler_call_details.method
        if method.startswith(self.exempt):
            return await continuation(handler_call_details)
        try:
            self.authenticator.authenticate(handler_call_details.invocation_metadata)
        except Exception as exc:
            error = exc if isinstance(exc, SessiondError) else _unexpected(exc)
            name = method.rsplit("/", 1)[-1]
            log.info(
                "call refused: %s",
                error.code,
                extra={"rpc": method, "problem": error.metadata.get("problem", "")},
            )
            if self.observer is not None:
                self.observer.rpc_done(name, error.code, 0.0, error.reason)
            handler = await continuation(handler_call_details)
            return refusing_handler(handler, error)
        return await continuation(handler_call_details)


def _unexpected(exc: Exception) -> SessiondError:
    """A bug while checking credentials refuses the call (fail closed) and is logged."""
    log.error("credential check failed unexpectedly", exc_info=exc)
    return Unauthenticated("the bearer token is not valid", problem="invalid")


def refusing_handler(
    handler: grpc.RpcMethodHandler | None, error: SessiondError
) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that only fails with ``error``.

    For an unknown method (``handler`` None) it is a unary handler: an
    unauthenticated caller learns nothing about which methods exist.
    """

    streamed_request = handler is not None and handler.request_streaming

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if streamed_request:
            # Ending a call before its first request message arrives races
            # with the client's write of it: the client may then see INTERNAL
            # instead of this status. Wait for that message (briefly) first.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(FIRST_MESSAGE_WAIT_SECONDS):
                    async for _ in request:
                        break
        await abort(context, error)

    async def refuse_streaming(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await refuse(request, context)
        yield  # pragma: no cover - an async generator that never yields

    if handler is None:
        return grpc.unary_unary_rpc_method_handler(refuse)
    shape = (handler.request_streaming, handler.response_streaming)
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[shape]
    behavior = refuse_streaming if handler.response_streaming else refuse
    return make(
        behavior,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
