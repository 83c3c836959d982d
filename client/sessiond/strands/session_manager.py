"""``SessiondSessionManager``: a Strands Agents session manager backed by sessiond.

Use it where Strands takes a session manager::

    from strands import Agent
    from sessiond.strands import SessiondSessionManager

    agent = Agent(session_manager=SessiondSessionManager("trip-42", target="localhost:50051"))
    agent("Plan a weekend in Lisbon")

* The agent is restored from sessiond when it is created (history, state,
  conversation manager and interrupt state), in a handful of requests however
  long the history is.
* Each invocation is one sessiond turn on a ``Run`` stream: the session is
  claimed when the invocation's first message is added — a second process
  invoking the same session gets ``SessionBusy`` at once instead of silently
  interleaving history — every message Strands adds is committed as it comes,
  and the turn ends with the invocation (agent state and token usage included).
* A Strands interrupt (human in the loop) hibernates the turn as WAITING with
  one sessiond review per interrupt, so it shows in ``ListPendingReviews`` and
  can be decided from any language (``sessiond approve``). Resume the agent
  with :meth:`SessiondSessionManager.interrupt_responses`.

Strands hook callbacks are synchronous, so this manager talks to sessiond with
grpc's synchronous API.
"""

from __future__ import annotations

import hashlib
import json
import queue
from collections.abc import Iterator
from typing import Any

import grpc
from strands.agent.state import AgentState
from strands.hooks import AfterInvocationEvent, HookRegistry
from strands.interrupt import _InterruptState
from strands.session.session_manager import SessionManager
from strands.types.session import decode_bytes_values, encode_bytes_values

from sessiond.client.errors import from_rpc_error
from sessiond.content import message_from_dict, message_to_dict
from sessiond.errors import SessiondError
from sessiond.v1 import session_service_pb2 as pb
from sessiond.v1 import session_service_pb2_grpc, turn_pb2

_SUSPENDED = (3, 4)  # SESSION_STATUS_HIBERNATED, SESSION_STATUS_WAITING
_DECISION = {1: "APPROVE", 2: "REJECT", 3: "EDIT"}


def to_proto(message: dict[str, Any]) -> Any:
    """A Strands message (bytes as bytes) as a sessiond ``Message``."""
    return message_from_dict(encode_bytes_values(message))


def to_strands(message: Any) -> dict[str, Any]:
    """A sessiond ``Message`` as a Strands message (bytes decoded)."""
    return decode_bytes_values(message_to_dict(message))


def review_id_for(interrupt_id: str) -> str:
    """The sessiond review id of a Strands interrupt (interrupt ids are opaque)."""
    return "int-" + hashlib.sha256(interrupt_id.encode()).hexdigest()[:24]


def _usage_of(agent: Any) -> dict[str, Any]:
    metrics = getattr(agent, "event_loop_metrics", None)
    return dict(getattr(metrics, "accumulated_usage", None) or {})


class _Turn:
    """One synchronous ``Run`` stream: requests go in through a queue."""

    def __init__(
        self,
        stub: Any,
        open_: pb.RunOpen,
        timeout: float | None,
        metadata: tuple[tuple[str, str], ...] | None,
    ) -> None:
        self._requests: queue.Queue[pb.RunRequest | None] = queue.Queue()
        self._requests.put(pb.RunRequest(open=open_))
        self._responses: Iterator[pb.RunResponse] = stub.Run(
            iter(self._requests.get, None), timeout=timeout, metadata=metadata
        )
        self.ended: Any = None
        self.last_index: int | None = None
        first = self._next()
        if first.WhichOneof("event") == "ended":
            self.ended = first.ended
            return
        # The input is the invocation's first message: a guardrail may
        # redact it before anything else is committed.
        if first.started.HasField("input"):
            self.last_index = first.started.input.index
        remaining = first.started.history_message_count
        while remaining > 0:
            remaining -= len(self._next().history.messages)

    def _next(self) -> pb.RunResponse:
        try:
            return next(self._responses)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        except StopIteration:
            raise SessiondError("sessiond closed the Run stream unexpectedly") from None

    def send(self, request: pb.RunRequest) -> pb.RunResponse:
        self._requests.put(request)
        response = self._next()
        kind = response.WhichOneof("event")
        if kind == "appended" and response.appended.messages:
            self.last_index = response.appended.messages[-1].index
        if kind == "ended":
            self.ended = response.ended
            self._requests.put(None)
        return response

    def cancel(self) -> None:
        self._requests.put(None)
        cancel = getattr(self._responses, "cancel", None)
        if cancel is not None:
            cancel()


