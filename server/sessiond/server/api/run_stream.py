"""The ``Run`` bidirectional stream: a turn driven by the caller's own runtime.

Protocol (see the proto): ``open`` → server claims the session and answers
``started`` plus the history in ``history`` chunks → any number of ``append``
(each answered by ``appended`` once committed) → ``finish`` / ``hibernate`` /
``fail`` → server answers ``ended`` and closes. If the stream breaks (the
caller disconnects or half-closes early), the turn ends as ERROR and the lease
is released; every acknowledged append stays.

With a server-side engine (``open.engine`` names one), the server runs the
turn after ``started`` / ``history``: it streams the model's text as
``delta`` messages, acknowledges each commit with ``appended`` (the final answer
included), sends ``tool_calls`` for the caller's runtime to execute and waits
for ``tool_results``, and ends with ``ended`` (see
:mod:`sessiond.server.api.stream_caller` and docs/engines.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

import grpc

from sessiond.errors import InvalidArgument, MessageTooLarge, SessiondError
from sessiond.server.api import convert
from sessiond.server.api.content_codec import message_from_dict, message_to_dict
from sessiond.server.api.stream_caller import StreamCaller, tools_from_pb
from sessiond.server.domain.clock import Clock, IdSource
from sessiond.server.domain.engine_calls import CallerGone, TurnOptions
from sessiond.server.domain.engines import CLIENT_ENGINE, EngineRegistry
from sessiond.server.domain.keys import TenantKeys
from sessiond.server.domain.limits import Limits
from sessiond.server.domain.records import StoredMessage
from sessiond.server.domain.reviews import ReviewInput, build_reviews
from sessiond.server.domain.turn_changes import SnapshotInput, TurnOutcome, TurnUpdate
from sessiond.server.domain.turn_service import OpenRequest, TurnService
from sessiond.server.domain.turns import ActiveTurn
from sessiond.server.domain.validation import parse_json, parse_json_object
from sessiond.server.domain.views import view_of_head
from sessiond.v1 import content_pb2
from sessiond.v1 import session_service_pb2 as pb

log = logging.getLogger("sessiond.run")

HISTORY_CHUNK_MESSAGES = 256
HISTORY_CHUNK_BYTES = 1024 * 1024


class RunHandler:
    """Serves one Run stream at a time per call; stateless between calls."""

    def __init__(
        self,
        turns: TurnService,
        *,
        engines: EngineRegistry,
        ids: IdSource,
        clock: Clock,
        limits: Limits,
    ) -> None:
        self._turns = turns
        self._engines = engines
        self._ids = ids
        self._clock = clock
        self._limits = limits

    async def drain(self, seconds: float) -> None:
        """Waits up to ``seconds`` for lease releases of broken streams and detached turns."""
        await self._turns.background.drain(seconds)

    async def handle(
        self,
        keys: TenantKeys,
        requests: AsyncIterator[pb.RunRequest],
        context: grpc.aio.ServicerContext,
    ) -> AsyncIterator[pb.RunResponse]:
        """Drives one Run call."""
        first = await anext(aiter(requests), None)
        if first is None or first.WhichOneof("action") != "open":
            raise InvalidArgument("the first Run message must be open", field="open")
        request = self._open_request(first.open)
        opened = await self._turns.open(keys, request)
        if isinstance(opened, TurnOutcome):
            yield self._ended(opened)
            return
        active = opened
        if active.turn.engine != CLIENT_ENGINE:
            async for response in self._engine_turn(active, requests, request, first.open):
                yield response
            return
        try:
            history = await active.history(limit=first.open.history_limit)
            yield await self._started(active, history)
            for chunk in self._history_chunks(history):
                yield chunk
            async for request in requests:
                response = await self._step(active, request)
                yield response
                if active.closed:
                    return
            await active.release("STREAM_CLOSED", "the stream closed before the turn ended")
        except SessiondError:
            await active.release("RUN_FAILED", "the turn failed")
            raise
        except Exception:
            await active.release("RUN_FAILED", "the turn failed")
            raise
        finally:
            if not active.closed:
                # The call was cancelled (client gone, deadline, shutdown):
                # release in a task that outlives this handler.
                self._turns.background.spawn(
                    active.release("STREAM_BROKEN", "the stream broke before the turn ended")
                )

    async def _engine_turn(
        self,
        active: ActiveTurn,
        requests: AsyncIterator[pb.RunRequest],
        request: OpenRequest,
        open_: pb.RunOpen,
    ) -> AsyncIterator[pb.RunResponse]:
        """A server-engine turn: the engine's tool loop runs in a task; this relays its output.

        When the call is cancelled (the caller went away), the loop task
        either outlives it just long enough to end the turn as ERROR
        (``STREAM_BROKEN``, releasing the lease at once), or, with
        ``--on-disconnect complete``, runs on without the caller: its output
        is dropped and tool calls hibernate the turn for a resuming Run.
        """
        engine = self._engines.get(active.turn.engine)
        outbox: asyncio.Queue[pb.RunResponse | _Done] = asyncio.Queue(maxsize=256)
        caller = StreamCaller(requests, outbox.put)
        emit = caller.emit

        async def drive() -> None:
            try:
                history = await active.history(limit=open_.history_limit)
                await emit(await self._started(active, history))
                for chunk in self._history_chunks(history):
                    await emit(chunk)
                outcome = await self._turns.run_engine(
                    active,
                    engine,
                    caller=caller,
                    options=TurnOptions(tools=request.tools, model=request.model),
                    cancel_code="STREAM_BROKEN",
                )
                await emit(_Done(outcome=outcome))
            except CallerGone:
                await emit(_Done())
            except Exception as exc:
                if not active.closed:
                    await active.release("RUN_FAILED", "the turn failed")
                await emit(_Done(error=exc))
            finally:
                if not active.closed:  # cancelled before the engine ran
                    await asyncio.shield(
                        active.release("STREAM_BROKEN", "the stream broke before the turn ended")
                    )

        task = self._turns.background.spawn(drive())
        try:
            while True:
                item = await outbox.get()
                if not isinstance(item, _Done):
                    yield item
                    continue
                if item.error is not None:
                    raise item.error
                if item.outcome is not None:
                    yield self._ended(item.outcome)
                return
        finally:
            if task.done():
                pass
            elif self._turns.complete_on_disconnect:
                caller.detach()
            else:
                task.cancel()

    def _open_request(self, open_: pb.RunOpen) -> OpenRequest:
        if open_.history_limit < 0:
            raise InvalidArgument("history_limit must not be negative", field="history_limit")
        checkpoint = convert.CHECKPOINT_FROM_PB.get(open_.checkpoint)
        if checkpoint is None:
            raise InvalidArgument("unknown checkpoint policy", field="checkpoint")
        return OpenRequest(
            session_id=open_.session_id,
            agent_id=open_.agent_id,
            input=message_to_dict(open_.input, field="input") if open_.HasField("input") else None,
            resume=open_.resume,
            engine=open_.engine or CLIENT_ENGINE,
            checkpoint=checkpoint,
            request_id=open_.request_id,
            runtime=True,
            tools=tools_from_pb(list(open_.tools)),
            model=open_.model,
        )

    async def _started(self, active: ActiveTurn, history: list[StoredMessage]) -> pb.RunResponse:
        now = self._clock.now()
        head = active.head
        started = pb.RunStarted(
            session=convert.session_pb(view_of_head(head, now)),
            turn=convert.turn_pb(head.session_id, active.turn, now),
            agent_state_json=convert.json_text(head.agents[active.agent_id].state),
            reviews=[convert.review_pb(head.session_id, r, now) for r in active.turn.reviews],
            history_message_count=len(history),
        )
        if active.pending_input is not None:
            # Recorded with the turn's first commit, at the next index.
            started.input.CopyFrom(
                content_pb2.SessionMessage(
                    agent_id=active.agent_id,
                    index=head.agents[active.agent_id].message_count,
                    message=message_from_dict(active.pending_input),
                    turn_id=active.turn.turn_id,
                )
            )
        snapshot = await active.snapshot()
        if snapshot is not None:
            data, content_type = snapshot
            started.snapshot.data = data
            started.snapshot.content_type = content_type
            started.snapshot.turn_id = active.turn.turn_id
        return pb.RunResponse(started=started)

    def _history_chunks(self, history: list[StoredMessage]) -> list[pb.RunResponse]:
        chunks: list[pb.RunResponse] = []
        batch: list = []
        size = 0
        for record in history:
            message = convert.stored_message_pb(record)
            batch.append(message)
            size += message.ByteSize()
            if len(batch) >= HISTORY_CHUNK_MESSAGES or size >= HISTORY_CHUNK_BYTES:
                chunks.append(pb.RunResponse(history=pb.HistoryChunk(messages=batch)))
                batch, size = [], 0
        if batch:
            chunks.append(pb.RunResponse(history=pb.HistoryChunk(messages=batch)))
        return chunks

    def _update(self, update: pb.TurnUpdate, now: datetime) -> TurnUpdate:
        limits = self._limits
        if len(update.messages) > limits.max_messages_per_update:
            raise InvalidArgument(
                f"at most {limits.max_messages_per_update} messages per update",
                field="update.messages",
            )
        messages = tuple(
            message_to_dict(message, field=f"update.messages[{i}]")
            for i, message in enumerate(update.messages)
        )
        state = parse_json_object(
            update.state_json, field="update.state_json", max_bytes=limits.max_state_bytes
        )
        events = convert.events_from_pb(
            list(update.events), now, limits.max_events_per_update, limits.max_event_bytes
        )
        redactions = tuple(
            (item.index, message_to_dict(item.message, field="update.redactions.message"))
            for item in update.redactions
        )
        strands_state = {
            name: parse_json_object(
                getattr(update, f"{name}_json"),
                field=f"update.{name}_json",
                max_bytes=limits.max_state_bytes,
            )
            for name in ("conversation_manager_state", "internal_state")
        }
        return TurnUpdate(
            messages=messages,
            state=state,
            events=events,
            usage=convert.usage_from_pb(update.usage),
            redactions=redactions,
            **strands_state,
        )

    async def _step(self, active: ActiveTurn, request: pb.RunRequest) -> pb.RunResponse:
        now = self._clock.now()
        kind = request.WhichOneof("action")
        if kind == "append":
            outcome = await active.append(self._update(request.append.update, now))
            return pb.RunResponse(
                appended=pb.RunAppended(
                    messages=[convert.stored_message_pb(m) for m in outcome.appended],
                    etag=outcome.head.etag,
                )
            )
        if kind == "finish":
            return self._ended(await active.finish(self._update(request.finish.update, now)))
        if kind == "hibernate":
            hibernate = request.hibernate
            update = self._update(hibernate.update, now)
            snapshot = None
            if hibernate.HasField("snapshot"):
                if len(hibernate.snapshot.data) > self._limits.max_snapshot_bytes:
                    raise MessageTooLarge(
                        "the snapshot is too large",
                        field="hibernate.snapshot",
                        limit=self._limits.max_snapshot_bytes,
                    )
                snapshot = SnapshotInput(
                    data=hibernate.snapshot.data, content_type=hibernate.snapshot.content_type
                )
            reviews = build_reviews(
                [self._review_input(item) for item in hibernate.reviews],
                turn_id=active.turn.turn_id,
                now=now,
                ids=self._ids,
                limit=self._limits.max_reviews_per_turn,
            )
            outcome = await active.hibernate(update, snapshot=snapshot, reviews=reviews)
            return self._ended(outcome)
        if kind == "fail":
            message = request.fail.error_message[:1024] or "the runtime failed"
            return self._ended(await active.fail("RUNTIME_FAILED", message))
        raise InvalidArgument("open may only be the first Run message", field="open")

    def _review_input(self, item) -> ReviewInput:
        return ReviewInput(
            review_id=item.review_id,
            tool_use_id=item.tool_use_id,
            tool_name=item.tool_name,
            input=parse_json(item.input_json, field="reviews.input_json")
            if item.input_json
            else None,
            description=item.description,
            expires_at=convert.from_timestamp(item.expire_time, item.HasField("expire_time")),
            default_action=convert.action_from_pb(item.default_action),
        )

    def _ended(self, outcome: TurnOutcome) -> pb.RunResponse:
        return ended_response(outcome, self._clock.now())


def ended_response(outcome: TurnOutcome, now: datetime) -> pb.RunResponse:
    """The ``ended`` answer for a turn's outcome."""
    return pb.RunResponse(
        ended=pb.RunEnded(
            session=convert.session_pb(view_of_head(outcome.head, now)),
            turn=convert.turn_pb(outcome.head.session_id, outcome.turn, now),
        )
    )


@dataclass
class _Done:
    """The end of a server-engine turn's output: its outcome, or the error to report."""

    outcome: TurnOutcome | None = None
    error: BaseException | None = None
