"""The one place that turns domain errors into gRPC statuses.

Every failure leaves the server as ``google.rpc.Status`` with exactly one
``google.rpc.ErrorInfo`` (domain ``sessiond``, an UPPER_SNAKE reason, every
dynamic value in metadata). Unexpected exceptions become ``INTERNAL`` with a
generic message; their text (which may contain storage-library details) only
goes to the log.
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sessiond.errors import ERROR_DOMAIN, InternalError, SessiondError

log = logging.getLogger("sessiond.api")


def status_code(error: SessiondError) -> grpc.StatusCode:
    """The gRPC status code of a domain error."""
    return grpc.StatusCode[error.code]


def to_status(error: SessiondError) -> grpc.Status:
    """A domain error as a gRPC status with rich details."""
    info = error_details_pb2.ErrorInfo(
        reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
    )
    detail = any_pb2.Any()
    detail.Pack(info)
    return rpc_status.to_status(
        status_pb2.Status(
            code=getattr(code_pb2, error.code),
            message=error.message,
            details=[detail],
        )
    )


def as_domain_error(exc: BaseException) -> SessiondError:
    """Any exception as a domain error; unexpected ones become INTERNAL (and are logged)."""
    if isinstance(exc, SessiondError):
        return exc
    log.error("unexpected error", exc_info=exc)
    return InternalError("internal error")


async def abort(context: grpc.aio.ServicerContext, error: SessiondError) -> None:
    """Ends the call with the error's status (raises, as ``context.abort`` does)."""
    status = to_status(error)
    await context.abort(status.code, status.details, status.trailing_metadata)
