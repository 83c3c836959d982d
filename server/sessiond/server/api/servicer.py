"""The gRPC servicer of ``sessiond.v1.SessionService``: convert, call the domain, map errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from sessiond.errors import InvalidArgument
from sessiond.server.api import convert
from sessiond.server.api.calls import Admission, RpcObserver, Tenancy, streaming, unary
from sessiond.server.api.run_stream import RunHandler
from sessiond.server.domain.clock import Clock, IdSource
from sessiond.server.domain.content import message_text
from sessiond.server.domain.engines import EngineRegistry
from sessiond.server.domain.keys import DEFAULT_TENANT_PREFIX, TenantKeys
from sessiond.server.domain.limits import Limits
from sessiond.server.domain.records import TurnStatus
from sessiond.server.domain.reviews import ReviewService
from sessiond.server.domain.sessions import SessionLifecycle
from sessiond.server.domain.turn_changes import TurnOutcome
from sessiond.server.domain.turn_service import TurnService
from sessiond.server.domain.validation import parse_json_object
from sessiond.server.domain.views import view_of_head
from sessiond.v1 import session_service_pb2 as pb
from sessiond.v1 import session_service_pb2_grpc as pb_grpc

_ARCHIVED = {
    pb.ARCHIVED_FILTER_UNSPECIFIED: "exclude",
    pb.ARCHIVED_FILTER_EXCLUDE: "exclude",
    pb.ARCHIVED_FILTER_INCLUDE: "include",
    pb.ARCHIVED_FILTER_ONLY: "only",
}


@dataclass
class Domain:
    """The domain services the servicer calls."""

    sessions: SessionLifecycle
    turns: TurnService
    reviews: ReviewService
    engines: EngineRegistry
    ids: IdSource
    clock: Clock
    limits: Limits


class SessionServicer(pb_grpc.SessionServiceServicer):
    """Implements every RPC of SessionService on top of the domain services."""

    def __init__(
        self,
        domain: Domain,
        *,
        tenancy: Tenancy,
        observer: RpcObserver,
        bundles=None,
        admission: Admission | None = None,
        key_prefix: str = DEFAULT_TENANT_PREFIX,
    ) -> None:
        self.domain = domain
        self.tenancy = tenancy
        self.key_prefix = key_prefix
        self.observer = observer
        self.admission = admission or Admission(None)
        self._run = RunHandler(
            domain.turns,
            engines=domain.engines,
            ids=domain.ids,
            clock=domain.clock,
            limits=domain.limits,
        )
        self._bundles = bundles

    async def drain(self, seconds: float) -> None:
        """Waits for broken Run streams to release their leases."""
        await self._run.drain(seconds)

    def _outcome_fields(self, outcome: TurnOutcome) -> dict:
        now = self.domain.clock.now()
        # Messages adopted from a Strands writer sit in the turn's record too,
        # but the turn did not produce them.
        own = [m for m in outcome.turn.messages if m.turn_id == outcome.turn.turn_id]
        # The answer is the turn's last assistant text: with tool rounds, the
        # texts before it were said on the way ("let me check...").
        texts = [message_text(m.message) for m in own if m.message.get("role") == "assistant"]
        if outcome.turn.status is not TurnStatus.FINISHED:
            texts = []  # hibernated (or failed): there is no answer yet
        return {
            "text": next((text for text in reversed(texts) if text), ""),
            "session": convert.session_pb(view_of_head(outcome.head, now)),
            "turn": convert.turn_pb(outcome.head.session_id, outcome.turn, now),
            "messages": [convert.stored_message_pb(m) for m in own],
        }

    @unary("Start")
    async def Start(self, request: pb.StartRequest, context, keys: TenantKeys) -> pb.StartResponse:
        """Starts a session."""
        state = parse_json_object(
            request.agent_state_json,
            field="agent_state_json",
            max_bytes=self.domain.limits.max_state_bytes,
        )
        view, created = await self.domain.sessions.start(
            keys,
            session_id=request.session_id,
            agent_id=request.agent_id,
            title=request.title,
            labels=dict(request.labels),
            metadata=dict(request.metadata),
            parent_session_id=request.parent_session_id,
            request_id=request.request_id,
            return_existing=request.return_existing,
            agent_state=state,
        )
        return pb.StartResponse(session=convert.session_pb(view), created=created)

    async def Run(
        self, request_iterator: AsyncIterator[pb.RunRequest], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RunResponse]:
        """Runs a turn driven by the caller's runtime (bidirectional stream)."""
        async for response in self._run_stream(request_iterator, context):
            yield response

    @streaming("Run")
    async def _run_stream(self, request_iterator, context, keys: TenantKeys):
        async for response in self._run.handle(keys, request_iterator, context):
            yield response

    @unary("Chat")
    async def Chat(self, request: pb.ChatRequest, context, keys: TenantKeys) -> pb.ChatResponse:
        """One server-engine turn: text in, text out."""
        turns = self.domain.turns
        outcome = await turns.detachable(
            turns.chat(
                keys,
                session_id=request.session_id,
                agent_id=request.agent_id,
                text=request.text,
                engine=request.engine,
                checkpoint=convert.CHECKPOINT_FROM_PB.get(request.checkpoint, "INVALID"),
                request_id=request.request_id,
                model=request.model,
            )
        )
        return pb.ChatResponse(**self._outcome_fields(outcome))

    @unary("Resume")
    async def Resume(
        self, request: pb.ResumeRequest, context, keys: TenantKeys
    ) -> pb.ResumeResponse:
        """Continues a hibernated server-engine turn."""
        resolutions = tuple(
            (item.review_id, convert.decision_from_pb(item.decision))
            for item in request.resolutions
        )
        turns = self.domain.turns
        outcome = await turns.detachable(
            turns.resume(
                keys,
                session_id=request.session_id,
                resolutions=resolutions,
                request_id=request.request_id,
            )
        )
        return pb.ResumeResponse(**self._outcome_fields(outcome))

    @unary("ListPendingReviews")
    async def ListPendingReviews(
        self, request: pb.ListPendingReviewsRequest, context, keys: TenantKeys
    ) -> pb.ListPendingReviewsResponse:
        """Pending reviews of a session or of the tenant."""
        page, token = await self.domain.reviews.list_pending(
            keys,
            session_id=request.session_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        now = self.domain.clock.now()
        return pb.ListPendingReviewsResponse(
            reviews=[convert.review_pb(sid, review, now) for sid, review in page],
            next_page_token=token,
        )

    @unary("ResolveReview")
    async def ResolveReview(
        self, request: pb.ResolveReviewRequest, context, keys: TenantKeys
    ) -> pb.ResolveReviewResponse:
        """Records a review decision."""
        review, view = await self.domain.reviews.resolve(
            keys,
            session_id=request.session_id,
            review_id=request.review_id,
            decision=convert.decision_from_pb(request.decision),
            fingerprint_=request.fingerprint,
            request_id=request.request_id,
        )
        now = self.domain.clock.now()
        return pb.ResolveReviewResponse(
            review=convert.review_pb(view.session_id, review, now),
            session=convert.session_pb(view),
        )

    @unary("Archive")
    async def Archive(
        self, request: pb.ArchiveRequest, context, keys: TenantKeys
    ) -> pb.ArchiveResponse:
        """Archives a session."""
        view = await self.domain.sessions.set_archived(
            keys,
            session_id=request.session_id,
            archived=True,
            etag=request.etag,
            request_id=request.request_id,
        )
        return pb.ArchiveResponse(session=convert.session_pb(view))

    @unary("Unarchive")
    async def Unarchive(
        self, request: pb.UnarchiveRequest, context, keys: TenantKeys
    ) -> pb.UnarchiveResponse:
        """Unarchives a session."""
        view = await self.domain.sessions.set_archived(
            keys,
            session_id=request.session_id,
            archived=False,
            etag=request.etag,
            request_id=request.request_id,
        )
        return pb.UnarchiveResponse(session=convert.session_pb(view))

    @unary("Get")
    async def Get(self, request: pb.GetRequest, context, keys: TenantKeys) -> pb.GetResponse:
        """Returns one session."""
        view = await self.domain.sessions.get(keys, request.session_id)
        return pb.GetResponse(session=convert.session_pb(view))

    @unary("List")
    async def List(self, request: pb.ListRequest, context, keys: TenantKeys) -> pb.ListResponse:
        """Lists sessions, newest first."""
        archived = _ARCHIVED.get(request.archived)
        if archived is None:
            raise InvalidArgument("unknown archived filter", field="archived")
        views, token = await self.domain.sessions.list_sessions(
            keys,
            statuses=[convert.status_from_pb(value) for value in request.statuses],
            labels=dict(request.labels),
            archived=archived,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListResponse(
            sessions=[convert.session_pb(view) for view in views], next_page_token=token
        )

    @unary("ListMessages")
    async def ListMessages(
        self, request: pb.ListMessagesRequest, context, keys: TenantKeys
    ) -> pb.ListMessagesResponse:
        """Lists one agent's messages."""
        page, token = await self.domain.sessions.list_messages(
            keys,
            session_id=request.session_id,
            agent_id=request.agent_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return pb.ListMessagesResponse(
            messages=[convert.stored_message_pb(m) for m in page], next_page_token=token
        )

    @unary("Delete")
    async def Delete(
        self, request: pb.DeleteRequest, context, keys: TenantKeys
    ) -> pb.DeleteResponse:
        """Deletes a session."""
        await self.domain.sessions.delete(
            keys, session_id=request.session_id, etag=request.etag, request_id=request.request_id
        )
        return pb.DeleteResponse()

    @unary("Replay")
    async def Replay(
        self, request: pb.ReplayRequest, context, keys: TenantKeys
    ) -> pb.ReplayResponse:
        """The session's timeline."""
        turns, token = await self.domain.sessions.replay(
            keys,
            session_id=request.session_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        now = self.domain.clock.now()
        return pb.ReplayResponse(
            turns=[convert.turn_pb(request.session_id, turn, now) for turn in turns],
            next_page_token=token,
        )

    async def Export(self, request: pb.ExportRequest, context) -> AsyncIterator[pb.ExportResponse]:
        """Exports sessions as a bundle."""
        async for response in self._export(request, context):
            yield response

    @streaming("Export")
    async def _export(self, request, context, keys: TenantKeys):
        async for response in self._bundles.export(keys, request):
            yield response

    async def Import(self, request_iterator, context) -> pb.ImportResponse:
        """Imports a bundle."""
        return await self._import(request_iterator, context)

    @unary("Import")
    async def _import(self, request_iterator, context, keys: TenantKeys) -> pb.ImportResponse:
        return await self._bundles.import_(keys, request_iterator)
