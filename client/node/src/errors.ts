/**
 * Typed errors of sessiond, mirroring `client/sessiond/errors.py`.
 *
 * Every failed sessiond call carries a `google.rpc.Status` in the
 * `grpc-status-details-bin` trailer with exactly one `google.rpc.ErrorInfo`
 * (domain "sessiond", an UPPER_SNAKE reason, every dynamic value in metadata).
 * {@link fromServiceError} decodes it and returns the class of that reason, so
 * callers write `if (e instanceof SessionBusy)` instead of parsing messages.
 */
import { fromBinary } from "@bufbuild/protobuf";
import { anyUnpack } from "@bufbuild/protobuf/wkt";
import { status as GrpcStatus, type Metadata } from "@grpc/grpc-js";

import { ErrorInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { StatusSchema } from "./gen/google/rpc/status_pb.js";

/** The `ErrorInfo.domain` of every sessiond error. */
export const ERROR_DOMAIN = "sessiond";

/** The trailer that carries the serialized `google.rpc.Status`. */
export const STATUS_DETAILS_KEY = "grpc-status-details-bin";

/** Base of every sessiond error. */
export class SessiondError extends Error {
  /** The gRPC status code name the class stands for, e.g. "NOT_FOUND". */
  static readonly code: string = "INTERNAL";
  /** The ErrorInfo reason the class stands for, e.g. "SESSION_NOT_FOUND". */
  static readonly reason: string = "INTERNAL";

  /** The gRPC status code name of this failure. */
  readonly code: string;
  /** The ErrorInfo reason of this failure (the class's reason when the server sent none). */
  readonly reason: string;
  /** Every dynamic value of the error (`session_id`, `lease_expire_time`, `field`...). */
  readonly metadata: Readonly<Record<string, string>>;
  /** The numeric gRPC status code. */
  readonly grpcCode: number;

  constructor(
    message: string,
    options: { code?: string; reason?: string; metadata?: Record<string, string> } = {},
  ) {
    super(message);
    const cls = new.target as typeof SessiondError;
    this.name = cls.name;
    this.code = options.code ?? cls.code;
    this.reason = options.reason ?? cls.reason;
    this.metadata = Object.freeze({ ...(options.metadata ?? {}) });
    this.grpcCode = (GrpcStatus as unknown as Record<string, number>)[this.code] ?? GrpcStatus.UNKNOWN;
  }
}

// INVALID_ARGUMENT -------------------------------------------------------------

/** A request field is malformed or out of range. */
export class InvalidArgument extends SessiondError {
  static override readonly code: string = "INVALID_ARGUMENT";
  static override readonly reason: string = "INVALID_ARGUMENT";
}
/** An id (session, agent, review, request, prefix) is not acceptable. */
export class InvalidId extends InvalidArgument {
  static override readonly reason: string = "INVALID_ID";
}
/** A message or content block does not have a valid Converse shape. */
export class InvalidContent extends InvalidArgument {
  static override readonly reason: string = "INVALID_CONTENT";
}
/** A message, state, snapshot or update exceeds a size limit (metadata `limit`). */
export class MessageTooLarge extends InvalidArgument {
  static override readonly reason: string = "MESSAGE_TOO_LARGE";
}
/** A page token is malformed, forged, or was made for another request. */
export class InvalidPageToken extends InvalidArgument {
  static override readonly reason: string = "INVALID_PAGE_TOKEN";
}
/** An import bundle is malformed or its checksums do not match. */
export class BundleInvalid extends InvalidArgument {
  static override readonly reason: string = "BUNDLE_INVALID";
}
/** The conversation sent to a server-side engine's model exceeds its context window. */
export class ContextTooLong extends InvalidArgument {
  static override readonly reason: string = "CONTEXT_TOO_LONG";
}

// NOT_FOUND / ALREADY_EXISTS ---------------------------------------------------

/** Base of the NOT_FOUND errors. */
export class NotFoundError extends SessiondError {
  static override readonly code: string = "NOT_FOUND";
  static override readonly reason: string = "NOT_FOUND";
}
/** No such session in the caller's tenant. */
export class SessionNotFound extends NotFoundError {
  static override readonly reason: string = "SESSION_NOT_FOUND";
}
/** No such review request. */
export class ReviewNotFound extends NotFoundError {
  static override readonly reason: string = "REVIEW_NOT_FOUND";
}
/** A session with this id exists already. */
export class SessionAlreadyExists extends SessiondError {
  static override readonly code: string = "ALREADY_EXISTS";
  static override readonly reason: string = "SESSION_ALREADY_EXISTS";
}

// FAILED_PRECONDITION ------------------------------------------------------------

/** The session is not in a state that allows the operation. */
export class FailedPrecondition extends SessiondError {
  static override readonly code: string = "FAILED_PRECONDITION";
  static override readonly reason: string = "FAILED_PRECONDITION";
}
/** The operation is not allowed in the session's current status. */
export class InvalidTransition extends FailedPrecondition {
  static override readonly reason: string = "INVALID_TRANSITION";
}
/** The session is archived; unarchive it first. */
export class SessionArchived extends FailedPrecondition {
  static override readonly reason: string = "SESSION_ARCHIVED";
}
/** The turn cannot resume while review requests wait for a decision (metadata `pending`). */
export class ReviewsPending extends FailedPrecondition {
  static override readonly reason: string = "REVIEWS_PENDING";
}
/** A review decision names a tool call that is no longer the one under review. */
export class FingerprintMismatch extends FailedPrecondition {
  static override readonly reason: string = "FINGERPRINT_MISMATCH";
}
/** The turn runs on the caller's runtime: resume it with `run(..., { resume: true })`. */
export class RuntimeRequired extends FailedPrecondition {
  static override readonly reason: string = "RUNTIME_REQUIRED";
}
/** A server-side engine's model endpoint refused the operator's credentials. */
export class EngineUnauthorized extends FailedPrecondition {
  static override readonly reason: string = "ENGINE_UNAUTHORIZED";
}
/** A server-side engine's model endpoint refused the request (unknown model, bad parameters). */
export class EngineRejected extends FailedPrecondition {
  static override readonly reason: string = "ENGINE_REJECTED";
}

// ABORTED --------------------------------------------------------------------------

/** A concurrency conflict; retrying later may succeed. */
export class Aborted extends SessiondError {
  static override readonly code: string = "ABORTED";
  static override readonly reason: string = "ABORTED";
}
/** Another runner holds the session's lease. */
export class SessionBusy extends Aborted {
  static override readonly reason: string = "SESSION_BUSY";

  /** When the other runner's lease expires (RFC 3339 text), if the server said. */
  get leaseExpireTime(): string | undefined {
    return this.metadata["lease_expire_time"];
  }
}
/** This runner lost its lease to another; its uncommitted work was discarded. */
export class SessionFenced extends Aborted {
  static override readonly reason: string = "SESSION_FENCED";
}
/** The session changed since the etag the caller sent. */
export class EtagMismatch extends Aborted {
  static override readonly reason: string = "ETAG_MISMATCH";
}
/** Too many concurrent changes; the operation gave up retrying. */
export class ConcurrentModification extends Aborted {
  static override readonly reason: string = "CONCURRENT_MODIFICATION";
}

// DATA_LOSS / UNAVAILABLE / others ---------------------------------------------------

/** A stored object of the session cannot be read. */
export class CorruptObject extends SessiondError {
  static override readonly code: string = "DATA_LOSS";
  static override readonly reason: string = "CORRUPT_OBJECT";
}
/** The service cannot complete the call right now; retry later. */
export class Unavailable extends SessiondError {
  static override readonly code: string = "UNAVAILABLE";
  static override readonly reason: string = "UNAVAILABLE";
}
/** The object store failed; nothing was changed. */
export class StoreUnavailableError extends Unavailable {
  static override readonly reason: string = "STORE_UNAVAILABLE";
}
/** A commit may or may not have applied; retry with the same request id. */
export class CommitUnknown extends Unavailable {
  static override readonly reason: string = "COMMIT_UNKNOWN";
}
/** The server is shutting down; retry on another replica. */
export class ShuttingDown extends Unavailable {
  static override readonly reason: string = "SHUTTING_DOWN";
}
/** A server-side engine's model endpoint cannot be reached or failed; retry later. */
export class EngineUnavailable extends Unavailable {
  static override readonly reason: string = "ENGINE_UNAVAILABLE";
}
/** The call's deadline passed before it completed. */
export class DeadlineExceeded extends SessiondError {
  static override readonly code: string = "DEADLINE_EXCEEDED";
  static override readonly reason: string = "DEADLINE_EXCEEDED";
}
/** A server-side engine's model did not answer within the engine's timeout. */
export class EngineTimeout extends DeadlineExceeded {
  static override readonly reason: string = "ENGINE_TIMEOUT";
}
/** The caller's runtime did not return tool results within the tool result timeout. */
export class ToolResultTimeout extends DeadlineExceeded {
  static override readonly reason: string = "TOOL_RESULT_TIMEOUT";
}
/** Too many concurrent calls; retry later. */
export class Overloaded extends SessiondError {
  static override readonly code: string = "RESOURCE_EXHAUSTED";
  static override readonly reason: string = "OVERLOADED";
}
/** A server-side engine's model endpoint is rate limiting sessiond; retry later. */
export class EngineRateLimited extends Overloaded {
  static override readonly reason: string = "ENGINE_RATE_LIMITED";
}
/** A server-engine turn asked for more rounds of tool calls than the server allows. */
export class ToolRoundsExceeded extends SessiondError {
  static override readonly code: string = "RESOURCE_EXHAUSTED";
  static override readonly reason: string = "TOOL_ROUNDS_EXCEEDED";
}
/** The call carries no valid credentials. */
export class Unauthenticated extends SessiondError {
  static override readonly code: string = "UNAUTHENTICATED";
  static override readonly reason: string = "UNAUTHENTICATED";
}
/** The caller may not do this. */
export class PermissionDenied extends SessiondError {
  static override readonly code: string = "PERMISSION_DENIED";
  static override readonly reason: string = "PERMISSION_DENIED";
}
/** An unexpected server error (or a status this client does not know). */
export class InternalError extends SessiondError {
  static override readonly code: string = "INTERNAL";
  static override readonly reason: string = "INTERNAL";
}

/** Every error class, in the order of `sessiond.errors`. */
export const ERROR_CLASSES: ReadonlyArray<typeof SessiondError> = [
  SessiondError,
  InvalidArgument,
  InvalidId,
  InvalidContent,
  MessageTooLarge,
  InvalidPageToken,
  BundleInvalid,
  ContextTooLong,
  NotFoundError,
  SessionNotFound,
  ReviewNotFound,
  SessionAlreadyExists,
  FailedPrecondition,
  InvalidTransition,
  SessionArchived,
  ReviewsPending,
  FingerprintMismatch,
  RuntimeRequired,
  EngineUnauthorized,
  EngineRejected,
  Aborted,
  SessionBusy,
  SessionFenced,
  EtagMismatch,
  ConcurrentModification,
  CorruptObject,
  Unavailable,
  StoreUnavailableError,
  CommitUnknown,
  ShuttingDown,
  EngineUnavailable,
  DeadlineExceeded,
  EngineTimeout,
  ToolResultTimeout,
  Overloaded,
  EngineRateLimited,
  ToolRoundsExceeded,
  Unauthenticated,
  PermissionDenied,
  InternalError,
];

const BY_REASON = new Map<string, typeof SessiondError>(
  ERROR_CLASSES.map((cls) => [`${cls.code}/${cls.reason}`, cls]),
);

const BASE_BY_CODE: Record<string, typeof SessiondError> = {
  INVALID_ARGUMENT: InvalidArgument,
  NOT_FOUND: NotFoundError,
  ALREADY_EXISTS: SessionAlreadyExists,
  FAILED_PRECONDITION: FailedPrecondition,
  ABORTED: Aborted,
  DATA_LOSS: CorruptObject,
  UNAVAILABLE: Unavailable,
  DEADLINE_EXCEEDED: DeadlineExceeded,
  RESOURCE_EXHAUSTED: Overloaded,
  UNAUTHENTICATED: Unauthenticated,
  PERMISSION_DENIED: PermissionDenied,
};

/**
 * The typed error for a status code name and ErrorInfo reason. Unknown
 * reasons fall back to the base class of the code (as the Python client
 * does), so a newer server never makes an older client fail to raise; the
 * instance keeps the code and reason actually received.
 */
export function errorFromStatus(
  code: string,
  reason: string | undefined,
  message: string,
  metadata: Record<string, string> = {},
): SessiondError {
  const cls =
    BY_REASON.get(`${code}/${reason ?? ""}`) ?? BASE_BY_CODE[code] ?? InternalError;
  return new cls(message, { code, reason: reason || cls.reason, metadata });
}

/** The `ErrorInfo` (domain sessiond) of a status-details trailer, if any. */
export function decodeErrorInfo(
  details: Uint8Array | undefined,
): { reason: string; metadata: Record<string, string> } | undefined {
  if (!details || details.length === 0) return undefined;
  try {
    const status = fromBinary(StatusSchema, details);
    for (const detail of status.details) {
      const info = anyUnpack(detail, ErrorInfoSchema);
      if (info && info.domain === ERROR_DOMAIN) {
        return { reason: info.reason, metadata: { ...info.metadata } };
      }
    }
  } catch {
    // Malformed details: fall back to the bare status code.
  }
  return undefined;
}

/** A gRPC failure as grpc-js reports it (`ServiceError`). */
export interface GrpcFailure extends Error {
  code?: number;
  details?: string;
  metadata?: Metadata;
}

/** The typed sessiond error carried by a failed grpc-js call. */
export function fromServiceError(error: GrpcFailure): SessiondError {
  if (error instanceof SessiondError) return error;
  const numeric = typeof error.code === "number" ? error.code : GrpcStatus.UNKNOWN;
  const code = GrpcStatus[numeric] ?? "UNKNOWN";
  const raw = error.metadata?.get(STATUS_DETAILS_KEY)?.[0];
  const info = decodeErrorInfo(
    raw === undefined ? undefined : typeof raw === "string" ? Buffer.from(raw, "base64") : raw,
  );
  const message = error.details ?? error.message;
  const failure = errorFromStatus(code, info?.reason, message, info?.metadata);
  return failure;
}
