"""``RunTurn``: one ``Run`` stream, a turn driven by the caller's own runtime."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import grpc

from sessiond.client.errors import from_rpc_error
from sessiond.client.messages import text_message
from sessiond.errors import SessiondError
from sessiond.v1 import content_pb2, session_pb2, session_service_pb2, turn_pb2

log = logging.getLogger("sessiond.client")

pb = session_service_pb2

#: A message to append: a ``Message``, or a string (an assistant text message).
MessageLike = content_pb2.Message | str


def turn_update(
    messages: Iterable[MessageLike] = (),
    *,
    state: dict[str, Any] | None = None,
    events: Iterable[turn_pb2.TurnEvent] = (),
    usage: tuple[int, int] | None = None,
    redactions: Mapping[int, content_pb2.Message] | None = None,
    conversation_manager_state: dict[str, Any] | None = None,
    internal_state: dict[str, Any] | None = None,
) -> pb.TurnUpdate:
    """A ``TurnUpdate``.

    Args:
        messages: Messages to append, in order; a string is an assistant text
            message. A single message (or string) may be given on its own.
        state: The agent's new state (JSON object); unchanged when None.
        events: Timeline events (see :func:`sessiond.client.messages.event`).
        usage: ``(input_tokens, output_tokens)`` to add.
        redactions: Replacements of earlier messages of the agent, by index
            (Strands' ``redact_message``): readers and Strands restores see
            the replacement instead. Build one with ``text_message(role, text)``.
        conversation_manager_state: Strands' conversation-manager state of the
            agent (JSON object); unchanged when None.
        internal_state: Strands' internal agent state (JSON object); unchanged
            when None.
    """
    if isinstance(messages, str | content_pb2.Message):
        messages = [messages]  # one message, not an iterable of characters / fields
    update = pb.TurnUpdate(
        messages=[text_message("assistant", m) if isinstance(m, str) else m for m in messages],
        events=list(events),
        redactions=[
            pb.Redaction(index=index, message=message)
            for index, message in sorted((redactions or {}).items())
        ],
    )
    if state is not None:
        update.state_json = json.dumps(state)
    if conversation_manager_state is not None:
        update.conversation_manager_state_json = json.dumps(conversation_manager_state)
    if internal_state is not None:
        update.internal_state_json = json.dumps(internal_state)
    if usage is not None:
        update.usage.input_tokens, update.usage.output_tokens = usage
        update.usage.total_tokens = sum(usage)
    return update


class RunTurn:
    """One ``Run`` stream; made by :meth:`AsyncClient.run`, used as an async context manager.

    Entering claims the session and restores the context (``started``,
    ``history``). Inside the block, :meth:`append` commits changes, and
    :meth:`finish`, :meth:`hibernate` or :meth:`fail` end the turn. Leaving the
    block without ending finishes the turn; an exception in the block fails it
    (the exception propagates). If the stream itself failed (a sessiond
    error), or the task was cancelled, the stream is cancelled and the server
    ends the turn as ERROR.

    Attributes:
        started: The ``RunStarted`` answer (None when the request id had
            already ended a turn: then ``ended`` is set at once).
        history: The agent's history (``SessionMessage``s, oldest first).
        ended: The ``RunEnded`` answer, once the turn has ended.
    """

    def __init__(
        self, stub: Any, open_: pb.RunOpen, timeout: float | None, metadata: Any = ()
    ) -> None:
        self._stub = stub
        self._open = open_
        self._timeout = timeout
        self._metadata = tuple(metadata)
        self._call: Any = None
        self.started: pb.RunStarted | None = None
        self.history: list[content_pb2.SessionMessage] = []
        self.ended: pb.RunEnded | None = None

    # -- the restored context ------------------------------------------------------

    @property
    def session(self) -> session_pb2.Session:
        """The session: after the end when ended, else as claimed (with the lease)."""
        if self.ended is not None:
            return self.ended.session
        return self.started.session if self.started else session_pb2.Session()

    @property
    def turn(self) -> turn_pb2.Turn:
        """The turn (its id, number, status...)."""
        if self.ended is not None:
            return self.ended.turn
        return self.started.turn if self.started else turn_pb2.Turn()

    @property
    def agent_state(self) -> dict[str, Any]:
        """The agent's state as restored (a JSON object; empty if none)."""
        raw = self.started.agent_state_json if self.started else ""
        return json.loads(raw) if raw else {}

    @property
    def input(self) -> content_pb2.Message | None:
        """This turn's input: as recorded when the server sends it, else the one sent to open it."""
        if self.started is not None and self.started.HasField("input"):
            return self.started.input.message
        return self._open.input if self._open.HasField("input") else None

    @property
    def snapshot(self) -> turn_pb2.Snapshot | None:
        """The snapshot saved when the turn hibernated (resumed turns only)."""
        if self.started is None or not self.started.HasField("snapshot"):
            return None
        return self.started.snapshot

    @property
    def reviews(self) -> list[turn_pb2.Review]:
        """The turn's reviews with their decisions (resumed turns only)."""
        return list(self.started.reviews) if self.started else []

    # -- the stream ------------------------------------------------------------------

    async def _read(self) -> pb.RunResponse:
        try:
            response = await self._call.read()
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
        if response is grpc.aio.EOF:
            raise SessiondError("the server closed the Run stream unexpectedly")
        return response

    async def _send(self, request: pb.RunRequest) -> pb.RunResponse:
        if self.ended is not None:
            raise SessiondError("the turn has ended")
        if self._call is None:
            raise SessiondError("the turn is not open: use it as `async with client.run(...)`")
        try:
            await self._call.write(request)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
        except Exception:
            pass  # the call has ended: the read below reports why
        return await self._read()

    async def __aenter__(self) -> RunTurn:
        self._call = self._stub.Run(timeout=self._timeout, metadata=self._metadata or None)
        try:
            first = await self._send(pb.RunRequest(open=self._open))
            if first.WhichOneof("event") == "ended":
                self.ended = first.ended
                return self
            self.started = first.started
            while len(self.history) < self.started.history_message_count:
                chunk = await self._read()
                if chunk.WhichOneof("event") == "ended":
                    self.ended = chunk.ended
                    return self
                self.history.extend(chunk.history.messages)
        except BaseException:
            self._call.cancel()
            raise
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if self.ended is None and self._call is not None and not self._call.done():
                if exc is None:
                    await self.finish()
                elif isinstance(exc, Exception) and not isinstance(exc, SessiondError):
                    try:
                        await self.fail(f"{type(exc).__name__}: {exc}"[:500])
                    except Exception:
                        # The block's own error is what the caller must see;
                        # cancelling the stream below ends the turn as ERROR
                        # even when fail() could not be delivered.
                        log.debug("could not fail the turn", exc_info=True)
        finally:
            if self._call is not None and not self._call.done():
                self._call.cancel()

    # -- commits -----------------------------------------------------------------------

    async def append(self, messages: Iterable[MessageLike] = (), **update: Any) -> pb.RunAppended:
        """Commits messages (and ``state`` / ``events`` / ``usage``, see :func:`turn_update`).

        Returns:
            The acknowledgement: the stored messages with their indices.
        """
        response = await self._send(
            pb.RunRequest(append=pb.RunAppend(update=turn_update(messages, **update)))
        )
        return response.appended

    async def finish(self, messages: Iterable[MessageLike] = (), **update: Any) -> pb.RunEnded:
        """Ends the turn as FINISHED, with a last update (see :func:`turn_update`)."""
        response = await self._send(
            pb.RunRequest(finish=pb.RunFinish(update=turn_update(messages, **update)))
        )
        self.ended = response.ended
        return self.ended

    async def hibernate(
        self,
        messages: Iterable[MessageLike] = (),
        *,
        snapshot: bytes | None = None,
        content_type: str = "application/json",
        reviews: Iterable[turn_pb2.ReviewRequest] = (),
        **update: Any,
    ) -> pb.RunEnded:
        """Ends the turn as HIBERNATED, or WAITING when it asks for reviews.

        Args:
            messages: Last messages before hibernating.
            snapshot: Runtime state handed back on resume (``turn.snapshot``).
            content_type: The snapshot's media type.
            reviews: Tool calls that need a human decision before resuming.
            **update: ``state``, ``events``, ``usage`` (see :func:`turn_update`).
        """
        hibernate = pb.RunHibernate(update=turn_update(messages, **update), reviews=list(reviews))
        if snapshot is not None:
            hibernate.snapshot.data = snapshot
            hibernate.snapshot.content_type = content_type
        response = await self._send(pb.RunRequest(hibernate=hibernate))
        self.ended = response.ended
        return self.ended

    async def fail(self, error_message: str) -> pb.RunEnded:
        """Ends the turn as ERROR; appends already acknowledged stay."""
        response = await self._send(pb.RunRequest(fail=pb.RunFail(error_message=error_message)))
        self.ended = response.ended
        return self.ended
