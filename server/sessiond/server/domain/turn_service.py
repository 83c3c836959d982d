"""Opening turns (new or resumed) and running server-side engines: Run, Chat, Resume."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sessiond.errors import (
    InternalError,
    InvalidArgument,
    InvalidTransition,
    ReviewsPending,
    RuntimeRequired,
    SessionArchived,
    SessiondError,
    SessionFenced,
    Unavailable,
)
from sessiond.server.domain import strands
from sessiond.server.domain.adoption import AppendProbe
from sessiond.server.domain.claims import Replay, claim
from sessiond.server.domain.content import check_message, text_message
from sessiond.server.domain.context import ServiceContext
from sessiond.server.domain.engine_calls import (
    Caller,
    CallerGone,
    TurnOptions,
    engine_snapshot,
    needs_runtime,
)
from sessiond.server.domain.engine_loop import EngineLoop
from sessiond.server.domain.engines import (
    CLIENT_ENGINE,
    TURN_FAILURES,
    Engine,
    EngineRegistry,
    ToolSpec,
    check_tools,
    resolve_model,
)
from sessiond.server.domain.keys import TenantKeys
from sessiond.server.domain.mutations import mutate, remember_request
from sessiond.server.domain.records import (
    Agent,
    Event,
    Head,
    RequestRecord,
    Status,
    Turn,
    TurnError,
    TurnStatus,
)
from sessiond.server.domain.repository import store_errors
from sessiond.server.domain.reviews import DecisionInput, check_decision, record_decision
from sessiond.server.domain.turn_changes import TurnOutcome, TurnUpdate
from sessiond.server.domain.turns import ActiveTurn
from sessiond.server.domain.validation import check_id, check_optional_id, check_request_id
from sessiond.server.storage.port import CREATE, AlreadyExists, NotFound

log = logging.getLogger("sessiond.turns")

CHECKPOINTS = ("NONE", "AFTER_PROMPT")
MAX_ORPHAN_PROBES = 1024


@dataclass(frozen=True)
class OpenRequest:
    """What opens a turn (Run's ``open``, Chat, Resume)."""

    session_id: str
    agent_id: str = ""
    input: dict[str, Any] | None = None
    resume: bool = False
    engine: str = CLIENT_ENGINE
    checkpoint: str = "NONE"
    request_id: str = ""
    resolutions: tuple[tuple[str, DecisionInput], ...] = ()
    #: The caller's runtime is connected (a Run stream): it can resume
    #: ``client`` turns and run the tools of server-engine turns.
    runtime: bool = False
    #: Tools the caller's runtime offers to a server engine's model.
    tools: tuple[ToolSpec, ...] = ()
    #: The model instead of the engine's default (from the allowed list).
    model: str = ""


class TurnService:
    """Claims sessions for turns and drives server-side engines."""

    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx
        self._loop = EngineLoop(
            limits=ctx.limits, ids=ctx.ids, clock=ctx.clock, settings=ctx.engines.loop
        )
        #: Lease releases of broken streams and turns completing without their caller.
        self.background = ctx.background

    @property
    def complete_on_disconnect(self) -> bool:
        """Whether server-engine turns run on when their caller goes away (``--on-disconnect``)."""
        return self._ctx.engines.loop.complete_on_disconnect

    async def detachable(self, work: Coroutine[Any, Any, TurnOutcome]) -> TurnOutcome:
        """Awaits a server-engine turn (``chat`` / ``resume``) under the disconnect policy.

        With ``complete``, a caller that goes away (disconnect, deadline) does
        not cancel the turn: it runs to its end in the background. Otherwise
        the cancellation ends the turn as ERROR.
        """
        if self.complete_on_disconnect:
            return await self.background.outlive(work)
        return await work

    async def open(self, keys: TenantKeys, request: OpenRequest) -> ActiveTurn | TurnOutcome:
        """Claims the session and opens (or resumes) a turn.

        Returns an ``ActiveTurn`` holding the lease, or a ``TurnOutcome`` when
        nothing is left to run: the request id was already applied, or the
        checkpoint policy hibernated the turn right after recording the input.
        """
        ctx = self._ctx
        sid = check_id(request.session_id, field="session_id")
        agent = check_optional_id(request.agent_id, field="agent_id")
        request_id = check_request_id(request.request_id)
        if request.checkpoint not in CHECKPOINTS:
            raise InvalidArgument("unknown checkpoint policy", field="checkpoint")
        if request.resume:
            if request.input is not None:
                raise InvalidArgument("a resumed turn takes no new input", field="input")
        elif request.input is None:
            raise InvalidArgument("input is required to start a turn", field="input")
        else:
            check_message(request.input, ctx.limits, field="input")
        for review_id, decision in request.resolutions:
            check_id(review_id, field="resolutions.review_id")
            check_decision(decision)
        check_tools(list(request.tools))
        if not request.resume and request.engine != CLIENT_ENGINE:
            resolve_model(ctx.engines.get(request.engine), request.model)
        run_id = ctx.ids.random_hex(8)
        created_agent: list[str] = []
        probes: list[AppendProbe] = []

        def shape(head: Head, now: datetime) -> None:
            created_agent.clear()
            record = head.find_request(request_id, "turn")
            if record is not None:
                raise Replay(head, "")
            if head.archived:
                raise SessionArchived("the session is archived", session_id=sid)
            if request.resume:
                _shape_resume(head, now, request, run_id, ctx.engines)
            else:
                aid = agent or head.agent_id
                if aid not in head.agents:
                    head.agents[aid] = Agent(agent_id=aid, created_at=now, updated_at=now)
                    created_agent.append(aid)
                _shape_new(head, now, request, run_id, aid)
            if request_id:
                remember_request(
                    head,
                    RequestRecord(
                        request_id=request_id, op="turn", turn_number=head.tail[-1].number, at=now
                    ),
                )
            # With --adopt-on-claim, look for a Strands writer's appends while
            # the claim's CAS is in flight (same round trip); a retried claim
            # starts over. Without it they are found at the first commit.
            for stale in probes:
                stale.cancel()
            probes.clear()
            aid = head.tail[-1].agent_id
            if ctx.adopt_on_claim and aid not in created_agent and ctx.adoption is not None:
                probes.append(AppendProbe.start(ctx.adoption, keys, head, aid))

        try:
            claimed = await claim(
                ctx.repo,
                keys,
                sid,
                holder=ctx.holder,
                run_id=run_id,
                clock=ctx.clock,
                ttl=ctx.lease_ttl,
                shape=shape,
                on_conflict=ctx.metrics.claim_conflict,
            )
        except BaseException as error:
            for probe in probes:
                probe.cancel()
            if isinstance(error, Replay):
                return await self._replayed(keys, error.head, request_id or "")
            raise
        if claimed.took_over:
            await self._clean_orphans(keys, claimed.head)
        for aid in created_agent:
            await self._create_agent_files(keys, claimed.head, aid)
        active = ActiveTurn(
            ctx.turn_deps(), keys, claimed.head, claimed.etag, pending_input=request.input
        )
        try:
            if ctx.adopt_on_claim:
                await active.adopt_strands_appends(probes[0] if probes else None)
        except BaseException:
            await asyncio.shield(
                active.release(
                    "ADOPTION_FAILED", "messages a Strands writer appended are unreadable"
                )
            )
            raise
        active.start_renewal()
        if request.checkpoint == "AFTER_PROMPT" and not request.resume:
            # A server-engine turn keeps the request's tools and model for
            # whichever replica resumes it.
            keep = request.engine != CLIENT_ENGINE and (request.tools or request.model)
            snapshot = engine_snapshot(TurnOptions(request.tools, request.model)) if keep else None
            return await active.hibernate(TurnUpdate(), snapshot=snapshot, reviews=[])
        return active

    async def chat(
        self,
        keys: TenantKeys,
        *,
        session_id: str,
        agent_id: str,
        text: str,
        engine: str,
        checkpoint: str,
        request_id: str,
        model: str = "",
    ) -> TurnOutcome:
        """One server-engine turn with text input.

        Raises:
            SessiondError: Besides the claim's errors, the engine's failures
                (``EngineTimeout``, ``EngineRateLimited``...), also when a
                retry with the same request id finds the turn that failed.
        """
        if len(text) > self._ctx.limits.max_text_chars:
            raise InvalidArgument("text is too long", field="text")
        if not text:
            raise InvalidArgument("text is required", field="text")
        chosen = self._ctx.engines.get(engine)
        resolve_model(chosen, model)
        if getattr(chosen, "instant", False) and checkpoint == "NONE":
            fast = await self._optimistic_chat(keys, session_id, agent_id, text, chosen, request_id)
            if fast is not None:
                return _raise_failed(fast)
        opened = await self.open(
            keys,
            OpenRequest(
                session_id=session_id,
                agent_id=agent_id,
                input=text_message("user", text),
                engine=chosen.name,
                checkpoint=checkpoint,
                request_id=request_id,
                model=model,
            ),
        )
        if isinstance(opened, TurnOutcome):
            return _raise_failed(opened)
        return await self.run_engine(opened, chosen, options=TurnOptions(model=model))

    async def _optimistic_chat(
        self,
        keys: TenantKeys,
        session_id: str,
        agent_id: str,
        text: str,
        engine: Engine,
        request_id: str,
    ) -> TurnOutcome | None:
        """A Chat turn of an instant engine in one commit, without a claim.

        Two sequential steps instead of three: the message files (create-only)
        in parallel, then one CAS of the head. A live or expired lease, a
        suspended turn, or a new agent hand the turn to the claimed path
        (None). So does losing a race twice (the second try reads a fresh
        head): concurrent optimistic writers can keep fencing each other, and
        the claim serialises them.
        """
        ctx = self._ctx
        sid = check_id(session_id, field="session_id")
        agent = check_optional_id(agent_id, field="agent_id")
        request = check_request_id(request_id)
        message = text_message("user", text)
        check_message(message, ctx.limits, field="input")
        for attempt in range(2):
            head, etag = await ctx.repo.head_for(keys, sid, fresh=attempt > 0)
            now = ctx.clock.now()
            if head.find_request(request, "turn") is not None:
                return await self._replayed(keys, head, request or "")
            aid = agent or head.agent_id
            if head.lease is not None or head.open_turn is not None or head.archived:
                return None
            if aid not in head.agents:
                return None
            run_id = ctx.ids.random_hex(8)
            shaped = head.working_copy()
            _shape_new(
                shaped,
                now,
                OpenRequest(
                    session_id=sid, agent_id=aid, engine=engine.name, request_id=request or ""
                ),
                run_id,
                aid,
            )
            if request:
                remember_request(
                    shaped,
                    RequestRecord(
                        request_id=request, op="turn", turn_number=shaped.turn_count, at=now
                    ),
                )
            active = ActiveTurn(ctx.turn_deps(), keys, shaped, etag, pending_input=message)
            try:
                return await self.run_engine(active, engine)
            except SessionFenced:
                ctx.metrics.claim_conflict()
        return None

    async def resume(
        self,
        keys: TenantKeys,
        *,
        session_id: str,
        resolutions: tuple[tuple[str, DecisionInput], ...],
        request_id: str,
    ) -> TurnOutcome:
        """Continues a hibernated server-engine turn, recording decisions first."""
        opened = await self.open(
            keys,
            OpenRequest(
                session_id=session_id,
                resume=True,
                engine="",
                request_id=request_id,
                resolutions=resolutions,
            ),
        )
        if isinstance(opened, TurnOutcome):
            return _raise_failed(opened)
        return await self.run_engine(opened, self._ctx.engines.get(opened.turn.engine))

    async def run_engine(
        self,
        active: ActiveTurn,
        engine: Engine,
        *,
        caller: Caller | None = None,
        options: TurnOptions | None = None,
        cancel_code: str = "CANCELLED",
    ) -> TurnOutcome:
        """Runs a server-side engine's tool loop for an open turn until it ends.

        Args:
            active: The claimed turn.
            engine: The turn's engine.
            caller: The caller's runtime (a Run stream), which receives text
                deltas and commit acknowledgements and runs tools; None for
                Chat and Resume.
            options: The request's tools and model (a resumed turn falls back
                to those saved in its snapshot).
            cancel_code: The turn's error code if the call is cancelled (the
                caller went away).
        """
        run = self._loop.start(active, engine, caller=caller, options=options or TurnOptions())
        try:
            return await run.execute()
        except SessiondError:
            raise
        except Exception as exc:
            if isinstance(exc, CallerGone):
                raise
            log.exception("engine turn of %s failed", engine.name)
            await active.release("ENGINE_FAILED", f"the {engine.name} engine failed")
            raise InternalError(f"the {engine.name} engine failed", engine=engine.name) from exc
        finally:
            if not active.closed:
                message = "the caller went away" if caller else "the turn was cancelled"
                await asyncio.shield(run.abandon(cancel_code, message))

    # -- helpers -------------------------------------------------------------

    async def _replayed(self, keys: TenantKeys, head: Head, request_id: str) -> TurnOutcome:
        """The outcome of a turn whose request id was already applied."""
        record = head.find_request(request_id, "turn")
        assert record is not None and record.turn_number is not None
        if head.open_turn is not None and head.open_turn.number == record.turn_number:
            if head.open_turn.status is TurnStatus.RUNNING:
                # Its runner died (the lease expired): settle it as failed, once.
                head = await self._settle_abandoned(keys, head.session_id)
        turns = await self._ctx.repo.turns(keys, head)
        turn = next(t for t in turns if t.number == record.turn_number)
        return TurnOutcome(head=head, turn=turn)

    async def _settle_abandoned(self, keys: TenantKeys, session_id: str) -> Head:
        def settle(head: Head, now: datetime) -> None:
            _expire_open_turn(head, now)

        head, _ = await mutate(
            self._ctx, keys, session_id, op="settle", request_id=None, etag=None, change=settle
        )
        return head

    async def _clean_orphans(self, keys: TenantKeys, head: Head) -> None:
        """Deletes message files a fenced or crashed runner left beyond the committed count.

        Files without sessiond's marker were appended by a Strands writer and
        are never deleted.
        """
        store = self._ctx.repo.store
        for agent in head.agents.values():
            for index in range(agent.message_count, agent.message_count + MAX_ORPHAN_PROBES):
                key = keys.message(head.session_id, agent.agent_id, index)
                try:
                    with store_errors():
                        body = (await store.get(key)).body
                except NotFound:
                    break
                document = strands.parse_message_file(body)
                marker = strands.marker_of(document) if document else None
                if document is not None and marker is None:
                    break
                with store_errors():
                    await store.delete(key)

    async def _create_agent_files(self, keys: TenantKeys, head: Head, agent_id: str) -> None:
        # Create-only: an agent new to sessiond may be one a Strands writer
        # added to the session; its agent.json (state and all) is adopted with
        # its messages at the turn's first commit, so it must survive.
        results = await asyncio.gather(
            self._ctx.repo.put(
                keys.agent_json(head.session_id, agent_id),
                strands.agent_file(head.agents[agent_id]),
                mode=CREATE,
            ),
            self._ctx.repo.store.ensure_prefix(keys.messages_prefix(head.session_id, agent_id)),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, AlreadyExists):
                raise result


def _expire_open_turn(head: Head, now: datetime) -> None:
    """Ends a RUNNING turn whose lease expired as ERROR (its commits stay)."""
    turn = head.open_turn
    if turn is None or turn.status is not TurnStatus.RUNNING:
        return
    turn.status = TurnStatus.ERROR
    turn.ended_at = now
    turn.error = TurnError(code="LEASE_EXPIRED", message="the runner stopped renewing its lease")
    turn.events.append(Event(time=now, type="failed", data={"code": "LEASE_EXPIRED"}))
    head.status = Status.ERROR
    head.lease = None


def _shape_new(head: Head, now: datetime, request: OpenRequest, run_id: str, aid: str) -> None:
    open_turn = head.open_turn
    if open_turn is not None:
        if open_turn.status is TurnStatus.RUNNING:
            _expire_open_turn(head, now)
        else:
            raise InvalidTransition(
                "the session has a suspended turn; resume it first",
                session_id=head.session_id,
                status=head.status.value,
            )
    number = head.turn_count + 1
    head.turn_count = number
    head.tail.append(
        Turn(
            turn_id=f"t{number:06d}",
            number=number,
            agent_id=aid,
            engine=request.engine or CLIENT_ENGINE,
            status=TurnStatus.RUNNING,
            request_id=request.request_id or None,
            run_id=run_id,
            started_at=now,
            first_index=head.agents[aid].message_count,
            checkpoint=request.checkpoint,
            events=[
                Event(
                    time=now,
                    type="turn.started",
                    data={"engine": request.engine or CLIENT_ENGINE, "run_id": run_id},
                )
            ],
        )
    )


def _raise_failed(outcome: TurnOutcome) -> TurnOutcome:
    """A replayed server-engine turn that failed raises its error again (same request id)."""
    error = outcome.turn.error
    if outcome.turn.status is TurnStatus.ERROR and error is not None:
        # Never answer OK for a turn that failed: an engine failure comes back
        # as itself; anything else (the lease expired, the store failed...)
        # as UNAVAILABLE, so the caller knows to look or try again.
        failure = TURN_FAILURES.get(error.code, Unavailable)
        raise failure(
            error.message,
            session_id=outcome.head.session_id,
            engine=outcome.turn.engine,
            turn_error=error.code,
            replayed="true",
        )
    return outcome


def _shape_resume(
    head: Head, now: datetime, request: OpenRequest, run_id: str, engines: EngineRegistry
) -> None:
    turn = head.open_turn
    if turn is None or turn.status is TurnStatus.RUNNING:
        raise InvalidTransition(
            "the session has no hibernated turn to resume",
            session_id=head.session_id,
            status=head.status.value,
        )
    if request.agent_id and request.agent_id != turn.agent_id:
        raise InvalidTransition(
            "the hibernated turn belongs to another agent of the session",
            session_id=head.session_id,
            agent_id=turn.agent_id,
        )
    if turn.engine == CLIENT_ENGINE and not request.runtime:
        raise RuntimeRequired(
            "this turn runs on the caller's runtime; continue it with Run (open.resume)",
            session_id=head.session_id,
        )
    if turn.engine != CLIENT_ENGINE:
        # A server-engine turn resumes through Resume, or through Run when
        # the caller's runtime must run tools; Run may name its engine or none.
        if request.engine not in ("", CLIENT_ENGINE, turn.engine):
            raise InvalidTransition(
                f"this turn runs on the {turn.engine} engine",
                session_id=head.session_id,
                engine=turn.engine,
            )
        resolve_model(engines.get(turn.engine), request.model)
    for review_id, decision in request.resolutions:
        record_decision(head, review_id, decision, "", now)
    pending = [review.review_id for review in turn.reviews if review.is_pending(now)]
    if pending:
        raise ReviewsPending(
            "review requests still wait for a decision",
            session_id=head.session_id,
            pending=",".join(pending),
        )
    for review in turn.reviews:
        review.decision = review.effective_decision(now)
    if turn.engine != CLIENT_ENGINE and not request.runtime and needs_runtime(turn):
        raise RuntimeRequired(
            "a tool call of this turn must run in the caller's runtime; "
            "continue it with Run (open.resume)",
            session_id=head.session_id,
        )
    turn.status = TurnStatus.RUNNING
    turn.resume_count += 1
    turn.run_id = run_id
    turn.events.append(Event(time=now, type="resumed", data={"run_id": run_id}))
