import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from sessiond.v1 import content_pb2 as _content_pb2
from sessiond.v1 import session_pb2 as _session_pb2
from sessiond.v1 import turn_pb2 as _turn_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ImportConflictPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMPORT_CONFLICT_POLICY_UNSPECIFIED: _ClassVar[ImportConflictPolicy]
    IMPORT_CONFLICT_POLICY_FAIL: _ClassVar[ImportConflictPolicy]
    IMPORT_CONFLICT_POLICY_SKIP: _ClassVar[ImportConflictPolicy]

class ArchivedFilter(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARCHIVED_FILTER_UNSPECIFIED: _ClassVar[ArchivedFilter]
    ARCHIVED_FILTER_EXCLUDE: _ClassVar[ArchivedFilter]
    ARCHIVED_FILTER_INCLUDE: _ClassVar[ArchivedFilter]
    ARCHIVED_FILTER_ONLY: _ClassVar[ArchivedFilter]
IMPORT_CONFLICT_POLICY_UNSPECIFIED: ImportConflictPolicy
IMPORT_CONFLICT_POLICY_FAIL: ImportConflictPolicy
IMPORT_CONFLICT_POLICY_SKIP: ImportConflictPolicy
ARCHIVED_FILTER_UNSPECIFIED: ArchivedFilter
ARCHIVED_FILTER_EXCLUDE: ArchivedFilter
ARCHIVED_FILTER_INCLUDE: ArchivedFilter
ARCHIVED_FILTER_ONLY: ArchivedFilter

class StartRequest(_message.Message):
    __slots__ = ("session_id", "agent_id", "title", "labels", "metadata", "parent_session_id", "request_id", "return_existing", "agent_state_json")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PARENT_SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    RETURN_EXISTING_FIELD_NUMBER: _ClassVar[int]
    AGENT_STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    agent_id: str
    title: str
    labels: _containers.ScalarMap[str, str]
    metadata: _containers.ScalarMap[str, str]
    parent_session_id: str
    request_id: str
    return_existing: bool
    agent_state_json: str
    def __init__(self, session_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., title: _Optional[str] = ..., labels: _Optional[_Mapping[str, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., parent_session_id: _Optional[str] = ..., request_id: _Optional[str] = ..., return_existing: _Optional[bool] = ..., agent_state_json: _Optional[str] = ...) -> None: ...

class StartResponse(_message.Message):
    __slots__ = ("session", "created")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    CREATED_FIELD_NUMBER: _ClassVar[int]
    session: _session_pb2.Session
    created: bool
    def __init__(self, session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ..., created: _Optional[bool] = ...) -> None: ...

class RunRequest(_message.Message):
    __slots__ = ("open", "append", "finish", "hibernate", "fail", "tool_results")
    OPEN_FIELD_NUMBER: _ClassVar[int]
    APPEND_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    HIBERNATE_FIELD_NUMBER: _ClassVar[int]
    FAIL_FIELD_NUMBER: _ClassVar[int]
    TOOL_RESULTS_FIELD_NUMBER: _ClassVar[int]
    open: RunOpen
    append: RunAppend
    finish: RunFinish
    hibernate: RunHibernate
    fail: RunFail
    tool_results: ToolResults
    def __init__(self, open: _Optional[_Union[RunOpen, _Mapping]] = ..., append: _Optional[_Union[RunAppend, _Mapping]] = ..., finish: _Optional[_Union[RunFinish, _Mapping]] = ..., hibernate: _Optional[_Union[RunHibernate, _Mapping]] = ..., fail: _Optional[_Union[RunFail, _Mapping]] = ..., tool_results: _Optional[_Union[ToolResults, _Mapping]] = ...) -> None: ...

class RunOpen(_message.Message):
    __slots__ = ("session_id", "agent_id", "input", "resume", "engine", "checkpoint", "request_id", "history_limit", "tools", "model")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    RESUME_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    agent_id: str
    input: _content_pb2.Message
    resume: bool
    engine: str
    checkpoint: _turn_pb2.CheckpointPolicy
    request_id: str
    history_limit: int
    tools: _containers.RepeatedCompositeFieldContainer[ToolSpec]
    model: str
    def __init__(self, session_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., input: _Optional[_Union[_content_pb2.Message, _Mapping]] = ..., resume: _Optional[bool] = ..., engine: _Optional[str] = ..., checkpoint: _Optional[_Union[_turn_pb2.CheckpointPolicy, str]] = ..., request_id: _Optional[str] = ..., history_limit: _Optional[int] = ..., tools: _Optional[_Iterable[_Union[ToolSpec, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class ToolSpec(_message.Message):
    __slots__ = ("name", "description", "input_schema_json", "requires_review", "review_ttl", "review_default_action")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INPUT_SCHEMA_JSON_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_REVIEW_FIELD_NUMBER: _ClassVar[int]
    REVIEW_TTL_FIELD_NUMBER: _ClassVar[int]
    REVIEW_DEFAULT_ACTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    input_schema_json: str
    requires_review: bool
    review_ttl: _duration_pb2.Duration
    review_default_action: _turn_pb2.ReviewAction
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., input_schema_json: _Optional[str] = ..., requires_review: _Optional[bool] = ..., review_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., review_default_action: _Optional[_Union[_turn_pb2.ReviewAction, str]] = ...) -> None: ...

class ToolResults(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_content_pb2.ToolResultBlock]
    def __init__(self, results: _Optional[_Iterable[_Union[_content_pb2.ToolResultBlock, _Mapping]]] = ...) -> None: ...

class TurnUpdate(_message.Message):
    __slots__ = ("messages", "state_json", "events", "usage", "redactions", "conversation_manager_state_json", "internal_state_json")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    REDACTIONS_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_MANAGER_STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    INTERNAL_STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_content_pb2.Message]
    state_json: str
    events: _containers.RepeatedCompositeFieldContainer[_turn_pb2.TurnEvent]
    usage: _session_pb2.Usage
    redactions: _containers.RepeatedCompositeFieldContainer[Redaction]
    conversation_manager_state_json: str
    internal_state_json: str
    def __init__(self, messages: _Optional[_Iterable[_Union[_content_pb2.Message, _Mapping]]] = ..., state_json: _Optional[str] = ..., events: _Optional[_Iterable[_Union[_turn_pb2.TurnEvent, _Mapping]]] = ..., usage: _Optional[_Union[_session_pb2.Usage, _Mapping]] = ..., redactions: _Optional[_Iterable[_Union[Redaction, _Mapping]]] = ..., conversation_manager_state_json: _Optional[str] = ..., internal_state_json: _Optional[str] = ...) -> None: ...

class Redaction(_message.Message):
    __slots__ = ("index", "message")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    index: int
    message: _content_pb2.Message
    def __init__(self, index: _Optional[int] = ..., message: _Optional[_Union[_content_pb2.Message, _Mapping]] = ...) -> None: ...

class RunAppend(_message.Message):
    __slots__ = ("update",)
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    update: TurnUpdate
    def __init__(self, update: _Optional[_Union[TurnUpdate, _Mapping]] = ...) -> None: ...

class RunFinish(_message.Message):
    __slots__ = ("update",)
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    update: TurnUpdate
    def __init__(self, update: _Optional[_Union[TurnUpdate, _Mapping]] = ...) -> None: ...

class RunHibernate(_message.Message):
    __slots__ = ("update", "snapshot", "reviews")
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    update: TurnUpdate
    snapshot: _turn_pb2.Snapshot
    reviews: _containers.RepeatedCompositeFieldContainer[_turn_pb2.ReviewRequest]
    def __init__(self, update: _Optional[_Union[TurnUpdate, _Mapping]] = ..., snapshot: _Optional[_Union[_turn_pb2.Snapshot, _Mapping]] = ..., reviews: _Optional[_Iterable[_Union[_turn_pb2.ReviewRequest, _Mapping]]] = ...) -> None: ...

class RunFail(_message.Message):
    __slots__ = ("error_message",)
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    error_message: str
    def __init__(self, error_message: _Optional[str] = ...) -> None: ...

class RunResponse(_message.Message):
    __slots__ = ("started", "history", "appended", "ended", "delta", "tool_calls")
    STARTED_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    APPENDED_FIELD_NUMBER: _ClassVar[int]
    ENDED_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALLS_FIELD_NUMBER: _ClassVar[int]
    started: RunStarted
    history: HistoryChunk
    appended: RunAppended
    ended: RunEnded
    delta: TextDelta
    tool_calls: ToolCalls
    def __init__(self, started: _Optional[_Union[RunStarted, _Mapping]] = ..., history: _Optional[_Union[HistoryChunk, _Mapping]] = ..., appended: _Optional[_Union[RunAppended, _Mapping]] = ..., ended: _Optional[_Union[RunEnded, _Mapping]] = ..., delta: _Optional[_Union[TextDelta, _Mapping]] = ..., tool_calls: _Optional[_Union[ToolCalls, _Mapping]] = ...) -> None: ...

class TextDelta(_message.Message):
    __slots__ = ("text",)
    TEXT_FIELD_NUMBER: _ClassVar[int]
    text: str
    def __init__(self, text: _Optional[str] = ...) -> None: ...

class ToolCalls(_message.Message):
    __slots__ = ("calls",)
    CALLS_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[_content_pb2.ToolUseBlock]
    def __init__(self, calls: _Optional[_Iterable[_Union[_content_pb2.ToolUseBlock, _Mapping]]] = ...) -> None: ...

class RunStarted(_message.Message):
    __slots__ = ("session", "turn", "agent_state_json", "snapshot", "reviews", "history_message_count", "input")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    AGENT_STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    session: _session_pb2.Session
    turn: _turn_pb2.Turn
    agent_state_json: str
    snapshot: _turn_pb2.Snapshot
    reviews: _containers.RepeatedCompositeFieldContainer[_turn_pb2.Review]
    history_message_count: int
    input: _content_pb2.SessionMessage
    def __init__(self, session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ..., turn: _Optional[_Union[_turn_pb2.Turn, _Mapping]] = ..., agent_state_json: _Optional[str] = ..., snapshot: _Optional[_Union[_turn_pb2.Snapshot, _Mapping]] = ..., reviews: _Optional[_Iterable[_Union[_turn_pb2.Review, _Mapping]]] = ..., history_message_count: _Optional[int] = ..., input: _Optional[_Union[_content_pb2.SessionMessage, _Mapping]] = ...) -> None: ...

class HistoryChunk(_message.Message):
    __slots__ = ("messages",)
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_content_pb2.SessionMessage]
    def __init__(self, messages: _Optional[_Iterable[_Union[_content_pb2.SessionMessage, _Mapping]]] = ...) -> None: ...

class RunAppended(_message.Message):
    __slots__ = ("messages", "etag")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_content_pb2.SessionMessage]
    etag: str
    def __init__(self, messages: _Optional[_Iterable[_Union[_content_pb2.SessionMessage, _Mapping]]] = ..., etag: _Optional[str] = ...) -> None: ...

class RunEnded(_message.Message):
    __slots__ = ("session", "turn")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    session: _session_pb2.Session
    turn: _turn_pb2.Turn
    def __init__(self, session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ..., turn: _Optional[_Union[_turn_pb2.Turn, _Mapping]] = ...) -> None: ...

class ChatRequest(_message.Message):
    __slots__ = ("session_id", "agent_id", "text", "engine", "checkpoint", "request_id", "model")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    agent_id: str
    text: str
    engine: str
    checkpoint: _turn_pb2.CheckpointPolicy
    request_id: str
    model: str
    def __init__(self, session_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., text: _Optional[str] = ..., engine: _Optional[str] = ..., checkpoint: _Optional[_Union[_turn_pb2.CheckpointPolicy, str]] = ..., request_id: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class ChatResponse(_message.Message):
    __slots__ = ("text", "session", "turn", "messages")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    text: str
    session: _session_pb2.Session
    turn: _turn_pb2.Turn
    messages: _containers.RepeatedCompositeFieldContainer[_content_pb2.SessionMessage]
    def __init__(self, text: _Optional[str] = ..., session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ..., turn: _Optional[_Union[_turn_pb2.Turn, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[_content_pb2.SessionMessage, _Mapping]]] = ...) -> None: ...

class ReviewResolution(_message.Message):
    __slots__ = ("review_id", "decision")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    decision: _turn_pb2.ReviewDecision
    def __init__(self, review_id: _Optional[str] = ..., decision: _Optional[_Union[_turn_pb2.ReviewDecision, _Mapping]] = ...) -> None: ...

class ResumeRequest(_message.Message):
    __slots__ = ("session_id", "resolutions", "request_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLUTIONS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    resolutions: _containers.RepeatedCompositeFieldContainer[ReviewResolution]
    request_id: str
    def __init__(self, session_id: _Optional[str] = ..., resolutions: _Optional[_Iterable[_Union[ReviewResolution, _Mapping]]] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResumeResponse(_message.Message):
    __slots__ = ("text", "session", "turn", "messages")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    TURN_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    text: str
    session: _session_pb2.Session
    turn: _turn_pb2.Turn
    messages: _containers.RepeatedCompositeFieldContainer[_content_pb2.SessionMessage]
    def __init__(self, text: _Optional[str] = ..., session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ..., turn: _Optional[_Union[_turn_pb2.Turn, _Mapping]] = ..., messages: _Optional[_Iterable[_Union[_content_pb2.SessionMessage, _Mapping]]] = ...) -> None: ...

class ListPendingReviewsRequest(_message.Message):
    __slots__ = ("session_id", "page_size", "page_token")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    page_size: int
    page_token: str
    def __init__(self, session_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListPendingReviewsResponse(_message.Message):
    __slots__ = ("reviews", "next_page_token")
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    reviews: _containers.RepeatedCompositeFieldContainer[_turn_pb2.Review]
    next_page_token: str
    def __init__(self, reviews: _Optional[_Iterable[_Union[_turn_pb2.Review, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ResolveReviewRequest(_message.Message):
    __slots__ = ("session_id", "review_id", "decision", "fingerprint", "request_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    review_id: str
    decision: _turn_pb2.ReviewDecision
    fingerprint: str
    request_id: str
    def __init__(self, session_id: _Optional[str] = ..., review_id: _Optional[str] = ..., decision: _Optional[_Union[_turn_pb2.ReviewDecision, _Mapping]] = ..., fingerprint: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ResolveReviewResponse(_message.Message):
    __slots__ = ("review", "session")
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    review: _turn_pb2.Review
    session: _session_pb2.Session
    def __init__(self, review: _Optional[_Union[_turn_pb2.Review, _Mapping]] = ..., session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ...) -> None: ...

class ArchiveRequest(_message.Message):
    __slots__ = ("session_id", "etag", "request_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    etag: str
    request_id: str
    def __init__(self, session_id: _Optional[str] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class ArchiveResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: _session_pb2.Session
    def __init__(self, session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ...) -> None: ...

class UnarchiveRequest(_message.Message):
    __slots__ = ("session_id", "etag", "request_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    etag: str
    request_id: str
    def __init__(self, session_id: _Optional[str] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class UnarchiveResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: _session_pb2.Session
    def __init__(self, session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ...) -> None: ...

class ExportRequest(_message.Message):
    __slots__ = ("session_ids", "include_archived", "destination_prefix")
    SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_PREFIX_FIELD_NUMBER: _ClassVar[int]
    session_ids: _containers.RepeatedScalarFieldContainer[str]
    include_archived: bool
    destination_prefix: str
    def __init__(self, session_ids: _Optional[_Iterable[str]] = ..., include_archived: _Optional[bool] = ..., destination_prefix: _Optional[str] = ...) -> None: ...

class ExportManifest(_message.Message):
    __slots__ = ("format_version", "session_count", "message_count", "turn_count", "review_count", "manifest_json")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    SESSION_COUNT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TURN_COUNT_FIELD_NUMBER: _ClassVar[int]
    REVIEW_COUNT_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    session_count: int
    message_count: int
    turn_count: int
    review_count: int
    manifest_json: str
    def __init__(self, format_version: _Optional[int] = ..., session_count: _Optional[int] = ..., message_count: _Optional[int] = ..., turn_count: _Optional[int] = ..., review_count: _Optional[int] = ..., manifest_json: _Optional[str] = ...) -> None: ...

class ExportProgress(_message.Message):
    __slots__ = ("sessions_done", "sessions_total")
    SESSIONS_DONE_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    sessions_done: int
    sessions_total: int
    def __init__(self, sessions_done: _Optional[int] = ..., sessions_total: _Optional[int] = ...) -> None: ...

class ExportResponse(_message.Message):
    __slots__ = ("progress", "chunk", "manifest")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_FIELD_NUMBER: _ClassVar[int]
    progress: ExportProgress
    chunk: bytes
    manifest: ExportManifest
    def __init__(self, progress: _Optional[_Union[ExportProgress, _Mapping]] = ..., chunk: _Optional[bytes] = ..., manifest: _Optional[_Union[ExportManifest, _Mapping]] = ...) -> None: ...

class ImportOptions(_message.Message):
    __slots__ = ("source_prefix", "on_conflict")
    SOURCE_PREFIX_FIELD_NUMBER: _ClassVar[int]
    ON_CONFLICT_FIELD_NUMBER: _ClassVar[int]
    source_prefix: str
    on_conflict: ImportConflictPolicy
    def __init__(self, source_prefix: _Optional[str] = ..., on_conflict: _Optional[_Union[ImportConflictPolicy, str]] = ...) -> None: ...

class ImportRequest(_message.Message):
    __slots__ = ("options", "chunk")
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    options: ImportOptions
    chunk: bytes
    def __init__(self, options: _Optional[_Union[ImportOptions, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...

class ImportResponse(_message.Message):
    __slots__ = ("imported_session_ids", "skipped_session_ids", "message_count")
    IMPORTED_SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_SESSION_IDS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    imported_session_ids: _containers.RepeatedScalarFieldContainer[str]
    skipped_session_ids: _containers.RepeatedScalarFieldContainer[str]
    message_count: int
    def __init__(self, imported_session_ids: _Optional[_Iterable[str]] = ..., skipped_session_ids: _Optional[_Iterable[str]] = ..., message_count: _Optional[int] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: _session_pb2.Session
    def __init__(self, session: _Optional[_Union[_session_pb2.Session, _Mapping]] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "statuses", "labels", "archived")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    statuses: _containers.RepeatedScalarFieldContainer[_session_pb2.SessionStatus]
    labels: _containers.ScalarMap[str, str]
    archived: ArchivedFilter
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[_session_pb2.SessionStatus, str]]] = ..., labels: _Optional[_Mapping[str, str]] = ..., archived: _Optional[_Union[ArchivedFilter, str]] = ...) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("sessions", "next_page_token")
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[_session_pb2.Session]
    next_page_token: str
    def __init__(self, sessions: _Optional[_Iterable[_Union[_session_pb2.Session, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ListMessagesRequest(_message.Message):
    __slots__ = ("session_id", "agent_id", "page_size", "page_token")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    agent_id: str
    page_size: int
    page_token: str
    def __init__(self, session_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMessagesResponse(_message.Message):
    __slots__ = ("messages", "next_page_token")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_content_pb2.SessionMessage]
    next_page_token: str
    def __init__(self, messages: _Optional[_Iterable[_Union[_content_pb2.SessionMessage, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("session_id", "etag", "request_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ETAG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    etag: str
    request_id: str
    def __init__(self, session_id: _Optional[str] = ..., etag: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReplayRequest(_message.Message):
    __slots__ = ("session_id", "page_size", "page_token")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    page_size: int
    page_token: str
    def __init__(self, session_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ReplayResponse(_message.Message):
    __slots__ = ("turns", "next_page_token")
    TURNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    turns: _containers.RepeatedCompositeFieldContainer[_turn_pb2.Turn]
    next_page_token: str
    def __init__(self, turns: _Optional[_Iterable[_Union[_turn_pb2.Turn, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
