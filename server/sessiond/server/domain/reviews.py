"""Human review of tool calls: requests, the tenant inbox, decisions."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sessiond.errors import (
    FingerprintMismatch,
    InvalidArgument,
    InvalidTransition,
    ReviewNotFound,
)
from sessiond.server.domain.clock import IdSource
from sessiond.server.domain.context import ServiceContext
from sessiond.server.domain.index import pending_items
from sessiond.server.domain.keys import TenantKeys
from sessiond.server.domain.mutations import mutate
from sessiond.server.domain.pagination import filter_digest
from sessiond.server.domain.records import (
    Decision,
    Event,
    Head,
    Review,
    ReviewAction,
    Status,
    Turn,
    TurnStatus,
)
from sessiond.server.domain.validation import (
    check_id,
    check_optional_id,
    check_page_size,
    check_request_id,
)
from sessiond.server.domain.views import SessionView, view_of_head

MAX_REVIEWER_CHARS = 256
MAX_COMMENT_CHARS = 4096


def fingerprint(tool_name: str, tool_input: Any) -> str:
    """SHA-256 (hex) of the tool name and its canonical input JSON."""
    canonical = json.dumps(
        {"name": tool_name, "input": tool_input}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class ReviewInput:
    """A review request as sent by a runtime when it hibernates."""

    review_id: str
    tool_use_id: str
    tool_name: str
    input: Any
    description: str
    expires_at: datetime | None
    default_action: ReviewAction | None


@dataclass(frozen=True)
class DecisionInput:
    """A reviewer's decision as sent by a caller."""

    action: ReviewAction | None
    edited_input: Any
    reviewer: str
    comment: str


def build_reviews(
    inputs: list[ReviewInput], *, turn_id: str, now: datetime, ids: IdSource, limit: int
) -> list[Review]:
    """Validates review requests and gives each an id and a fingerprint."""
    if len(inputs) > limit:
        raise InvalidArgument(f"at most {limit} review requests per turn", field="reviews")
    reviews: list[Review] = []
    seen: set[str] = set()
    for item in inputs:
        review_id = check_optional_id(item.review_id, field="reviews.review_id") or (
            f"r-{ids.random_hex(6)}"
        )
        if review_id in seen:
            raise InvalidArgument("review ids must be unique", field="reviews.review_id")
        seen.add(review_id)
        if not item.tool_name:
            raise InvalidArgument("a review request needs tool_name", field="reviews.tool_name")
        if item.expires_at is not None and item.default_action is None:
            raise InvalidArgument(
                "a review request with expire_time needs default_action",
                field="reviews.default_action",
            )
        reviews.append(
            Review(
                review_id=review_id,
                turn_id=turn_id,
                tool_use_id=item.tool_use_id,
                tool_name=item.tool_name,
                input=item.input,
                description=item.description,
                fingerprint=fingerprint(item.tool_name, item.input),
                created_at=now,
                expires_at=item.expires_at,
                default_action=item.default_action,
            )
        )
    return reviews


def check_decision(decision: DecisionInput) -> None:
    """Validates a decision before any storage call."""
    if decision.action is None:
        raise InvalidArgument("decision.action is required", field="decision.action")
    if decision.action is ReviewAction.EDIT and decision.edited_input is None:
        raise InvalidArgument(
            "an EDIT decision needs edited_input_json", field="decision.edited_input_json"
        )
    if len(decision.reviewer) > MAX_REVIEWER_CHARS:
        raise InvalidArgument("decision.reviewer is too long", field="decision.reviewer")
    if len(decision.comment) > MAX_COMMENT_CHARS:
        raise InvalidArgument("decision.comment is too long", field="decision.comment")


