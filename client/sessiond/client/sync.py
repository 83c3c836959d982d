"""A synchronous client for scripts and notebooks: :class:`AsyncClient` on a background loop.

``Client`` runs an asyncio event loop in a daemon thread and blocks on each
call; every method has the signature, documentation and errors of the
:class:`~sessiond.client.aio.AsyncClient` method of the same name. It works
inside a notebook whose own loop is running, because it never touches that
loop. Example::

    from sessiond.client import Client

    with Client("127.0.0.1:50051") as client:
        client.start("trip", title="Trip planning")
        print(client.chat("trip", "hello").text)
        with client.run("trip", "book a flight") as turn:
            turn.append(["Searching..."])
            turn.finish(["Booked."])
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from concurrent.futures import Future
from typing import Any, Concatenate, ParamSpec, TypeVar

from sessiond.client.aio import AsyncClient
from sessiond.client.turns import RunTurn
from sessiond.v1 import content_pb2, session_pb2, session_service_pb2, turn_pb2

pb = session_service_pb2
P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class _Loop:
    """An event loop running in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="sessiond-client", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result()
        except BaseException:
            # Interrupted (Ctrl-C) while waiting: cancel the call too.
            future.cancel()
            raise

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self.run(anext(iterator))  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None and not self.loop.is_closed():
                self.run(aclose())

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def _blocking(
    method: Callable[Concatenate[AsyncClient, P], Coroutine[Any, Any, R]],
) -> Callable[Concatenate[Client, P], R]:
    @functools.wraps(method)
    def call(self: Client, *args: P.args, **kwargs: P.kwargs) -> R:
        return self._loop.run(method(self.aio, *args, **kwargs))

    return call


def _blocking_iter(
    method: Callable[Concatenate[AsyncClient, P], AsyncIterator[R]],
) -> Callable[Concatenate[Client, P], Iterator[R]]:
    @functools.wraps(method)
    def call(self: Client, *args: P.args, **kwargs: P.kwargs) -> Iterator[R]:
        return self._loop.iterate(method(self.aio, *args, **kwargs))

    return call


def _blocking_turn(
    method: Callable[Concatenate[AsyncClient, P], RunTurn],
) -> Callable[Concatenate[Client, P], Turn]:
    @functools.wraps(method)
    def call(self: Client, *args: P.args, **kwargs: P.kwargs) -> Turn:
        return Turn(self._loop, method(self.aio, *args, **kwargs))

    return call


class Client:
    """A blocking sessiond client; see :class:`~sessiond.client.aio.AsyncClient`.

    Takes the same arguments as ``AsyncClient``. Use it as a context manager
    or call :meth:`close`. :meth:`run` returns a :class:`Turn`, used as
    ``with client.run(sid, "hi") as turn:`` (the blocking ``RunTurn``).

    Attributes:
        aio: The underlying ``AsyncClient`` (lives on the background loop).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._loop = _Loop()

        async def connect() -> AsyncClient:
            # grpc.aio channels belong to the loop they are created on.
            return AsyncClient(*args, **kwargs)

        try:
            self.aio = self._loop.run(connect())
        except BaseException:
            self._loop.stop()
            raise

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the channel and stops the background loop."""
        if self._loop.loop.is_closed():
            return
        try:
            self._loop.run(self.aio.close())
        finally:
            self._loop.stop()

    @property
    def target(self) -> str:
        """The server's target."""
        return self.aio.target

    wait_ready = _blocking(AsyncClient.wait_ready)
    start = _blocking(AsyncClient.start)
    get = _blocking(AsyncClient.get)
    list = _blocking(AsyncClient.list)
    iter_sessions = _blocking_iter(AsyncClient.iter_sessions)
    list_messages = _blocking(AsyncClient.list_messages)
    all_messages = _blocking(AsyncClient.all_messages)
    archive = _blocking(AsyncClient.archive)
    unarchive = _blocking(AsyncClient.unarchive)
    delete = _blocking(AsyncClient.delete)
    replay = _blocking(AsyncClient.replay)
    timeline = _blocking(AsyncClient.timeline)
    chat = _blocking(AsyncClient.chat)
    resume = _blocking(AsyncClient.resume)
    list_pending_reviews = _blocking(AsyncClient.list_pending_reviews)
    iter_pending_reviews = _blocking_iter(AsyncClient.iter_pending_reviews)
    resolve_review = _blocking(AsyncClient.resolve_review)
    export = _blocking_iter(AsyncClient.export)
    export_to_file = _blocking(AsyncClient.export_to_file)
    import_bundle = _blocking(AsyncClient.import_bundle)
    import_file = _blocking(AsyncClient.import_file)

    run = _blocking_turn(AsyncClient.run)


class Turn:
    """The blocking face of :class:`~sessiond.client.turns.RunTurn`."""

    def __init__(self, loop: _Loop, turn: RunTurn) -> None:
        self._loop = loop
        #: The underlying ``RunTurn``.
        self.aio = turn

    def __enter__(self) -> Turn:
        self._loop.run(self.aio.__aenter__())
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._loop.run(self.aio.__aexit__(exc_type, exc, tb))

    @property
    def started(self) -> pb.RunStarted | None:
        """See ``RunTurn.started``."""
        return self.aio.started

    @property
    def history(self) -> list[content_pb2.SessionMessage]:
        """The agent's history, oldest first."""
        return self.aio.history

    @property
    def ended(self) -> pb.RunEnded | None:
        """See ``RunTurn.ended``."""
        return self.aio.ended

    @property
    def session(self) -> session_pb2.Session:
        """See ``RunTurn.session``."""
        return self.aio.session

    @property
    def turn(self) -> turn_pb2.Turn:
        """See ``RunTurn.turn``."""
        return self.aio.turn

    @property
    def agent_state(self) -> dict[str, Any]:
        """See ``RunTurn.agent_state``."""
        return self.aio.agent_state

    @property
    def input(self) -> content_pb2.Message | None:
        """See ``RunTurn.input``."""
        return self.aio.input

    @property
    def snapshot(self) -> turn_pb2.Snapshot | None:
        """See ``RunTurn.snapshot``."""
        return self.aio.snapshot

    @property
    def reviews(self) -> list[turn_pb2.Review]:
        """See ``RunTurn.reviews``."""
        return self.aio.reviews

    def append(self, messages: Any = (), **update: Any) -> pb.RunAppended:
        """See ``RunTurn.append``."""
        return self._loop.run(self.aio.append(messages, **update))

    def finish(self, messages: Any = (), **update: Any) -> pb.RunEnded:
        """See ``RunTurn.finish``."""
        return self._loop.run(self.aio.finish(messages, **update))

    def hibernate(self, messages: Any = (), **options: Any) -> pb.RunEnded:
        """See ``RunTurn.hibernate``."""
        return self._loop.run(self.aio.hibernate(messages, **options))

    def fail(self, error_message: str) -> pb.RunEnded:
        """See ``RunTurn.fail``."""
        return self._loop.run(self.aio.fail(error_message))
