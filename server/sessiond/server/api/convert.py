"""Domain views and records to protobuf messages, and request fields to domain inputs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pydantic_core
from google.protobuf.timestamp_pb2 import Timestamp

from sessiond.errors import InvalidArgument
from sessiond.server.api.content_codec import message_from_dict
from sessiond.server.domain.records import (
    Decision,
    Event,
    Review,
    ReviewAction,
    Status,
    StoredMessage,
    Turn,
    TurnStatus,
    Usage,
)
from sessiond.server.domain.reviews import DecisionInput
from sessiond.server.domain.validation import parse_json
from sessiond.server.domain.views import SessionView
from sessiond.v1 import content_pb2, session_pb2, turn_pb2

RESERVED_EVENT_PREFIXES = ("turn.", "messages.", "state.", "review.", "sessiond.")

_STATUS_TO_PB = {
    Status.NEW: session_pb2.SESSION_STATUS_NEW,
    Status.RUNNING: session_pb2.SESSION_STATUS_RUNNING,
    Status.HIBERNATED: session_pb2.SESSION_STATUS_HIBERNATED,
    Status.WAITING: session_pb2.SESSION_STATUS_WAITING,
    Status.FINISHED: session_pb2.SESSION_STATUS_FINISHED,
    Status.ERROR: session_pb2.SESSION_STATUS_ERROR,
}
_STATUS_FROM_PB = {value: key for key, value in _STATUS_TO_PB.items()}

_TURN_STATUS_TO_PB = {
    TurnStatus.RUNNING: turn_pb2.TURN_STATUS_RUNNING,
    TurnStatus.HIBERNATED: turn_pb2.TURN_STATUS_HIBERNATED,
    TurnStatus.WAITING: turn_pb2.TURN_STATUS_WAITING,
    TurnStatus.FINISHED: turn_pb2.TURN_STATUS_FINISHED,
    TurnStatus.ERROR: turn_pb2.TURN_STATUS_ERROR,
}

_ACTION_TO_PB = {
    ReviewAction.APPROVE: turn_pb2.REVIEW_ACTION_APPROVE,
    ReviewAction.REJECT: turn_pb2.REVIEW_ACTION_REJECT,
    ReviewAction.EDIT: turn_pb2.REVIEW_ACTION_EDIT,
}
_ACTION_FROM_PB = {value: key for key, value in _ACTION_TO_PB.items()}

CHECKPOINT_FROM_PB = {
    turn_pb2.CHECKPOINT_POLICY_UNSPECIFIED: "NONE",
    turn_pb2.CHECKPOINT_POLICY_NONE: "NONE",
    turn_pb2.CHECKPOINT_POLICY_AFTER_PROMPT: "AFTER_PROMPT",
}


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp(moment: datetime | None) -> Timestamp | None:
    """A datetime as a protobuf Timestamp (None stays unset)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.astimezone(UTC)
    # Integer arithmetic on the timedelta: ~10x cheaper than FromDatetime,
    # and a restore converts two timestamps per message.
    delta = moment - _EPOCH
    seconds = delta.days * 86_400 + delta.seconds
    return Timestamp(seconds=seconds, nanos=delta.microseconds * 1_000)


def from_timestamp(stamp: Timestamp, present: bool) -> datetime | None:
    """A protobuf Timestamp field as an aware datetime (None when unset)."""
    if not present:
        return None
    return stamp.ToDatetime(tzinfo=UTC)


def json_text(value: Any) -> str:
    """Compact UTF-8 JSON text of a value."""
    # pydantic-core writes what json.dumps(ensure_ascii=False, compact) does,
    # ~10x faster: this runs for every event of every turn returned.
    return pydantic_core.to_json(value).decode()


def usage_pb(usage: Usage) -> session_pb2.Usage:
    """Usage as protobuf."""
    return session_pb2.Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )


def usage_from_pb(usage: session_pb2.Usage) -> Usage | None:
    """Usage from protobuf; None when all zero."""
    if not (usage.input_tokens or usage.output_tokens or usage.total_tokens):
        return None
    if min(usage.input_tokens, usage.output_tokens, usage.total_tokens) < 0:
        raise InvalidArgument("usage counts must not be negative", field="usage")
    return Usage(
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        total_tokens=usage.total_tokens,
    )


def session_pb(view: SessionView) -> session_pb2.Session:
    """A session view as protobuf."""
    session = session_pb2.Session(
        session_id=view.session_id,
        agent_id=view.agent_id,
        title=view.title,
        labels=view.labels,
        metadata=view.metadata,
        status=_STATUS_TO_PB[view.status],
        archived=view.archived,
        parent_session_id=view.parent_session_id or "",
        message_count=view.message_count,
        turn_count=view.turn_count,
        usage=usage_pb(view.usage),
        create_time=timestamp(view.created_at),
        update_time=timestamp(view.updated_at),
        etag=view.etag,
        pending_review_count=view.pending_review_count,
        agents=[
            session_pb2.AgentInfo(
                agent_id=agent.agent_id,
                message_count=agent.message_count,
                state_json=json_text(agent.state),
                conversation_manager_state_json=json_text(agent.conversation_manager_state),
                internal_state_json=json_text(agent.internal_state),
            )
            for agent in view.agents
        ],
    )
    if view.lease is not None:
        session.lease.CopyFrom(
            session_pb2.Lease(
                holder=view.lease.holder,
                run_id=view.lease.run_id,
                epoch=view.lease.epoch,
                expire_time=timestamp(view.lease.expires_at),
            )
        )
    return session