def record_decision(
    head: Head, review_id: str, decision: DecisionInput, fingerprint_: str, now: datetime
) -> Review:
    """Records a decision on the open turn's review (in place); returns the review."""
    turn = head.open_turn
    review = None
    if turn is not None and turn.status in (TurnStatus.WAITING, TurnStatus.HIBERNATED):
        review = next((r for r in turn.reviews if r.review_id == review_id), None)
    if review is None or turn is None:
        raise ReviewNotFound(
            "the session has no open review with this id",
            session_id=head.session_id,
            review_id=review_id,
        )
    if fingerprint_ and fingerprint_ != review.fingerprint:
        raise FingerprintMismatch(
            "the review is now about a different tool call",
            review_id=review_id,
            fingerprint=review.fingerprint,
        )
    if review.effective_decision(now) is not None:
        raise InvalidTransition("the review was already decided", review_id=review_id)
    assert decision.action is not None
    review.decision = Decision(
        action=decision.action,
        edited_input=decision.edited_input,
        reviewer=decision.reviewer,
        comment=decision.comment,
        decided_at=now,
    )
    turn.events.append(
        Event(
            time=now,
            type="review.decided",
            data={"review_id": review_id, "action": decision.action.value},
        )
    )
    if not any(r.is_pending(now) for r in turn.reviews):
        # Nothing left for a human: the turn is ready to resume.
        turn.status = TurnStatus.HIBERNATED
        head.status = Status.HIBERNATED
    return review


class ReviewService:
    """ListPendingReviews and ResolveReview."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    async def list_pending(
        self, keys: TenantKeys, *, session_id: str, page_size: int, page_token: str
    ) -> tuple[list[tuple[str, Review]], str]:
        """Pending reviews, oldest first: one session's (its head) or the tenant's (the inbox)."""
        size = check_page_size(page_size)
        sid = check_optional_id(session_id, field="session_id")
        now = self._ctx.clock.now()
        if sid is not None:
            head, _ = await self._ctx.repo.read_head(keys, sid)
            pending = [(sid, review) for review in head.pending_reviews(now)]
        else:
            inbox = await self._ctx.index.read_inbox(keys)
            pending = [(item.session_id, item.review) for item in pending_items(inbox, now, None)]
        pending.sort(key=_order)
        filters = filter_digest([sid])
        tokens = self._ctx.tokens
        position = tokens.read(page_token, kind="reviews", tenant=keys.tenant, filters=filters)
        if position is not None:
            after = tuple(position["after"])
            pending = [item for item in pending if _order(item) > after]
        page = pending[:size]
        token = ""
        if len(pending) > size:
            token = tokens.make(
                kind="reviews",
                tenant=keys.tenant,
                filters=filters,
                position={"after": list(_order(page[-1]))},
            )
        return page, token

    async def resolve(
        self,
        keys: TenantKeys,
        *,
        session_id: str,
        review_id: str,
        decision: DecisionInput,
        fingerprint_: str,
        request_id: str,
    ) -> tuple[Review, SessionView]:
        """Records a decision; the session's turn becomes resumable once none is pending."""
        rid = check_id(review_id, field="review_id")
        sid = check_optional_id(session_id, field="session_id")
        request = check_request_id(request_id)
        check_decision(decision)
        if sid is None:
            sid = await self._session_of(keys, rid)

        def change(head: Head, now: datetime) -> Review:
            return record_decision(head, rid, decision, fingerprint_, now)

        head, review = await mutate(
            self._ctx, keys, sid, op="resolve", request_id=request, etag=None, change=change
        )
        if review is None:  # a retried request: report the review as it stands
            review = _find_review(head.tail, rid)
            if review is None:  # its turn has moved into a history pack since
                review = _find_review(await self._ctx.repo.turns(keys, head), rid)
            if review is None:
                raise ReviewNotFound("no such review", review_id=rid)
        return review, view_of_head(head, self._ctx.clock.now())

    async def _session_of(self, keys: TenantKeys, review_id: str) -> str:
        inbox = await self._ctx.index.read_inbox(keys)
        sessions = {
            item.session_id for item in inbox.items.values() if item.review.review_id == review_id
        }
        if len(sessions) != 1:
            raise ReviewNotFound(
                "no pending review with this id"
                if not sessions
                else "review id is ambiguous; pass session_id",
                review_id=review_id,
            )
        return sessions.pop()


def _find_review(turns: list[Turn], review_id: str) -> Review | None:
    for turn in reversed(turns):
        for review in turn.reviews:
            if review.review_id == review_id:
                return review.model_copy(deep=True)
    return None


def _order(item: tuple[str, Review]) -> tuple[str, str, str]:
    session_id, review = item
    return (review.created_at.isoformat(), session_id, review.review_id)
