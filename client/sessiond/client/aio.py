"""The asyncio client of sessiond: one method per RPC, typed errors, ``run()`` for turns."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc

from sessiond.client.errors import from_rpc_error
from sessiond.errors import SessiondError
from sessiond.v1 import content_pb2, session_service_pb2, session_service_pb2_grpc, turn_pb2

pb = session_service_pb2


def text_message(role: str, text: str) -> content_pb2.Message:
    """A message with one text block; ``role`` is "user" or "assistant"."""
    return content_pb2.Message(
        role=content_pb2.ROLE_USER if role == "user" else content_pb2.ROLE_ASSISTANT,
        content=[content_pb2.ContentBlock(text=text)],
    )


def _update(
    messages: Iterable[content_pb2.Message] = (),
    state: dict[str, Any] | None = None,
    events: Iterable[turn_pb2.TurnEvent] = (),
    usage: tuple[int, int] | None = None,
) -> pb.TurnUpdate:
    update = pb.TurnUpdate(messages=list(messages), events=list(events))
    if state is not None:
        update.state_json = json.dumps(state)
    if usage is not None:
        update.usage.input_tokens, update.usage.output_tokens = usage
        update.usage.total_tokens = sum(usage)
    return update


class AsyncClient:
    """A connection to a sessiond server.

    Args:
        target: ``host:port`` of the server.
        timeout: Default per-call timeout in seconds (None: no deadline).
        channel: An existing channel to use instead of opening one.
    """

    def __init__(
        self,
        target: str,
        *,
        timeout: float | None = 30.0,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self._channel = channel or grpc.aio.insecure_channel(
            target,
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.keepalive_time_ms", 60_000),
            ],
        )
        self.stub = session_service_pb2_grpc.SessionServiceStub(self._channel)
        self.timeout = timeout

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the channel."""
        await self._channel.close()

    async def _call(self, method: str, request: Any) -> Any:
        try:
            return await getattr(self.stub, method)(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None

    # -- sessions ------------------------------------------------------------

    async def start(self, session_id: str = "", **fields: Any) -> pb.StartResponse:
        """Starts a session (fields of StartRequest as keyword arguments)."""
        return await self._call("Start", pb.StartRequest(session_id=session_id, **fields))

    async def get(self, session_id: str) -> Any:
        """Returns the session."""
        return (await self._call("Get", pb.GetRequest(session_id=session_id))).session

    async def list(self, **fields: Any) -> pb.ListResponse:
        """One page of sessions."""
        return await self._call("List", pb.ListRequest(**fields))

    async def list_messages(self, session_id: str, **fields: Any) -> pb.ListMessagesResponse:
        """One page of messages."""
        return await self._call(
            "ListMessages", pb.ListMessagesRequest(session_id=session_id, **fields)
        )

    async def all_messages(self, session_id: str, agent_id: str = "") -> list[Any]:
        """Every message of an agent (follows page tokens)."""
        found, token = [], ""
        while True:
            page = await self.list_messages(
                session_id, agent_id=agent_id, page_size=1000, page_token=token
            )
            found.extend(page.messages)
            token = page.next_page_token
            if not token:
                return found

    async def chat(self, session_id: str, text: str, **fields: Any) -> pb.ChatResponse:
        """One server-engine turn."""
        return await self._call("Chat", pb.ChatRequest(session_id=session_id, text=text, **fields))

    async def resume(self, session_id: str, **fields: Any) -> pb.ResumeResponse:
        """Continues a hibernated server-engine turn."""
        return await self._call("Resume", pb.ResumeRequest(session_id=session_id, **fields))

    async def list_pending_reviews(self, **fields: Any) -> pb.ListPendingReviewsResponse:
        """One page of pending reviews."""
        return await self._call("ListPendingReviews", pb.ListPendingReviewsRequest(**fields))

    async def resolve_review(self, review_id: str, **fields: Any) -> pb.ResolveReviewResponse:
        """Records a review decision."""
        return await self._call(
            "ResolveReview", pb.ResolveReviewRequest(review_id=review_id, **fields)
        )

    async def archive(self, session_id: str, **fields: Any) -> Any:
        """Archives a session."""
        request = pb.ArchiveRequest(session_id=session_id, **fields)
        return (await self._call("Archive", request)).session

    async def unarchive(self, session_id: str, **fields: Any) -> Any:
        """Unarchives a session."""
        request = pb.UnarchiveRequest(session_id=session_id, **fields)
        return (await self._call("Unarchive", request)).session

    async def delete(self, session_id: str, **fields: Any) -> None:
        """Deletes a session."""
        await self._call("Delete", pb.DeleteRequest(session_id=session_id, **fields))

    async def replay(self, session_id: str, **fields: Any) -> pb.ReplayResponse:
        """One page of the session's timeline."""
        return await self._call("Replay", pb.ReplayRequest(session_id=session_id, **fields))

    # -- bundles -------------------------------------------------------------

    async def export(self, **fields: Any) -> AsyncIterator[pb.ExportResponse]:
        """Streams an export (chunks, progress, then the manifest)."""
        call = self.stub.Export(pb.ExportRequest(**fields), timeout=None)
        try:
            async for response in call:
                yield response
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None

    async def import_bundle(
        self, chunks: AsyncIterator[bytes] | Iterable[bytes], **options: Any
    ) -> pb.ImportResponse:
        """Streams a bundle in."""

        async def requests() -> AsyncIterator[pb.ImportRequest]:
            yield pb.ImportRequest(options=pb.ImportOptions(**options))
            if hasattr(chunks, "__aiter__"):
                async for chunk in chunks:  # type: ignore[union-attr]
                    yield pb.ImportRequest(chunk=chunk)
            else:
                for chunk in chunks:  # type: ignore[union-attr]
                    yield pb.ImportRequest(chunk=chunk)

        try:
            return await self.stub.Import(requests(), timeout=None)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None

    # -- turns ---------------------------------------------------------------

    def run(
        self,
        session_id: str,
        input: content_pb2.Message | str | None = None,
        **open_fields: Any,
    ) -> RunTurn:
        """A turn driven by this caller's runtime, as an async context manager.

        ``async with client.run(sid, "hi") as turn:`` claims the session and
        restores the context (``turn.started``, ``turn.history``); inside,
        ``await turn.append(...)`` and end with ``finish``, ``hibernate`` or
        ``fail``. Leaving the block without ending finishes the turn; an
        exception in the block fails it.
        """
        message = text_message("user", input) if isinstance(input, str) else input
        open_ = pb.RunOpen(session_id=session_id, **open_fields)
        if message is not None:
            open_.input.CopyFrom(message)
        return RunTurn(self.stub, open_, self.timeout)


class RunTurn:
    """One ``Run`` stream (see :meth:`AsyncClient.run`)."""

    def __init__(self, stub: Any, open_: pb.RunOpen, timeout: float | None) -> None:
        self._stub = stub
        self._open = open_
        self._timeout = timeout
        self._call: Any = None
        self.started: pb.RunStarted | None = None
        self.history: list[Any] = []
        self.ended: pb.RunEnded | None = None

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
        try:
            await self._call.write(request)
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
        except Exception:
            # A failed write means the call ended; its status explains why.
            return await self._read()
        return await self._read()

    async def __aenter__(self) -> RunTurn:
        self._call = self._stub.Run(timeout=self._timeout)
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
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if self.ended is None and self._call is not None and not self._call.done():
                if exc is None:
                    await self.finish()
                elif not isinstance(exc, SessiondError):
                    await self.fail(f"{type(exc).__name__}: {exc}"[:500])
        finally:
            if self._call is not None and not self._call.done():
                self._call.cancel()

    async def append(self, messages: Iterable[content_pb2.Message] = (), **fields: Any) -> Any:
        """Appends messages (and state / events / usage); returns the ``appended`` ack."""
        response = await self._send(
            pb.RunRequest(append=pb.RunAppend(update=_update(messages, **fields)))
        )
        return response.appended

    async def finish(self, messages: Iterable[content_pb2.Message] = (), **fields: Any) -> Any:
        """Ends the turn as FINISHED."""
        response = await self._send(
            pb.RunRequest(finish=pb.RunFinish(update=_update(messages, **fields)))
        )
        self.ended = response.ended
        return self.ended

    async def hibernate(
        self,
        messages: Iterable[content_pb2.Message] = (),
        *,
        snapshot: bytes | None = None,
        content_type: str = "application/json",
        reviews: Iterable[turn_pb2.ReviewRequest] = (),
        **fields: Any,
    ) -> Any:
        """Ends the turn as HIBERNATED (WAITING with reviews)."""
        hibernate = pb.RunHibernate(update=_update(messages, **fields), reviews=list(reviews))
        if snapshot is not None:
            hibernate.snapshot.data = snapshot
            hibernate.snapshot.content_type = content_type
        response = await self._send(pb.RunRequest(hibernate=hibernate))
        self.ended = response.ended
        return self.ended

    async def fail(self, error_message: str) -> Any:
        """Ends the turn as ERROR."""
        response = await self._send(pb.RunRequest(fail=pb.RunFail(error_message=error_message)))
        self.ended = response.ended
        return self.ended