class SessiondSessionManager(SessionManager):
    """Persists Strands agents in sessiond; each invocation is a claimed turn.

    Args:
        session_id: The sessiond session (created if new).
        target: ``host:port`` of sessiond.
        channel: An existing grpc channel to use instead.
        token: A bearer token, sent as ``authorization`` metadata.
        timeout: Per-call timeout in seconds (None: none) for unary calls.
        title: Title of the session if it is created.
        labels: Labels of the session if it is created.
    """

    def __init__(
        self,
        session_id: str,
        target: str = "127.0.0.1:50051",
        *,
        channel: grpc.Channel | None = None,
        token: str | None = None,
        timeout: float | None = 30.0,
        title: str = "",
        labels: dict[str, str] | None = None,
    ) -> None:
        self.session_id = session_id
        self._channel = channel or grpc.insecure_channel(target)
        self._stub = session_service_pb2_grpc.SessionServiceStub(self._channel)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._timeout = timeout
        self._title = title
        self._labels = dict(labels or {})
        self._turn: _Turn | None = None
        self._usage_at_start: dict[str, Any] = {}
        self._agent_ids: set[str] = set()
        self._status = 0
        self._last_role: str | None = None

    # -- plumbing --------------------------------------------------------------

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self._stub, method)(
                request, timeout=self._timeout, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def register_hooks(self, registry: HookRegistry, **kwargs: Any) -> None:
        """Strands' hooks, plus the end of each invocation (the turn's commit)."""
        super().register_hooks(registry, **kwargs)
        registry.add_callback(AfterInvocationEvent, self._end_turn)

    # -- restore -----------------------------------------------------------------

    def initialize(self, agent: Any, **kwargs: Any) -> None:
        """Creates the session if new, and restores the agent from sessiond."""
        if agent.agent_id in self._agent_ids:
            raise SessiondError("The `agent_id` of an agent must be unique in a session.")
        self._agent_ids.add(agent.agent_id)
        session = self._call(
            "Start",
            pb.StartRequest(
                session_id=self.session_id,
                agent_id=agent.agent_id,
                title=self._title,
                labels=self._labels,
                return_existing=True,
                agent_state_json=json.dumps(agent.state.get()),
            ),
        ).session
        self._status = session.status
        info = next((a for a in session.agents if a.agent_id == agent.agent_id), None)
        if info is None or (info.message_count == 0 and not info.internal_state_json):
            if agent.messages:
                self._seed(agent)
            return
        messages, token = [], ""
        while True:
            page = self._call(
                "ListMessages",
                pb.ListMessagesRequest(
                    session_id=self.session_id,
                    agent_id=agent.agent_id,
                    page_size=1000,
                    page_token=token,
                ),
            )
            messages.extend(page.messages)
            token = page.next_page_token
            if not token:
                break
        agent.state = AgentState(json.loads(info.state_json or "{}"))
        internal = json.loads(info.internal_state_json or "{}")
        if internal.get("interrupt_state"):
            agent._interrupt_state = _InterruptState.from_dict(internal["interrupt_state"])
        if "model_state" in internal:
            agent._model_state = internal["model_state"]
        manager_state = json.loads(info.conversation_manager_state_json or "{}")
        prepend: list[Any] = []
        offset = 0
        conversation_manager = getattr(agent, "conversation_manager", None)
        if manager_state and conversation_manager is not None:
            try:
                prepend = conversation_manager.restore_from_session(manager_state) or []
                offset = conversation_manager.removed_message_count
            except ValueError:
                prepend, offset = [], 0  # written by another kind of manager
        restored = [
            to_strands(m.redact_message if m.HasField("redact_message") else m.message)
            for m in messages
        ]
        if not messages and agent.messages:
            # A new agent given messages to start from (``Agent(messages=...)``):
            # like Strands' own managers, keep and store them.
            self._seed(agent)
            return
        agent.messages = prepend + restored[offset:]

    def _seed(self, agent: Any) -> None:
        """Stores an agent's initial messages as one turn (the first is its input)."""
        first, *rest = agent.messages
        open_ = pb.RunOpen(session_id=self.session_id, agent_id=agent.agent_id, history_limit=1)
        open_.input.CopyFrom(to_proto(first))
        turn = _Turn(self._stub, open_, None, self._metadata)
        if turn.ended is not None:
            raise SessiondError("sessiond ended the turn before it started")
        update = self._update(agent)
        update.messages.extend(to_proto(message) for message in rest)
        turn.send(pb.RunRequest(finish=pb.RunFinish(update=update)))
        self._status = 5  # FINISHED

    # -- the turn ----------------------------------------------------------------

    def _send(self, request: pb.RunRequest) -> pb.RunResponse:
        assert self._turn is not None
        try:
            return self._turn.send(request)
        except SessiondError:
            self._turn = None
            raise

    def append_message(self, message: dict[str, Any], agent: Any, **kwargs: Any) -> None:
        """Commits a message Strands added; the first one of an invocation claims the session."""
        self._last_role = message.get("role")
        if self._turn is None:
            self._claim(agent, message)
            return
        self._send(
            pb.RunRequest(append=pb.RunAppend(update=pb.TurnUpdate(messages=[to_proto(message)])))
        )

    def _claim(self, agent: Any, message: dict[str, Any]) -> None:
        resume = self._status in _SUSPENDED
        open_ = pb.RunOpen(
            session_id=self.session_id, agent_id=agent.agent_id, resume=resume, history_limit=1
        )
        if not resume:
            open_.input.CopyFrom(to_proto(message))
        self._turn = _Turn(self._stub, open_, None, self._metadata)
        if self._turn.ended is not None:
            self._turn = None
            raise SessiondError("sessiond ended the turn before it started")
        self._status = 2  # RUNNING
        self._usage_at_start = dict(_usage_of(agent))
        if resume:
            self.append_message(message, agent)

    def sync_agent(self, agent: Any, **kwargs: Any) -> None:
        """State is sent with the turn's end (one commit), not after every message."""

    def redact_latest_message(
        self, redact_message: dict[str, Any], agent: Any, **kwargs: Any
    ) -> None:
        """Redacts the last message this turn committed."""
        if self._turn is None or self._turn.last_index is None:
            raise SessiondError("no message of the current turn to redact")
        redaction = pb.Redaction(index=self._turn.last_index, message=to_proto(redact_message))
        self._send(pb.RunRequest(append=pb.RunAppend(update=pb.TurnUpdate(redactions=[redaction]))))

    def _update(self, agent: Any, usage: Any = None) -> pb.TurnUpdate:
        update = pb.TurnUpdate(state_json=json.dumps(agent.state.get()))
        internal = {
            "interrupt_state": agent._interrupt_state.to_dict(),
            "model_state": agent._model_state,
        }
        update.internal_state_json = json.dumps(internal, default=str)
        manager = getattr(agent, "conversation_manager", None)
        if manager is not None:
            update.conversation_manager_state_json = json.dumps(manager.get_state(), default=str)
        if usage:
            update.usage.input_tokens = int(usage.get("inputTokens", 0))
            update.usage.output_tokens = int(usage.get("outputTokens", 0))
            update.usage.total_tokens = int(usage.get("totalTokens", 0))
        return update

    def _end_turn(self, event: AfterInvocationEvent) -> None:
        if self._turn is None:
            return
        agent = event.agent
        # Strands accumulates usage over the agent's life: this turn's share.
        usage = {
            key: int(value) - int(self._usage_at_start.get(key, 0))
            for key, value in _usage_of(agent).items()
        }
        update = self._update(agent, usage)
        state = agent._interrupt_state
        try:
            if state.activated:
                reviews = [
                    turn_pb2.ReviewRequest(
                        review_id=review_id_for(interrupt.id),
                        tool_use_id=interrupt.id,
                        tool_name=interrupt.name,
                        input_json=json.dumps(interrupt.reason, default=str),
                        description=str(interrupt.reason),
                    )
                    for interrupt in state.interrupts.values()
                    if interrupt.response is None
                ]
                self._send(pb.RunRequest(hibernate=pb.RunHibernate(update=update, reviews=reviews)))
                self._status = 4 if reviews else 3
            elif event.result is None and self._last_role != "assistant":
                # The invocation raised before the model answered (Strands
                # calls this hook from a finally): the turn failed, it did
                # not finish. What was appended stays.
                self._send(pb.RunRequest(append=pb.RunAppend(update=update)))
                self._send(
                    pb.RunRequest(
                        fail=pb.RunFail(error_message="the Strands invocation raised an error")
                    )
                )
                self._status = 6
            else:
                self._send(pb.RunRequest(finish=pb.RunFinish(update=update)))
                self._status = 5
        finally:
            self._turn = None

    # -- reviews -----------------------------------------------------------------

    def interrupt_responses(self, agent: Any) -> list[dict[str, Any]]:
        """The agent's pending interrupts answered with the sessiond review decisions.

        Pass the result to the agent (``agent(manager.interrupt_responses(agent))``)
        to resume. Each response is ``{"action": "APPROVE"|"REJECT"|"EDIT",
        "reviewer", "comment", "edited_input"}``; interrupts whose review is
        still pending are left out.
        """
        decisions: dict[str, Any] = {}
        token = ""
        while True:
            page = self._call(
                "Replay",
                pb.ReplayRequest(session_id=self.session_id, page_size=1000, page_token=token),
            )
            for turn in page.turns:
                for review in turn.reviews:
                    if review.HasField("decision"):
                        decisions[review.tool_use_id] = review.decision
            token = page.next_page_token
            if not token:
                break
        responses = []
        for interrupt in agent._interrupt_state.interrupts.values():
            decision = decisions.get(interrupt.id)
            if decision is None:
                continue
            responses.append(
                {
                    "interruptResponse": {
                        "interruptId": interrupt.id,
                        "response": {
                            "action": _DECISION.get(decision.action, "REJECT"),
                            "reviewer": decision.reviewer,
                            "comment": decision.comment,
                            "edited_input": json.loads(decision.edited_input_json)
                            if decision.edited_input_json
                            else None,
                        },
                    }
                }
            )
        return responses

    def close(self) -> None:
        """Cancels an open turn (it ends as ERROR) and closes the channel."""
        if self._turn is not None:
            self._turn.cancel()
            self._turn = None
        self._channel.close()
