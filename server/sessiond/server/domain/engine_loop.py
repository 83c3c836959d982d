"""The tool loop of a server-engine turn: model calls, the caller's tools, reviews.

One turn, until the model gives an answer without tool calls:

1. Build the model's context: the agent's history (or, for engines that need
   none, the turn's own messages) plus the new input, trimmed to the context
   window and repaired (:mod:`~sessiond.server.domain.context_window`).
2. Call the model; text deltas go to the caller as they arrive.
3. No tool calls: commit the answer and finish.
4. Tool calls: if one of them is of a tool that ``requires_review``, commit
   the assistant message and hibernate as WAITING with one review request per
   such call (bound to it by a fingerprint of name + input). Otherwise commit
   the assistant message, send the calls to the caller, wait (with a timeout)
   for the results, commit them as a user message of ``toolResult`` blocks,
   and go back to 1 — at most ``max_tool_rounds`` times.

Calls of undeclared tools, or with an input that is not a JSON object, are
answered with an error result by the loop itself. On resume, the pending calls
of the last assistant message are settled first: approved ones run in the
caller's runtime, edited ones run with the edited input (the stored
``toolUse`` keeps the model's original input; the result starts with a note
giving the input used), rejected ones get an error result saying so.

The caller is abstract (:class:`~sessiond.server.domain.engine_calls.Caller`):
the gRPC ``Run`` stream implements it; ``Chat`` and ``Resume`` have none, so a
turn whose model wants a caller's tool hibernates until a ``Run`` with
``open.resume`` continues it. A caller that detaches mid-turn (it went away
and the server completes turns on disconnect) counts as none from then on:
calls committed before it left stay pending for that resuming ``Run``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import timedelta
from typing import Any

from sessiond.errors import (
    EngineUnavailable,
    InternalError,
    RuntimeRequired,
    SessiondError,
    ToolResultTimeout,
    ToolRoundsExceeded,
)
from sessiond.server.domain.clock import Clock, IdSource
from sessiond.server.domain.context_window import build_context
from sessiond.server.domain.engine_calls import (
    Caller,
    CallerFailed,
    CallerGone,
    TurnOptions,
    engine_snapshot,
    error_result,
    pending_calls,
    read_engine_snapshot,
    rejection_text,
)
from sessiond.server.domain.engines import (
    Engine,
    LoopSettings,
    ModelRequest,
    ModelResponse,
    TextDelta,
    ToolCall,
    tool_calls,
)
from sessiond.server.domain.limits import Limits
from sessiond.server.domain.records import Decision, Event, ReviewAction
from sessiond.server.domain.reviews import ReviewInput, build_reviews
from sessiond.server.domain.turn_changes import TurnOutcome, TurnUpdate
from sessiond.server.domain.turns import ActiveTurn

log = logging.getLogger("sessiond.engines")


class EngineLoop:
    """Runs server-engine turns (see the module doc)."""

    def __init__(self, *, limits: Limits, ids: IdSource, clock: Clock, settings: LoopSettings):
        self._limits = limits
        self._ids = ids
        self._clock = clock
        self.settings = settings

    def start(
        self,
        active: ActiveTurn,
        engine: Engine,
        *,
        caller: Caller | None,
        options: TurnOptions,
    ) -> TurnRun:
        """A run of the loop for one claimed turn (call :meth:`TurnRun.execute`)."""
        return TurnRun(self, active, engine, caller, options)


class TurnRun:
    """One execution of the loop on a claimed turn."""

    def __init__(
        self,
        loop: EngineLoop,
        active: ActiveTurn,
        engine: Engine,
        caller: Caller | None,
        options: TurnOptions,
    ) -> None:
        self._loop = loop
        self.active = active
        self.engine = engine
        self.caller = caller
        self.options = options
        self._tools = {tool.name: tool for tool in options.tools}
        self._conversation: list[dict[str, Any]] = []
        #: Calls committed in an assistant message whose results are not committed yet.
        self._dangling: list[ToolCall] = []

    async def execute(self) -> TurnOutcome:
        """Runs the turn to its end (finished, hibernated or failed).

        Raises:
            SessiondError: The model, the caller or a commit failed; the turn
                was ended as ERROR with the error's reason as its code.
            CallerGone: The caller's stream closed while tools ran; the turn
                was ended as ERROR (``STREAM_CLOSED``).
        """
        try:
            return await self._execute()
        except CallerFailed as failed:
            await self._close_dangling("the caller's runtime failed")
            return await self.active.fail("RUNTIME_FAILED", failed.message[:1024])
        except CallerGone:
            if self.caller is not None and not self.caller.attached:
                return await self._wait_for_a_caller()
            await self.abandon("STREAM_CLOSED", "the stream closed while tool results were awaited")
            raise
        except SessiondError as error:
            await self.abandon(error.reason, error.message)
            raise

    async def abandon(self, code: str, message: str) -> None:
        """Ends the turn as ERROR (best effort), first answering calls left without results."""
        if self.active.closed:
            return
        await self._close_dangling(message)
        await self.active.release(code, message)

    async def _wait_for_a_caller(self) -> TurnOutcome:
        """Hibernates the turn: its caller went away with tool calls to run.

        The committed calls stay pending (not closed with error results), so
        a ``Run`` with ``open.resume`` runs them and the turn goes on.
        """
        self._dangling = []
        return await self.active.hibernate(
            TurnUpdate(), snapshot=engine_snapshot(self.options), reviews=[]
        )

    def _live_caller(self) -> Caller | None:
        """The caller, while it is there to run tools and receive output."""
        return self.caller if self.caller is not None and self.caller.attached else None

    async def _close_dangling(self, reason: str) -> None:
        calls, self._dangling = self._dangling, []
        if not calls or self.active.closed:
            return
        text = f"The tool call was not completed: {reason}."
        message = {
            "role": "user",
            "content": [{"toolResult": error_result(c.tool_use_id, text)} for c in calls],
        }
        try:
            await self.active.append(TurnUpdate(messages=(message,)))
        except Exception:  # the context repair covers what this could not store
            log.warning("could not close unanswered tool calls", exc_info=True)

    async def _execute(self) -> TurnOutcome:
        active = self.active
        await self._load_options()
        await self._load_conversation()
        turn = active.turn
        rounds = sum(
            1
            for m in turn.messages
            if m.turn_id == turn.turn_id
            and m.message.get("role") == "assistant"
            and tool_calls(m.message)
        )
        pending = pending_calls(turn)
        if pending:
            decisions = {r.tool_use_id: r.decision for r in turn.reviews if r.decision}
            self._dangling = pending
            await self._commit_results(pending, decisions)
        while True:
            response = await self._call_model()
            update = {"usage": response.usage, "events": (self._model_event(response, rounds),)}
            calls = tool_calls(response.message)
            if not calls:
                return await self._ack(
                    await active.finish(TurnUpdate(messages=(response.message,), **update))
                )
            rounds += 1
            if rounds > self._loop.settings.max_tool_rounds:
                # The response is not stored, so no toolUse is left unanswered.
                raise ToolRoundsExceeded(
                    f"the model asked for more than {self._loop.settings.max_tool_rounds} "
                    "rounds of tool calls in one turn",
                    limit=self._loop.settings.max_tool_rounds,
                )
            reviewed = [c for c in calls if self._needs_review(c)]
            wants_caller = any(self._runnable(c) for c in calls)
            if reviewed or (wants_caller and self._live_caller() is None):
                return await self._ack(
                    await active.hibernate(
                        TurnUpdate(messages=(response.message,), **update),
                        snapshot=engine_snapshot(self.options),
                        reviews=self._reviews(reviewed),
                    )
                )
            await self._ack(await active.append(TurnUpdate(messages=(response.message,), **update)))
            self._conversation.append(response.message)
            self._dangling = calls
            await self._commit_results(calls, {})

    async def _load_options(self) -> None:
        """Tools and model the request did not give come from the turn's snapshot."""
        if (self.options.tools and self.options.model) or self.active.turn.snapshot is None:
            return
        snapshot = await self.active.snapshot()
        saved = read_engine_snapshot(*snapshot) if snapshot else None
        if saved is not None:
            self.options = TurnOptions(
                tools=self.options.tools or saved.tools, model=self.options.model or saved.model
            )
            self._tools = {tool.name: tool for tool in self.options.tools}

    async def _load_conversation(self) -> None:
        active = self.active
        if self.engine.needs_history:
            records = await active.history()
            self._conversation = [r.redact_message or r.message for r in records]
        else:
            turn = active.turn
            self._conversation = [m.message for m in turn.messages if m.turn_id == turn.turn_id]
        if active.pending_input is not None:
            self._conversation.append(active.pending_input)

    async def _call_model(self) -> ModelResponse:
        window = getattr(self.engine, "window", None) or self._loop.settings.window
        request = ModelRequest(
            messages=build_context(self._conversation, window),
            tools=self.options.tools,
            model=self.options.model,
            state=dict(self.active.head.agents[self.active.agent_id].state),
        )
        response: ModelResponse | None = None
        try:
            async for event in self.engine.stream(request):
                if isinstance(event, TextDelta):
                    caller = self._live_caller()
                    if caller is not None and event.text:
                        await caller.delta(event.text)
                elif isinstance(event, ModelResponse):
                    response = event
        except (SessiondError, CallerGone, CallerFailed):
            raise
        except Exception as exc:
            log.exception("engine %s failed", self.engine.name)
            raise InternalError(
                f"the {self.engine.name} engine failed", engine=self.engine.name
            ) from exc
        if response is None:
            raise EngineUnavailable(
                f"the {self.engine.name} engine ended without an answer", engine=self.engine.name
            )
        # DEBUG: one line per model call is noise at production rates; the
        # figures are in the turn's "model.response" events and usage.
        log.debug(
            "model call",
            extra={
                "engine": self.engine.name,
                "model": response.model or self.options.model,
                "stop_reason": response.stop_reason,
                "input_tokens": response.usage.input_tokens if response.usage else None,
                "output_tokens": response.usage.output_tokens if response.usage else None,
            },
        )
        return response

    def _model_event(self, response: ModelResponse, rounds: int) -> Event:
        data: dict[str, Any] = {"engine": self.engine.name, "round": rounds}
        if response.model or self.options.model:
            data["model"] = response.model or self.options.model
        if response.stop_reason:
            data["stop_reason"] = response.stop_reason
        if response.usage is not None:
            data["input_tokens"] = response.usage.input_tokens
            data["output_tokens"] = response.usage.output_tokens
        return Event(time=self._loop._clock.now(), type="model.response", data=data)

    def _runnable(self, call: ToolCall) -> bool:
        return call.name in self._tools and isinstance(call.input, dict)

    def _needs_review(self, call: ToolCall) -> bool:
        return self._runnable(call) and self._tools[call.name].requires_review

    def _reviews(self, calls: list[ToolCall]) -> list:
        now = self._loop._clock.now()
        inputs = []
        for call in calls:
            spec = self._tools[call.name]
            ttl = spec.review_ttl_seconds
            inputs.append(
                ReviewInput(
                    review_id="",
                    tool_use_id=call.tool_use_id,
                    tool_name=call.name,
                    input=call.input,
                    description=spec.description or f"a call of the {call.name} tool",
                    expires_at=now + timedelta(seconds=ttl) if ttl else None,
                    default_action=spec.review_default_action if ttl else None,
                )
            )
        return build_reviews(
            inputs,
            turn_id=self.active.turn.turn_id,
            now=now,
            ids=self._loop._ids,
            limit=self._loop._limits.max_reviews_per_turn,
        )

    async def _commit_results(
        self, calls: list[ToolCall], decisions: dict[str, Decision | None]
    ) -> None:
        """Settles ``calls`` (loop errors, review decisions, the caller) and commits the results."""
        results: dict[str, dict[str, Any]] = {}
        to_run: list[ToolCall] = []
        edited: dict[str, Any] = {}
        for call in calls:
            decision = decisions.get(call.tool_use_id)
            if decision is not None and decision.action is ReviewAction.REJECT:
                results[call.tool_use_id] = error_result(call.tool_use_id, rejection_text(decision))
            elif call.name not in self._tools:
                results[call.tool_use_id] = error_result(
                    call.tool_use_id, f"There is no tool named {call.name!r}."
                )
            elif not isinstance(call.input, dict):
                results[call.tool_use_id] = error_result(
                    call.tool_use_id, "The tool input must be a JSON object."
                )
            elif decision is not None and decision.action is ReviewAction.EDIT:
                edited[call.tool_use_id] = decision.edited_input
                to_run.append(ToolCall(call.tool_use_id, call.name, decision.edited_input))
            else:
                to_run.append(call)
        if to_run:
            results.update(await self._run_tools(to_run, edited))
        message = {
            "role": "user",
            "content": [{"toolResult": results[call.tool_use_id]} for call in calls],
        }
        await self._ack(await self.active.append(TurnUpdate(messages=(message,))))
        self._dangling = []
        self._conversation.append(message)

    async def _run_tools(
        self, calls: list[ToolCall], edited: dict[str, Any]
    ) -> dict[str, dict[str, Any]]:
        if self.caller is None:
            raise RuntimeRequired(
                "a tool call must run in the caller's runtime; continue the turn with Run",
                session_id=self.active.session_id,
            )
        timeout = self._loop.settings.tool_result_timeout_seconds
        try:
            answered = await asyncio.wait_for(self.caller.run_tools(calls), timeout)
        except TimeoutError:
            raise ToolResultTimeout(
                f"the caller did not return tool results within {timeout:g} seconds",
                timeout_seconds=timeout,
            ) from None
        results = {}
        for call in calls:
            body = dict(answered[call.tool_use_id])
            body["toolUseId"] = call.tool_use_id
            if call.tool_use_id in edited:
                note = (
                    "A human reviewer changed the input of this call before it ran; "
                    f"the input used was: {json.dumps(edited[call.tool_use_id])}"
                )
                body["content"] = [{"text": note}, *(body.get("content") or [])]
            results[call.tool_use_id] = body
        return results

    async def _ack(self, outcome: TurnOutcome) -> TurnOutcome:
        caller = self._live_caller()
        if caller is not None and outcome.appended:
            await caller.appended(outcome)
        return outcome
