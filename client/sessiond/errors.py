"""The closed error hierarchy of sessiond, shared by server and clients.

Every error sessiond reports has a gRPC status code and an UPPER_SNAKE reason.
The server raises these classes in its domain and maps them in exactly one
place to ``google.rpc.Status`` with one ``ErrorInfo`` (domain ``sessiond``);
the Python client maps code + reason back to the same classes. The module is
pure Python (no grpc import) so the server's domain layer can use it.
"""

from __future__ import annotations

from typing import ClassVar

#: The ``ErrorInfo.domain`` of every sessiond error.
ERROR_DOMAIN = "sessiond"


class SessiondError(Exception):
    """Base of every sessiond error.

    Attributes:
        code: The gRPC status code name, e.g. ``"NOT_FOUND"``.
        reason: The ``ErrorInfo`` reason, e.g. ``"SESSION_NOT_FOUND"``.
        message: A human readable message (never contains secrets or raw
            storage-library text).
        metadata: Every dynamic value of the error, as strings.
    """

    code: ClassVar[str] = "INTERNAL"
    reason: ClassVar[str] = "INTERNAL"

    def __init__(self, message: str, **metadata: object) -> None:
        super().__init__(message)
        self.message = message
        self.metadata: dict[str, str] = {k: str(v) for k, v in metadata.items() if v is not None}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, {self.metadata!r})"


# INVALID_ARGUMENT ---------------------------------------------------------------


class InvalidArgument(SessiondError):
    """A request field is malformed or out of range."""

    code = "INVALID_ARGUMENT"
    reason = "INVALID_ARGUMENT"


class InvalidId(InvalidArgument):
    """An id (session, agent, review, request, prefix) is not acceptable."""

    reason = "INVALID_ID"


class InvalidContent(InvalidArgument):
    """A message or content block does not have a valid Converse shape."""

    reason = "INVALID_CONTENT"


class MessageTooLarge(InvalidArgument):
    """A message, state, snapshot or update exceeds a configured size limit."""

    reason = "MESSAGE_TOO_LARGE"


class InvalidPageToken(InvalidArgument):
    """A page token is malformed, forged, or was made for another request."""

    reason = "INVALID_PAGE_TOKEN"


class BundleInvalid(InvalidArgument):
    """An import bundle is malformed or its checksums do not match."""

    reason = "BUNDLE_INVALID"


class ContextTooLong(InvalidArgument):
    """The conversation sent to a server-side engine's model exceeds its context window."""

    reason = "CONTEXT_TOO_LONG"


# NOT_FOUND / ALREADY_EXISTS -----------------------------------------------------


class NotFoundError(SessiondError):
    """Base of the NOT_FOUND errors."""

    code = "NOT_FOUND"
    reason = "NOT_FOUND"


class SessionNotFound(NotFoundError):
    """No such session in the caller's tenant."""

    reason = "SESSION_NOT_FOUND"


class ReviewNotFound(NotFoundError):
    """No such review request."""

    reason = "REVIEW_NOT_FOUND"


class SessionAlreadyExists(SessiondError):
    """A session with this id exists already."""

    code = "ALREADY_EXISTS"
    reason = "SESSION_ALREADY_EXISTS"


# FAILED_PRECONDITION ------------------------------------------------------------


class FailedPrecondition(SessiondError):
    """The session is not in a state that allows the operation."""

    code = "FAILED_PRECONDITION"
    reason = "FAILED_PRECONDITION"


class InvalidTransition(FailedPrecondition):
    """The operation is not allowed in the session's current status."""

    reason = "INVALID_TRANSITION"


class SessionArchived(FailedPrecondition):
    """The session is archived; unarchive it first."""

    reason = "SESSION_ARCHIVED"


class ReviewsPending(FailedPrecondition):
    """The turn cannot resume while review requests wait for a decision."""

    reason = "REVIEWS_PENDING"


class FingerprintMismatch(FailedPrecondition):
    """A review decision names a tool call that is no longer the one under review."""

    reason = "FINGERPRINT_MISMATCH"


class RuntimeRequired(FailedPrecondition):
    """The turn runs on the caller's runtime; resume it with Run."""

    reason = "RUNTIME_REQUIRED"


class EngineUnauthorized(FailedPrecondition):
    """A server-side engine's model endpoint refused the operator's credentials."""

    reason = "ENGINE_UNAUTHORIZED"


class EngineRejected(FailedPrecondition):
    """A server-side engine's model endpoint refused the request (unknown model, bad parameters)."""

    reason = "ENGINE_REJECTED"


# ABORTED ------------------------------------------------------------------------


class Aborted(SessiondError):
    """A concurrency conflict; retrying later may succeed."""

    code = "ABORTED"
    reason = "ABORTED"


