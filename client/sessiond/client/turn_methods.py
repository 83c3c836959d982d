"""Turn and review methods of the client: Chat, Resume, Run, ListPendingReviews, ResolveReview."""

# ruff: noqa: ASYNC109 - `timeout` is the gRPC deadline sent with the call, not a local wait.

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

from sessiond.client.calls import DEFAULT, CallBase, Timeout, idempotency_key
from sessiond.client.messages import EnumLike, checkpoint_policy, review_action, text_message
from sessiond.client.turns import RunTurn
from sessiond.errors import InvalidArgument
from sessiond.v1 import content_pb2, session_service_pb2, turn_pb2

pb = session_service_pb2


class TurnMethods(CallBase):
    """Turns and reviews: chat, resume, run, reviews, decisions (part of ``AsyncClient``)."""

    async def chat(
        self,
        session_id: str,
        text: str,
        *,
        agent_id: str = "",
        engine: str = "",
        checkpoint: EnumLike = 0,
        request_id: str = "",
        timeout: Timeout = DEFAULT,
    ) -> pb.ChatResponse:
        """One turn of a server-side engine: text in, text out.

        Args:
            session_id: The session.
            text: The user's text.
            agent_id: The agent (the session's default when empty).
            engine: The engine (the server's default, ``echo``, when empty).
            checkpoint: ``"after_prompt"`` records the input and hibernates;
                continue with :meth:`resume`.
            request_id: Idempotency key (generated when empty).
            timeout: Deadline in seconds.

        Returns:
            ``ChatResponse``: ``text``, ``session``, ``turn``, ``messages``.
        """
        request = pb.ChatRequest(
            session_id=session_id,
            text=text,
            agent_id=agent_id,
            engine=engine,
            checkpoint=checkpoint_policy(checkpoint),  # type: ignore[arg-type]
            request_id=idempotency_key(request_id),
        )
        return await self._call("Chat", request, timeout)

    async def resume(
        self,
        session_id: str,
        *,
        resolutions: Iterable[pb.ReviewResolution] = (),
        request_id: str = "",
        timeout: Timeout = DEFAULT,
    ) -> pb.ResumeResponse:
        """Continues a hibernated server-engine turn (``RuntimeRequired`` for ``Run`` turns).

        Args:
            session_id: The session.
            resolutions: Review decisions to record first.
            request_id: Idempotency key (generated when empty).
            timeout: Deadline in seconds.
        """
        request = pb.ResumeRequest(
            session_id=session_id,
            resolutions=list(resolutions),
            request_id=idempotency_key(request_id),
        )
        return await self._call("Resume", request, timeout)

    def run(
        self,
        session_id: str,
        input: content_pb2.Message | str | None = None,
        *,
        agent_id: str = "",
        resume: bool = False,
        engine: str = "",
        checkpoint: EnumLike = 0,
        request_id: str = "",
        history_limit: int = 0,
        timeout: float | None = None,
    ) -> RunTurn:
        """A turn driven by the caller's runtime, as an async context manager.

        ``async with client.run(sid, "hi") as turn:`` claims the session and
        restores the context (``turn.history``, ``turn.agent_state``...);
        inside, ``await turn.append(...)`` and end with ``finish``,
        ``hibernate`` or ``fail``. Leaving the block without ending finishes
        the turn; an exception in the block fails it. See :class:`RunTurn`.

        Args:
            session_id: The session.
            input: The new input: a message, or a string (a user text message).
            agent_id: The agent whose history the turn extends.
            resume: Continue the hibernated turn instead (no ``input``).
            engine: ``"client"`` (the default and only choice: this turn is
                driven by your runtime; server engines stream deltas and tool
                calls, which ``chat()`` / ``resume()`` or a raw ``Run`` call
                handle). Anything else raises ``InvalidArgument``.
            checkpoint: ``"after_prompt"`` records the input and hibernates.
            request_id: Idempotency key; a turn that already ended with it is
                answered at once (``turn.ended``) and nothing runs again.
            history_limit: Restore only the last N messages (0: all).
            timeout: Deadline of the whole stream in seconds (none by default).
        """
        if engine not in ("", "client"):
            raise InvalidArgument(
                "run() drives a turn with your own runtime (engine client); "
                f"use chat() for the {engine!r} engine",
                field="engine",
            )
        message = text_message("user", input) if isinstance(input, str) else input
        open_ = pb.RunOpen(
            session_id=session_id,
            agent_id=agent_id,
            resume=resume,
            engine=engine,
            checkpoint=checkpoint_policy(checkpoint),  # type: ignore[arg-type]
            request_id=request_id,
            history_limit=history_limit,
        )
        if message is not None:
            open_.input.CopyFrom(message)
        return RunTurn(self.stub, open_, timeout, self._metadata)

    # -- reviews -------------------------------------------------------------------------

    async def list_pending_reviews(
        self,
        *,
        session_id: str = "",
        page_size: int = 0,
        page_token: str = "",
        timeout: Timeout = DEFAULT,
    ) -> pb.ListPendingReviewsResponse:
        """One page of reviews waiting for a decision, oldest first (the tenant's if no session)."""
        request = pb.ListPendingReviewsRequest(
            session_id=session_id, page_size=page_size, page_token=page_token
        )
        return await self._call("ListPendingReviews", request, timeout)

    async def iter_pending_reviews(
        self, *, session_id: str = "", page_size: int = 200
    ) -> AsyncIterator[turn_pb2.Review]:
        """Every pending review (follows page tokens); see :meth:`list_pending_reviews`."""
        token = ""
        while True:
            page = await self.list_pending_reviews(
                session_id=session_id, page_size=page_size, page_token=token
            )
            for review in page.reviews:
                yield review
            if not (token := page.next_page_token):
                return

    async def resolve_review(
        self,
        review_id: str,
        *,
        decision: turn_pb2.ReviewDecision | None = None,
        action: EnumLike | None = None,
        comment: str = "",
        reviewer: str = "",
        edited_input: Any = None,
        session_id: str = "",
        fingerprint: str = "",
        request_id: str = "",
        timeout: Timeout = DEFAULT,
    ) -> pb.ResolveReviewResponse:
        """Records a decision on a review request.

        Give either a ``decision`` message, or ``action`` (``"approve"``,
        ``"reject"``, ``"edit"``) with ``comment``, ``reviewer`` and, for an
        edit, ``edited_input`` (JSON-serialisable).

        Args:
            review_id: The review.
            decision: The decision as a message.
            action: The decision's action, when ``decision`` is not given.
            comment: Why.
            reviewer: Who decided.
            edited_input: The tool input to use instead (``"edit"``).
            session_id: The review's session; looked up by the server when empty.
            fingerprint: When set, must equal the review's fingerprint.
            request_id: Idempotency key (generated when empty).
            timeout: Deadline in seconds.

        Returns:
            ``ResolveReviewResponse``: the ``review`` with its decision, the ``session``.
        """
        if decision is None:
            decision = turn_pb2.ReviewDecision(
                action=review_action(action) if action is not None else 0,  # type: ignore[arg-type]
                comment=comment,
                reviewer=reviewer,
                edited_input_json="" if edited_input is None else json.dumps(edited_input),
            )
        request = pb.ResolveReviewRequest(
            review_id=review_id,
            session_id=session_id,
            decision=decision,
            fingerprint=fingerprint,
            request_id=idempotency_key(request_id),
        )
        return await self._call("ResolveReview", request, timeout)
