"""Turning gRPC failures back into sessiond's typed exceptions."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from sessiond.errors import ERROR_DOMAIN, SessiondError, error_from_status


def from_rpc_error(error: grpc.RpcError) -> SessiondError:
    """The typed sessiond error carried by a failed call.

    Uses the ``ErrorInfo`` in ``grpc-status-details-bin`` when present, and
    the bare status code otherwise (transport errors such as UNAVAILABLE).
    """
    code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
    message = error.details() if hasattr(error, "details") else str(error)
    reason, metadata = None, {}
    try:
        status = rpc_status.from_call(error)  # type: ignore[arg-type]
    except Exception:  # malformed details: fall back to the code
        status = None
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Is(info.DESCRIPTOR) and detail.Unpack(info) and info.domain == ERROR_DOMAIN:
                reason, metadata = info.reason, dict(info.metadata)
                break
    return error_from_status(code.name, reason, message or "", metadata)
