"""S3Store on the wire: retry classification, own-write recognition, the probe.

Faults are injected with botocore ``before-send`` hooks on the store's real
client, against a moto server: a scripted action either answers instead of
moto (the request never reaches it), or forwards the request to moto first and
then fails (the write *was* applied and the response is lost).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiobotocore.awsrequest import AioAWSResponse
from botocore import exceptions as bce

from sessiond.server.storage.port import (
    CREATE,
    OVERWRITE,
    AlreadyExists,
    AmbiguousWrite,
    NotFound,
    PreconditionFailed,
    StoreUnavailable,
    StoreUnsupported,
    Update,
)
from sessiond.server.storage.retry import Applied, RetryPolicy, classify
from sessiond.server.storage.s3 import S3Store
from support.moto import FAST_RETRY, MakeS3Store

Action = Callable[[Any], Awaitable[Any]]


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self) -> bytes:
        return self._body


def error_response(url: str, status: int, code: str) -> AioAWSResponse:
    body = f"<Error><Code>{code}</Code><Message>injected {code}</Message></Error>".encode()
    headers = {"content-type": "application/xml", "content-length": str(len(body))}
    return AioAWSResponse(url, status, headers, _Raw(body))


class Wire:
    """Scripts the next requests of given operations (``PutObject``, ``HeadObject``...)."""

    def __init__(self, store: S3Store) -> None:
        self.client = store.client
        self.script: dict[str, list[Action]] = {}
        self.client.meta.events.register("before-send.s3", self._before_send)

    def on(self, operation: str, *actions: Action) -> None:
        self.script.setdefault(operation, []).extend(actions)

    async def _before_send(self, request: Any, event_name: str, **_: Any) -> Any:
        actions = self.script.get(event_name.rsplit(".", 1)[-1])
        if actions:
            return await actions.pop(0)(request)
        return None  # send for real

    async def forward(self, request: Any) -> None:
        """Sends the request to moto (so a write applies), discarding the response."""
        await self.client._endpoint.http_session.send(request)

    # -- actions ------------------------------------------------------------

    def answer(self, status: int, code: str) -> Action:
        async def act(request: Any) -> Any:
            return error_response(request.url, status, code)

        return act

    def apply_then(self, status: int, code: str) -> Action:
        async def act(request: Any) -> Any:
            await self.forward(request)
            return error_response(request.url, status, code)

        return act

    def apply_then_timeout(self) -> Action:
        async def act(request: Any) -> Any:
            await self.forward(request)
            raise bce.ReadTimeoutError(endpoint_url=request.url)

        return act

    def refused(self) -> Action:
        async def act(request: Any) -> Any:
            raise bce.EndpointConnectionError(endpoint_url=request.url, error=_connector_error())

        return act


def _connector_error() -> aiohttp.ClientConnectorError:
    key = type("Key", (), {"host": "127.0.0.1", "port": 1, "ssl": False})()
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))


@pytest.fixture
async def store(make_s3_store: MakeS3Store) -> S3Store:
    return await make_s3_store(prefix="retries")


# -- retried failures -----------------------------------------------------------


async def test_slowdown_then_success(make_s3_store: MakeS3Store) -> None:
    seen: list[tuple[str, str]] = []
    store = await make_s3_store(observer=lambda op, outcome: seen.append((op, outcome)))
    seen.clear()
    wire = Wire(store)
    wire.on("PutObject", wire.answer(503, "SlowDown"), wire.answer(503, "SlowDown"))
    before = store.request_counts["put"]
    meta = await store.put("k", b"body", mode=CREATE)
    assert (await store.get("k")).meta.put_id == meta.put_id
    assert store.request_counts["put"] - before == 3
    assert seen == [("put", "error"), ("put", "error"), ("put", "ok"), ("get", "ok")]


async def test_conditional_conflict_409_is_retried(store: S3Store) -> None:
    base = await store.put("k", b"v1", mode=CREATE)
    wire = Wire(store)
    wire.on("PutObject", wire.answer(409, "ConditionalRequestConflict"))
    meta = await store.put("k", b"v2", mode=Update(base.etag))
    assert (await store.get("k")).body == b"v2"
    assert meta.etag != base.etag


async def test_only_not_applied_failures_give_store_unavailable(store: S3Store) -> None:
    wire = Wire(store)
    wire.on("PutObject", *[wire.answer(503, "SlowDown")] * 4, wire.refused())
    before = dict(store.request_counts)
    with pytest.raises(StoreUnavailable) as info:
        await store.put("k", b"x", mode=CREATE)
    assert store.request_counts["put"] - before.get("put", 0) == FAST_RETRY.max_attempts
    assert store.request_counts["head"] == before.get("head", 0)  # nothing to check
    assert str(info.value) == "s3 put 'k': EndpointConnectionError after 5 attempts"
    assert isinstance(info.value.__cause__, bce.EndpointConnectionError)
    with pytest.raises(NotFound):
        await store.head("k")


async def test_idempotent_requests_retry_transient_failures(store: S3Store) -> None:
    await store.put("k", b"x", mode=CREATE)
    wire = Wire(store)
    wire.on("GetObject", wire.answer(500, "InternalError"), wire.apply_then_timeout())
    wire.on("HeadObject", wire.answer(503, "SlowDown"))
    wire.on("ListObjectsV2", wire.refused())
    wire.on("DeleteObject", wire.apply_then(500, "InternalError"))
    wire.on("PutObject", wire.apply_then(502, "BadGateway"))
    assert (await store.get("k")).body == b"x"
    assert (await store.head("k")).size == 1
    assert [m.key for m in (await store.list("")).items] == ["k"]
    await store.put("k", b"y", mode=OVERWRITE)
    assert (await store.get("k")).body == b"y"
    await store.delete("k")
    assert (await store.list("")).items == []


async def test_non_retryable_error_is_sanitised(store: S3Store) -> None:
    wire = Wire(store)
    wire.on("GetObject", wire.answer(403, "AccessDenied"))
    with pytest.raises(StoreUnavailable) as info:
        await store.get("k")
    assert str(info.value) == "s3 get 'k': HTTP 403 AccessDenied"
    assert isinstance(info.value.__cause__, bce.ClientError)
    with pytest.raises(NotFound) as missing:
        await store.get("k")
    assert str(missing.value) == "s3 get 'k': HTTP 404 NoSuchKey"


# -- ambiguous writes -----------------------------------------------------------


async def test_applied_create_then_500_is_our_own_success(store: S3Store) -> None:
    wire = Wire(store)
    wire.on("PutObject", wire.apply_then(500, "InternalError"))
    before = dict(store.request_counts)
    meta = await store.put("claim", b"mine", mode=CREATE, put_id="p-1")
    assert meta.put_id == "p-1" and meta.size == 4
    # The applied put answered 500, the retry answered 412, one HEAD found p-1.
    assert store.request_counts["put"] - before["put"] == 2
    assert store.request_counts["head"] - before.get("head", 0) == 1
    got = await store.get("claim")
    assert (got.body, got.meta.etag) == (b"mine", meta.etag)


async def test_applied_update_then_timeout_is_our_own_success(store: S3Store) -> None:
    base = await store.put("claim", b"v1", mode=CREATE)
    wire = Wire(store)
    wire.on("PutObject", wire.apply_then_timeout())
    before = dict(store.request_counts)
    meta = await store.put("claim", b"v2", mode=Update(base.etag), put_id="p-2")
    assert meta.put_id == "p-2"
    assert (await store.get("claim")).body == b"v2"
    # The timed-out put, the retry answered 412, and one HEAD.
    assert store.request_counts["put"] - before["put"] == 2
    assert store.request_counts["head"] - before.get("head", 0) == 1


async def test_create_lost_to_another_writer_is_already_exists(
    store: S3Store, make_s3_store: MakeS3Store
) -> None:
    other = await make_s3_store(prefix="retries", probe=False)
    wire = Wire(store)

    async def other_wins_then_500(request: Any) -> Any:
        await other.put("claim", b"theirs", mode=CREATE)
        return error_response(request.url, 500, "InternalError")

    wire.on("PutObject", other_wins_then_500)
    with pytest.raises(AlreadyExists):
        await store.put("claim", b"mine", mode=CREATE)
    assert (await store.get("claim")).body == b"theirs"


async def test_update_lost_to_another_writer_is_precondition_failed(
    store: S3Store, make_s3_store: MakeS3Store
) -> None:
    base = await store.put("claim", b"v1", mode=CREATE)
    other = await make_s3_store(prefix="retries", probe=False)
    wire = Wire(store)

    async def other_wins_then_timeout(request: Any) -> Any:
        await other.put("claim", b"theirs", mode=Update(base.etag))
        raise bce.ReadTimeoutError(endpoint_url=request.url)

    wire.on("PutObject", other_wins_then_timeout)
    with pytest.raises(PreconditionFailed):
        await store.put("claim", b"mine", mode=Update(base.etag))


async def test_unresolvable_outcome_is_ambiguous(store: S3Store) -> None:
    wire = Wire(store)
    wire.on("PutObject", *[wire.answer(500, "InternalError")] * FAST_RETRY.max_attempts)
    wire.on("HeadObject", *[wire.answer(503, "SlowDown")] * FAST_RETRY.max_attempts)
    with pytest.raises(AmbiguousWrite) as info:
        await store.put("claim", b"mine", mode=CREATE)
    assert "InternalError" in str(info.value) and "botocore" not in str(info.value)


async def test_exhausted_after_ambiguous_failure_is_ambiguous(store: S3Store) -> None:
    # The store stays missing the key, but a timed-out request could still land.
    wire = Wire(store)
    wire.on("PutObject", wire.answer(500, "InternalError"), *[wire.answer(503, "SlowDown")] * 4)
    with pytest.raises(AmbiguousWrite):
        await store.put("claim", b"mine", mode=CREATE)


async def test_retry_refused_and_head_failing_is_ambiguous(store: S3Store) -> None:
    base = await store.put("claim", b"v1", mode=CREATE)
    wire = Wire(store)
    wire.on("PutObject", wire.apply_then_timeout())
    wire.on("HeadObject", *[wire.answer(503, "SlowDown")] * FAST_RETRY.max_attempts)
    with pytest.raises(AmbiguousWrite):
        await store.put("claim", b"v2", mode=Update(base.etag))


# -- answers --------------------------------------------------------------------


async def test_412_for_update_of_missing_key_is_not_found(store: S3Store) -> None:
    # Some S3-compatible stores answer 412 (not 404) to If-Match on a missing key.
    wire = Wire(store)
    wire.on("PutObject", wire.answer(412, "PreconditionFailed"))
    with pytest.raises(NotFound):
        await store.put("missing", b"x", mode=Update('"abc"'))


async def test_412_for_update_with_head_failing_is_precondition_failed(store: S3Store) -> None:
    base = await store.put("k", b"v1", mode=CREATE)
    await store.put("k", b"v2", mode=Update(base.etag))
    wire = Wire(store)
    wire.on("HeadObject", *[wire.answer(503, "SlowDown")] * FAST_RETRY.max_attempts)
    with pytest.raises(PreconditionFailed):
        await store.put("k", b"v3", mode=Update(base.etag))


async def test_missing_bucket_is_unavailable_not_missing_key(
    make_s3_store: MakeS3Store,
) -> None:
    store = await make_s3_store(probe=False)
    store.bucket = "no-such-bucket-for-sessiond"
    with pytest.raises(StoreUnavailable, match="NoSuchBucket"):
        await store.put("k", b"x", mode=CREATE)
    with pytest.raises(StoreUnavailable, match="NoSuchBucket"):
        await store.get("k")


async def test_keys_live_under_the_prefix(
    make_s3_store: MakeS3Store, moto_s3_client: Any, s3_bucket: tuple[str, str]
) -> None:
    _, bucket = s3_bucket
    nested = await make_s3_store(prefix="/a/b/")
    bare = await make_s3_store(prefix="")
    await nested.put("s/k", b"1", mode=CREATE)
    await bare.put("top", b"2", mode=CREATE)
    listed = moto_s3_client.list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["a/b/s/k", "top"]  # no probe leftovers
    head = moto_s3_client.head_object(Bucket=bucket, Key="a/b/s/k")
    assert "put-id" in head["Metadata"]
    assert [m.key for m in await bare.list_all("")] == ["a/b/s/k", "top"]
    assert [m.key for m in await nested.list_all("")] == ["s/k"]


# -- the probe ------------------------------------------------------------------


def _strip(*names: str) -> Callable[..., None]:
    def handler(params: dict[str, Any], **_: Any) -> None:
        for name in names:
            params.pop(name, None)

    return handler


@pytest.mark.parametrize(
    ("stripped", "header"),
    [(("IfNoneMatch", "IfMatch"), "If-None-Match"), (("IfMatch",), "If-Match")],
)
async def test_probe_refuses_a_store_that_ignores_conditions(
    make_s3_store: MakeS3Store,
    moto_s3_client: Any,
    s3_bucket: tuple[str, str],
    stripped: tuple[str, ...],
    header: str,
) -> None:
    store = await make_s3_store(prefix="p", probe=False)
    # The conditions are removed before the request is built: moto then sees
    # plain PUTs, like a store that ignores the headers.
    store.client.meta.events.register("before-parameter-build.s3.PutObject", _strip(*stripped))
    with pytest.raises(StoreUnsupported, match=header):
        await store.probe()
    assert "Contents" not in moto_s3_client.list_objects_v2(Bucket=s3_bucket[1])


async def test_probe_refuses_a_store_that_rejects_conditions(make_s3_store: MakeS3Store) -> None:
    store = await make_s3_store(probe=False)
    wire = Wire(store)
    wire.on("PutObject", wire.answer(501, "NotImplemented"))
    with pytest.raises(StoreUnsupported, match="NotImplemented"):
        await store.probe()


async def test_unreachable_store_fails_start(aioboto3_session: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: connections are refused
    store = S3Store(
        "bucket",
        endpoint_url=f"http://127.0.0.1:{port}",
        access_key_id="testing",
        secret_access_key="testing",
        region="us-east-1",
        retry=RetryPolicy(max_attempts=2, base_delay=0.001),
        session=aioboto3_session,
    )
    with pytest.raises(StoreUnavailable, match="EndpointConnectionError after 2 attempts"):
        await store.start()
    with pytest.raises(RuntimeError):
        _ = store.client  # start() closed it again


# -- classification -------------------------------------------------------------


def _client_error(status: int, code: str) -> bce.ClientError:
    return bce.ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject"
    )


@pytest.mark.parametrize(
    ("exc", "retryable", "applied"),
    [
        (_client_error(503, "SlowDown"), True, Applied.NO),
        (_client_error(409, "ConditionalRequestConflict"), True, Applied.NO),
        (_client_error(400, "RequestTimeout"), True, Applied.NO),
        (_client_error(500, "InternalError"), True, Applied.MAYBE),
        (_client_error(504, "GatewayTimeout"), True, Applied.MAYBE),
        (_client_error(403, "AccessDenied"), False, Applied.NO),
        (_client_error(501, "NotImplemented"), False, Applied.NO),
        (bce.ConnectTimeoutError(endpoint_url="u"), True, Applied.NO),
        (bce.EndpointConnectionError(endpoint_url="u", error=_connector_error()), True, Applied.NO),
        (
            bce.EndpointConnectionError(endpoint_url="u", error=ConnectionResetError()),
            True,
            Applied.MAYBE,
        ),
        (bce.ReadTimeoutError(endpoint_url="u"), True, Applied.MAYBE),
        (bce.ConnectionClosedError(endpoint_url="u"), True, Applied.MAYBE),
        (TimeoutError(), True, Applied.MAYBE),
    ],
)
def test_classify(exc: BaseException, retryable: bool, applied: Applied) -> None:
    failure = classify(exc)
    assert failure is not None
    assert (failure.retryable, failure.applied, failure.answer) == (retryable, applied, False)


def test_classify_answers_and_programming_errors() -> None:
    for status, code in [(404, "NoSuchKey"), (412, "PreconditionFailed"), (304, "304")]:
        failure = classify(_client_error(status, code))
        assert failure is not None and failure.answer and not failure.retryable
    bucket = classify(_client_error(404, "NoSuchBucket"))
    assert bucket is not None and not bucket.answer
    assert classify(bce.ParamValidationError(report="bad")) is None
    assert classify(KeyError("x")) is None


def test_backoff_is_bounded() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay=0.1, max_delay=0.5)
    for failures in range(1, 12):
        delay = policy.backoff(failures)
        assert 0 <= delay <= min(0.5, 0.1 * 2 ** (failures - 1))
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
