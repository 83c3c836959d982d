import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from sessiond.v1 import session_pb2 as _session_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TurnStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TURN_STATUS_UNSPECIFIED: _ClassVar[TurnStatus]
    TURN_STATUS_RUNNING: _ClassVar[TurnStatus]
    TURN_STATUS_HIBERNATED: _ClassVar[TurnStatus]
    TURN_STATUS_WAITING: _ClassVar[TurnStatus]
    TURN_STATUS_FINISHED: _ClassVar[TurnStatus]
    TURN_STATUS_ERROR: _ClassVar[TurnStatus]

class CheckpointPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CHECKPOINT_POLICY_UNSPECIFIED: _ClassVar[CheckpointPolicy]
    CHECKPOINT_POLICY_NONE: _ClassVar[CheckpointPolicy]
    CHECKPOINT_POLICY_AFTER_PROMPT: _ClassVar[CheckpointPolicy]

class ReviewAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_ACTION_UNSPECIFIED: _ClassVar[ReviewAction]
    REVIEW_ACTION_APPROVE: _ClassVar[ReviewAction]
    REVIEW_ACTION_REJECT: _ClassVar[ReviewAction]
    REVIEW_ACTION_EDIT: _ClassVar[ReviewAction]

class ReviewState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REVIEW_STATE_UNSPECIFIED: _ClassVar[ReviewState]
    REVIEW_STATE_PENDING: _ClassVar[ReviewState]
    REVIEW_STATE_DECIDED: _ClassVar[ReviewState]
    REVIEW_STATE_EXPIRED: _ClassVar[ReviewState]
TURN_STATUS_UNSPECIFIED: TurnStatus
TURN_STATUS_RUNNING: TurnStatus
TURN_STATUS_HIBERNATED: TurnStatus
TURN_STATUS_WAITING: TurnStatus
TURN_STATUS_FINISHED: TurnStatus
TURN_STATUS_ERROR: TurnStatus
CHECKPOINT_POLICY_UNSPECIFIED: CheckpointPolicy
CHECKPOINT_POLICY_NONE: CheckpointPolicy
CHECKPOINT_POLICY_AFTER_PROMPT: CheckpointPolicy
REVIEW_ACTION_UNSPECIFIED: ReviewAction
REVIEW_ACTION_APPROVE: ReviewAction
REVIEW_ACTION_REJECT: ReviewAction
REVIEW_ACTION_EDIT: ReviewAction
REVIEW_STATE_UNSPECIFIED: ReviewState
REVIEW_STATE_PENDING: ReviewState
REVIEW_STATE_DECIDED: ReviewState
REVIEW_STATE_EXPIRED: ReviewState

class TurnEvent(_message.Message):
    __slots__ = ("time", "type", "data_json")
    TIME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    type: str
    data_json: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[str] = ..., data_json: _Optional[str] = ...) -> None: ...

class TurnError(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    message: str
    def __init__(self, code: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("data", "content_type", "turn_id", "create_time")
    DATA_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    content_type: str
    turn_id: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, data: _Optional[bytes] = ..., content_type: _Optional[str] = ..., turn_id: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReviewRequest(_message.Message):
    __slots__ = ("review_id", "tool_use_id", "tool_name", "input_json", "description", "expire_time", "default_action")
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_USE_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_ACTION_FIELD_NUMBER: _ClassVar[int]
    review_id: str
    tool_use_id: str
    tool_name: str
    input_json: str
    description: str
    expire_time: _timestamp_pb2.Timestamp
    default_action: ReviewAction
    def __init__(self, review_id: _Optional[str] = ..., tool_use_id: _Optional[str] = ..., tool_name: _Optional[str] = ..., input_json: _Optional[str] = ..., description: _Optional[str] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., default_action: _Optional[_Union[ReviewAction, str]] = ...) -> None: ...

class ReviewDecision(_message.Message):
    __slots__ = ("action", "edited_input_json", "reviewer", "comment", "decide_time")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    EDITED_INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    REVIEWER_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    DECIDE_TIME_FIELD_NUMBER: _ClassVar[int]
    action: ReviewAction
    edited_input_json: str
    reviewer: str
    comment: str
    decide_time: _timestamp_pb2.Timestamp
    def __init__(self, action: _Optional[_Union[ReviewAction, str]] = ..., edited_input_json: _Optional[str] = ..., reviewer: _Optional[str] = ..., comment: _Optional[str] = ..., decide_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Review(_message.Message):
    __slots__ = ("session_id", "review_id", "turn_id", "tool_use_id", "tool_name", "input_json", "description", "fingerprint", "state", "create_time", "expire_time", "default_action", "decision")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REVIEW_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_USE_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_JSON_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_ACTION_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    review_id: str
    turn_id: str
    tool_use_id: str
    tool_name: str
    input_json: str
    description: str
    fingerprint: str
    state: ReviewState
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    default_action: ReviewAction
    decision: ReviewDecision
    def __init__(self, session_id: _Optional[str] = ..., review_id: _Optional[str] = ..., turn_id: _Optional[str] = ..., tool_use_id: _Optional[str] = ..., tool_name: _Optional[str] = ..., input_json: _Optional[str] = ..., description: _Optional[str] = ..., fingerprint: _Optional[str] = ..., state: _Optional[_Union[ReviewState, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., default_action: _Optional[_Union[ReviewAction, str]] = ..., decision: _Optional[_Union[ReviewDecision, _Mapping]] = ...) -> None: ...

class Turn(_message.Message):
    __slots__ = ("turn_id", "number", "agent_id", "engine", "status", "request_id", "start_time", "end_time", "first_message_index", "message_count", "usage", "events", "reviews", "error", "resume_count")
    TURN_ID_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    FIRST_MESSAGE_INDEX_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_COUNT_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESUME_COUNT_FIELD_NUMBER: _ClassVar[int]
    turn_id: str
    number: int
    agent_id: str
    engine: str
    status: TurnStatus
    request_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    first_message_index: int
    message_count: int
    usage: _session_pb2.Usage
    events: _containers.RepeatedCompositeFieldContainer[TurnEvent]
    reviews: _containers.RepeatedCompositeFieldContainer[Review]
    error: TurnError
    resume_count: int
    def __init__(self, turn_id: _Optional[str] = ..., number: _Optional[int] = ..., agent_id: _Optional[str] = ..., engine: _Optional[str] = ..., status: _Optional[_Union[TurnStatus, str]] = ..., request_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., first_message_index: _Optional[int] = ..., message_count: _Optional[int] = ..., usage: _Optional[_Union[_session_pb2.Usage, _Mapping]] = ..., events: _Optional[_Iterable[_Union[TurnEvent, _Mapping]]] = ..., reviews: _Optional[_Iterable[_Union[Review, _Mapping]]] = ..., error: _Optional[_Union[TurnError, _Mapping]] = ..., resume_count: _Optional[int] = ...) -> None: ...