def status_from_pb(value: int) -> Status:
    """A SessionStatus filter value; UNSPECIFIED or unknown is INVALID_ARGUMENT."""
    status = _STATUS_FROM_PB.get(value)
    if status is None:
        raise InvalidArgument("statuses holds an unknown or unspecified value", field="statuses")
    return status


def stored_message_pb(record: StoredMessage) -> content_pb2.SessionMessage:
    """A stored message as protobuf."""
    message = content_pb2.SessionMessage(
        agent_id=record.agent_id,
        index=record.index,
        message=message_from_dict(record.message),
        turn_id=record.turn_id or "",
        create_time=timestamp(record.created_at),
        update_time=timestamp(record.updated_at),
    )
    if record.redact_message is not None:
        message.redact_message.CopyFrom(message_from_dict(record.redact_message))
    return message


def decision_pb(decision: Decision | None) -> turn_pb2.ReviewDecision | None:
    """A decision as protobuf."""
    if decision is None:
        return None
    return turn_pb2.ReviewDecision(
        action=_ACTION_TO_PB[decision.action],
        edited_input_json=json_text(decision.edited_input)
        if decision.edited_input is not None
        else "",
        reviewer=decision.reviewer,
        comment=decision.comment,
        decide_time=timestamp(decision.decided_at),
    )


def review_pb(session_id: str, review: Review, now: datetime) -> turn_pb2.Review:
    """A review as protobuf, with its state at ``now``."""
    effective = review.effective_decision(now)
    if review.decision is not None:
        state = turn_pb2.REVIEW_STATE_DECIDED
    elif effective is not None:
        state = turn_pb2.REVIEW_STATE_EXPIRED
    else:
        state = turn_pb2.REVIEW_STATE_PENDING
    return turn_pb2.Review(
        session_id=session_id,
        review_id=review.review_id,
        turn_id=review.turn_id,
        tool_use_id=review.tool_use_id,
        tool_name=review.tool_name,
        input_json=json_text(review.input),
        description=review.description,
        fingerprint=review.fingerprint,
        state=state,
        create_time=timestamp(review.created_at),
        expire_time=timestamp(review.expires_at),
        default_action=_ACTION_TO_PB.get(review.default_action, 0) if review.default_action else 0,
        decision=decision_pb(effective),
    )


def turn_pb(session_id: str, turn: Turn, now: datetime) -> turn_pb2.Turn:
    """A turn as protobuf (its messages are listed separately, by index)."""
    # A turn's record may also hold messages adopted from a Strands writer;
    # only an "adopted" turn counts those as its own.
    own = [m for m in turn.messages if m.turn_id == turn.turn_id or turn.engine == "adopted"]
    result = turn_pb2.Turn(
        turn_id=turn.turn_id,
        number=turn.number,
        agent_id=turn.agent_id,
        engine=turn.engine,
        status=_TURN_STATUS_TO_PB[turn.status],
        request_id=turn.request_id or "",
        start_time=timestamp(turn.started_at),
        end_time=timestamp(turn.ended_at),
        first_message_index=own[0].index if own else turn.first_index,
        message_count=len(own),
        usage=usage_pb(turn.usage),
        events=[
            turn_pb2.TurnEvent(
                time=timestamp(event.time),
                type=event.type,
                data_json=json_text(event.data) if event.data else "",
            )
            for event in turn.events
        ],
        reviews=[review_pb(session_id, review, now) for review in turn.reviews],
        resume_count=turn.resume_count,
    )
    if turn.error is not None:
        result.error.CopyFrom(turn_pb2.TurnError(code=turn.error.code, message=turn.error.message))
    return result


def events_from_pb(
    events: list[turn_pb2.TurnEvent], now: datetime, limit: int, max_bytes: int
) -> tuple[Event, ...]:
    """Runtime events; reserved type prefixes and oversize data are refused."""
    if len(events) > limit:
        raise InvalidArgument(f"at most {limit} events per update", field="update.events")
    result = []
    for event in events:
        if (
            not event.type
            or len(event.type) > 128
            or event.type.startswith(RESERVED_EVENT_PREFIXES)
        ):
            raise InvalidArgument(
                "event types must be 1-128 characters and not use a reserved prefix",
                field="update.events.type",
            )
        if len(event.data_json.encode()) > max_bytes:
            raise InvalidArgument("event data is too large", field="update.events.data_json")
        data = (
            parse_json(event.data_json, field="update.events.data_json") if event.data_json else {}
        )
        if not isinstance(data, dict):
            raise InvalidArgument(
                "event data must be a JSON object", field="update.events.data_json"
            )
        moment = from_timestamp(event.time, event.HasField("time")) or now
        result.append(Event(time=moment, type=event.type, data=data))
    return tuple(result)


def decision_from_pb(decision: turn_pb2.ReviewDecision) -> DecisionInput:
    """A decision from a request."""
    edited = (
        parse_json(decision.edited_input_json, field="decision.edited_input_json")
        if decision.edited_input_json
        else None
    )
    return DecisionInput(
        action=_ACTION_FROM_PB.get(decision.action),
        edited_input=edited,
        reviewer=decision.reviewer,
        comment=decision.comment,
    )


def action_from_pb(value: int) -> ReviewAction | None:
    """A ReviewAction value (None for UNSPECIFIED)."""
    return _ACTION_FROM_PB.get(value)