class SessionBusy(Aborted):
    """Another runner holds the session's lease (metadata ``lease_expire_time``)."""

    reason = "SESSION_BUSY"

    @property
    def lease_expire_time(self) -> str | None:
        """When the other runner's lease expires (ISO-8601), if known."""
        return self.metadata.get("lease_expire_time")


class SessionFenced(Aborted):
    """This runner lost its lease to another; its uncommitted work was discarded."""

    reason = "SESSION_FENCED"


class EtagMismatch(Aborted):
    """The session changed since the etag the caller sent."""

    reason = "ETAG_MISMATCH"


class ConcurrentModification(Aborted):
    """Too many concurrent changes; the operation gave up retrying."""

    reason = "CONCURRENT_MODIFICATION"


# DATA_LOSS / UNAVAILABLE / others -------------------------------------------------


class CorruptObject(SessiondError):
    """A stored object of the session cannot be read (bad JSON, wrong schema, missing)."""

    code = "DATA_LOSS"
    reason = "CORRUPT_OBJECT"


class Unavailable(SessiondError):
    """The service cannot complete the call right now; retry later."""

    code = "UNAVAILABLE"
    reason = "UNAVAILABLE"


class StoreUnavailableError(Unavailable):
    """The object store failed; nothing was changed."""

    reason = "STORE_UNAVAILABLE"


class CommitUnknown(Unavailable):
    """A commit may or may not have applied; retry with the same request_id."""

    reason = "COMMIT_UNKNOWN"


class ShuttingDown(Unavailable):
    """The server is shutting down; retry on another replica."""

    reason = "SHUTTING_DOWN"


class EngineUnavailable(Unavailable):
    """A server-side engine's model endpoint cannot be reached or failed; retry later."""

    reason = "ENGINE_UNAVAILABLE"


class DeadlineExceeded(SessiondError):
    """The call's deadline passed before it completed."""

    code = "DEADLINE_EXCEEDED"
    reason = "DEADLINE_EXCEEDED"


class EngineTimeout(DeadlineExceeded):
    """A server-side engine's model did not answer within the engine's timeout."""

    reason = "ENGINE_TIMEOUT"


class ToolResultTimeout(DeadlineExceeded):
    """The caller's runtime did not return tool results within the tool result timeout."""

    reason = "TOOL_RESULT_TIMEOUT"


class Overloaded(SessiondError):
    """Too many concurrent calls; retry later."""

    code = "RESOURCE_EXHAUSTED"
    reason = "OVERLOADED"


class EngineRateLimited(Overloaded):
    """A server-side engine's model endpoint is rate limiting sessiond; retry later."""

    reason = "ENGINE_RATE_LIMITED"


class ToolRoundsExceeded(SessiondError):
    """A server-engine turn asked for more rounds of tool calls than the server allows."""

    code = "RESOURCE_EXHAUSTED"
    reason = "TOOL_ROUNDS_EXCEEDED"


class Unauthenticated(SessiondError):
    """The call carries no valid credentials."""

    code = "UNAUTHENTICATED"
    reason = "UNAUTHENTICATED"


class PermissionDenied(SessiondError):
    """The caller may not do this."""

    code = "PERMISSION_DENIED"
    reason = "PERMISSION_DENIED"


class InternalError(SessiondError):
    """An unexpected server error."""

    code = "INTERNAL"
    reason = "INTERNAL"


def _all_subclasses(cls: type[SessiondError]) -> list[type[SessiondError]]:
    found: list[type[SessiondError]] = []
    for sub in cls.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


#: Every error class by its ``(code, reason)``.
ERRORS_BY_REASON: dict[tuple[str, str], type[SessiondError]] = {
    (cls.code, cls.reason): cls for cls in [SessiondError, *_all_subclasses(SessiondError)]
}

_BASE_BY_CODE: dict[str, type[SessiondError]] = {
    "INVALID_ARGUMENT": InvalidArgument,
    "NOT_FOUND": NotFoundError,
    "ALREADY_EXISTS": SessionAlreadyExists,
    "FAILED_PRECONDITION": FailedPrecondition,
    "ABORTED": Aborted,
    "DATA_LOSS": CorruptObject,
    "UNAVAILABLE": Unavailable,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "RESOURCE_EXHAUSTED": Overloaded,
    "UNAUTHENTICATED": Unauthenticated,
    "PERMISSION_DENIED": PermissionDenied,
}


def error_from_status(
    code: str, reason: str | None, message: str, metadata: dict[str, str] | None = None
) -> SessiondError:
    """Rebuilds the typed error for a gRPC status code name and ErrorInfo reason.

    Unknown reasons fall back to the base class of the code, so a newer server
    never makes an older client fail to raise.
    """
    cls = ERRORS_BY_REASON.get((code, reason or "")) or _BASE_BY_CODE.get(code, InternalError)
    error = cls(message, **(metadata or {}))
    return error
