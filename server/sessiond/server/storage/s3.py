"""The S3 adapter (aioboto3), with conditional writes and classified retries.

SDK retries are off; :mod:`sessiond.server.storage.retry` decides what to
retry. Conditional puts carry a ``put-id`` user-metadata tag, so that when a
response is lost (read timeout, 500) and the retry is refused (412), a HEAD can
tell "that was our own write" from "somebody else won".

Mapping choices:
    * ``Update`` answered 404 -> ``NotFound`` (moto, AWS). ``Update`` answered
      412 -> one HEAD: a missing key -> ``NotFound`` (some S3-compatible stores
      answer 412 for If-Match on a missing key), else ``PreconditionFailed``.
    * ``Create`` answered 412 -> ``AlreadyExists`` with no extra request,
      unless an earlier attempt may have applied (then HEAD and compare put-id).
    * Error messages are ``s3 <op> '<key>': HTTP <status> <code>``; the
      botocore exception is chained as ``__cause__``.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aioboto3
from aiobotocore.config import AioConfig

from sessiond.server.storage.memory import check_limit
from sessiond.server.storage.port import (
    CREATE,
    AlreadyExists,
    AmbiguousWrite,
    Create,
    GetResult,
    ListPage,
    NotFound,
    NotModified,
    ObjectMeta,
    ObjectStore,
    Overwrite,
    PreconditionFailed,
    PutMode,
    RequestObserver,
    StoreError,
    StoreUnavailable,
    StoreUnsupported,
    Update,
)
from sessiond.server.storage.retry import (
    Applied,
    Failure,
    RetryPolicy,
    classify,
    client_error_status,
    describe,
)
from sessiond.server.storage.s3_lean import LeanS3

T = TypeVar("T")

PROBE_PREFIX = ".sessiond-probe"
_PUT_ID = "put-id"  # sent as the x-amz-meta-put-id header
_OUTCOMES = {304: "not_modified", 404: "not_found"}


class S3Store(ObjectStore):
    """Objects in an S3 (or S3-compatible) bucket under an optional prefix.

    Attributes:
        bucket: The bucket.
        prefix: The key prefix, without leading or trailing ``/`` (may be empty).
        request_counts: Requests made, by operation (retries count).
    """

    def __init__(
        self,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        max_pool_connections: int = 64,
        probe: bool = True,
        observer: RequestObserver | None = None,
        session: aioboto3.Session | None = None,
        lean_requests: bool = True,
    ) -> None:
        """Configures the store; :meth:`start` connects.

        Args:
            bucket: The bucket name.
            prefix: Key prefix inside the bucket ("a/b" stores key k at "a/b/k").
            endpoint_url: A non-AWS endpoint (MinIO, moto...); path-style
                addressing is used when set.
            region: The region; ``None`` lets botocore resolve it.
            access_key_id: Explicit credentials; ``None`` uses the default chain.
            secret_access_key: Explicit credentials.
            session_token: Explicit credentials.
            connect_timeout: Seconds to establish a connection.
            read_timeout: Seconds to wait for response data.
            retry: Our retry policy (the SDK's retries are disabled).
            max_pool_connections: HTTP connection pool size.
            probe: In :meth:`start`, check that the store honours conditional
                writes (see :meth:`probe`).
            observer: Called as ``observer(op, outcome)`` once per request.
            session: An aioboto3 session to reuse (tests share one because
                loading the S3 model costs ~0.2 s per session).
            lean_requests: With an explicit endpoint, send GET and PUT through
                :mod:`sessiond.server.storage.s3_lean` (two thirds of the
                client CPU of the SDK); other calls, and everything on AWS
                proper, use the SDK.
        """
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._root = f"{self.prefix}/" if self.prefix else ""
        self._endpoint_url = endpoint_url
        self._region = region
        self._credentials = {
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "aws_session_token": session_token,
        }
        self._config = AioConfig(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_pool_connections,
            s3={"addressing_style": "path"} if endpoint_url else None,
            # Only send/validate checksums when S3 requires them: several
            # S3-compatible stores reject the newer default trailers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            # The adapter builds every request itself from checked values;
            # botocore's per-call schema validation is ~5% of a request's CPU.
            parameter_validation=False,
        )
        self._retry = retry or RetryPolicy()
        self._probe = probe
        self._observer = observer
        self._session = session
        self._stack: contextlib.AsyncExitStack | None = None
        self._client: Any = None
        self._lean_requests = lean_requests
        self._lean: LeanS3 | None = None
        self.request_counts: Counter[str] = Counter()

    # -- lifecycle --------------------------------------------------------

    @property
    def client(self) -> Any:
        """The aiobotocore S3 client (tests register event hooks on ``client.meta.events``)."""
        if self._client is None:
            raise RuntimeError("S3Store is not started")
        return self._client

    async def start(self) -> None:
        """Opens the client and, unless disabled, probes conditional-write support.

        Raises:
            StoreUnsupported: The store ignores conditional writes.
            StoreUnavailable: The store could not be reached.
        """
        if self._client is not None:
            return
        session = self._session or aioboto3.Session()
        stack = contextlib.AsyncExitStack()
        self._client = await stack.enter_async_context(
            session.client(
                "s3",
                endpoint_url=self._endpoint_url,
                region_name=self._region,
                config=self._config,
                **{k: v for k, v in self._credentials.items() if v is not None},
            )
        )
        self._stack = stack
        if self._lean_requests and LeanS3.usable(self._client, self._endpoint_url):
            self._lean = LeanS3(self._client)
        if self._probe:
            try:
                await self.probe()
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        """Closes the client (idempotent)."""
        stack, self._stack, self._client = self._stack, None, None
        self._lean = None
        if stack is not None:
            await stack.aclose()

    async def __aenter__(self) -> S3Store:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def probe(self) -> None:
        """Checks that create-only and If-Match puts are enforced.

        Writes a scratch object under ``<prefix>/.sessiond-probe/``, expects a
        second create and an update with a wrong ETag to be refused, and
        deletes it.

        Raises:
            StoreUnsupported: A condition was ignored or is not implemented.
            StoreUnavailable: The store failed after retries.
        """
        key = f"{PROBE_PREFIX}/{uuid.uuid4().hex}"
        try:
            await self._probe_conditions(key)
        except StoreUnavailable as exc:
            # 400/501 on a plain conditional put: the store does not implement it.
            status = client_error_status(exc.__cause__ or exc)
            if status in (400, 501):
                raise StoreUnsupported(
                    f"s3 bucket {self.bucket!r} rejects conditional puts ({exc})"
                ) from exc
            raise
        finally:
            with contextlib.suppress(StoreError):
                await self.delete(key)

    async def _probe_conditions(self, key: str) -> None:
        await self.put(key, b"probe", mode=CREATE)
        checks: list[tuple[PutMode, type[StoreError], str]] = [
            (CREATE, AlreadyExists, "If-None-Match: *"),
            (Update('"00000000000000000000000000000000"'), PreconditionFailed, "If-Match"),
        ]
        for mode, expected, header in checks:
            try:
                await self.put(key, b"probe-overwritten", mode=mode)
            except expected:
                continue
            raise StoreUnsupported(
                f"s3 bucket {self.bucket!r} ignores conditional puts ({header}); "
                "sessiond needs an S3-compatible store that enforces conditional writes"
            )

    # -- requests ---------------------------------------------------------

    def _full(self, key: str) -> str:
        return self._root + key

    async def _request(self, op: str, call: Callable[[], Awaitable[T]], label_412: str) -> T:
        """Makes one request, counting and observing it; re-raises its exception."""
        self.request_counts[op] += 1
        try:
            result = await call()
        except Exception as exc:
            status = client_error_status(exc)
            outcome = label_412 if status == 412 else _OUTCOMES.get(status or 0, "error")
            if self._observer is not None:
                self._observer(op, outcome)
            raise
        if self._observer is not None:
            self._observer(op, "ok")
        return result

    def _idempotent(
        self,
        op: str,
        key: str | None,
        call: Callable[[], Awaitable[T]],
        answers: Mapping[int, type[StoreError]],
    ) -> Awaitable[T]:
        """Runs a request that is safe to repeat, retrying transient failures."""
        return self._retry.run(
            op, key, lambda: self._request(op, call, "precondition_failed"), answers
        )

    async def get(self, key: str, *, if_none_match: str | None = None) -> GetResult:
        """Reads an object (see :meth:`ObjectStore.get`)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key)}
        if if_none_match is not None:
            params["IfNoneMatch"] = if_none_match

        async def call() -> tuple[dict[str, Any], bytes]:
            if self._lean is not None:
                return await self._lean.get_object(params)
            resp = await self.client.get_object(**params)
            async with resp["Body"] as stream:
                return resp, await stream.read()

        resp, body = await self._idempotent("get", key, call, {404: NotFound, 304: NotModified})
        return GetResult(body=body, meta=self._meta(key, resp, len(body)))

    async def head(self, key: str) -> ObjectMeta:
        """Reads an object's metadata (see :meth:`ObjectStore.head`)."""
        resp = await self._idempotent(
            "head",
            key,
            lambda: self.client.head_object(Bucket=self.bucket, Key=self._full(key)),
            {404: NotFound},
        )
        return self._meta(key, resp, int(resp["ContentLength"]))

    @staticmethod
    def _meta(key: str, resp: Mapping[str, Any], size: int) -> ObjectMeta:
        metadata = resp.get("Metadata") or {}
        return ObjectMeta(
            key=key,
            etag=resp["ETag"],
            size=size,
            last_modified=resp.get("LastModified"),
            put_id=metadata.get(_PUT_ID),
        )

    async def list(
        self, prefix: str, *, start_after: str | None = None, limit: int = 1000
    ) -> ListPage:
        """Lists objects by prefix (see :meth:`ObjectStore.list`); probe keys are hidden."""
        check_limit(limit)
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": self._full(prefix),
            "MaxKeys": limit,
        }
        if start_after is not None:
            params["StartAfter"] = self._full(start_after)
        resp = await self._idempotent(
            "list", prefix, lambda: self.client.list_objects_v2(**params), {}
        )
        contents = resp.get("Contents") or []
        cut = len(self._root)
        items = [
            ObjectMeta(
                key=obj["Key"][cut:],
                etag=obj["ETag"],
                size=int(obj["Size"]),
                last_modified=obj.get("LastModified"),
            )
            for obj in contents
            if not obj["Key"][cut:].startswith(PROBE_PREFIX + "/")
        ]
        more = bool(resp.get("IsTruncated")) and bool(contents)
        return ListPage(items=items, next_start_after=contents[-1]["Key"][cut:] if more else None)

    async def list_prefixes(self, prefix: str) -> list[str]:
        """The child "directories" of ``prefix`` (ListObjectsV2 with ``Delimiter="/"``)."""
        found: list[str] = []
        token: str | None = None
        cut = len(self._root)
        while True:
            params: dict[str, Any] = {
                "Bucket": self.bucket,
                "Prefix": self._full(prefix),
                "Delimiter": "/",
                "MaxKeys": 1000,
            }
            if token:
                params["ContinuationToken"] = token
            resp = await self._idempotent(
                "list", prefix, lambda params=params: self.client.list_objects_v2(**params), {}
            )
            found.extend(item["Prefix"][cut:] for item in resp.get("CommonPrefixes") or [])
            token = resp.get("NextContinuationToken") if resp.get("IsTruncated") else None
            if not token:
                return [p for p in found if not p.startswith(PROBE_PREFIX + "/")]

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Deletes an object; a missing key is fine unless ``if_match`` is given.

        A conditional delete is safe to retry: if a lost attempt applied, the
        retry answers 404 (NotFound), which callers treat as "gone" anyway.
        """
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": self._full(key)}
        if if_match is not None:
            params["IfMatch"] = if_match
            await self._idempotent(
                "delete",
                key,
                lambda: self.client.delete_object(**params),
                {404: NotFound, 412: PreconditionFailed},
            )
            return
        with contextlib.suppress(NotFound):  # S3 answers 204, some stores 404
            await self._idempotent(
                "delete", key, lambda: self.client.delete_object(**params), {404: NotFound}
            )

    # -- writes -----------------------------------------------------------

    async def put(
        self, key: str, body: bytes, *, mode: PutMode, put_id: str | None = None
    ) -> ObjectMeta:
        """Writes an object (see :meth:`ObjectStore.put` and the module notes)."""
        body = bytes(body)
        put_id = put_id or uuid.uuid4().hex
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": self._full(key),
            "Body": body,
            "Metadata": {_PUT_ID: put_id},
        }
        if isinstance(mode, Overwrite):
            resp = await self._idempotent("put", key, lambda: self._put_object(params), {})
            return ObjectMeta(key, resp["ETag"], len(body), None, put_id)
        if isinstance(mode, Create):
            params["IfNoneMatch"] = "*"
            label = "already_exists"
        elif isinstance(mode, Update):
            params["IfMatch"] = mode.etag
            label = "precondition_failed"
        else:
            raise TypeError(f"unknown put mode {mode!r}")
        return await self._conditional_put(key, len(body), mode, put_id, params, label)

    def _put_object(self, params: dict[str, Any]) -> Awaitable[dict[str, Any]]:
        if self._lean is not None:
            return self._lean.put_object(params)
        return self.client.put_object(**params)

    async def _conditional_put(
        self,
        key: str,
        size: int,
        mode: Create | Update,
        put_id: str,
        params: dict[str, Any],
        label: str,
    ) -> ObjectMeta:
        maybe_applied = False
        failure: Failure | None = None
        last: Exception | None = None
        attempt = 0
        while attempt < self._retry.max_attempts:
            attempt += 1
            try:
                resp = await self._request("put", lambda: self._put_object(params), label)
                return ObjectMeta(key, resp["ETag"], size, None, put_id)
            except Exception as exc:
                failure = classify(exc)
                if failure is None:
                    raise
                if failure.answer and failure.status in (404, 412):
                    return await self._resolve_refusal(
                        key, mode, put_id, failure, exc, maybe_applied
                    )
                maybe_applied = maybe_applied or failure.applied is Applied.MAYBE
                last = exc
                if not failure.retryable:
                    break
            if attempt < self._retry.max_attempts:
                await asyncio.sleep(self._retry.backoff(attempt))
        assert failure is not None and last is not None
        message = describe("put", key, failure, attempt)
        if not maybe_applied:
            raise StoreUnavailable(message) from last
        # A request may have landed; only our put-id on the object proves it did.
        own = await self._own_write(key, put_id, message)
        if own is not None:
            return own
        raise AmbiguousWrite(message) from last

    async def _own_write(self, key: str, put_id: str, message: str) -> ObjectMeta | None:
        """Returns the object's meta if it carries ``put_id``; raises AmbiguousWrite if unknown."""
        try:
            meta = await self.head(key)
        except NotFound:
            return None
        except StoreUnavailable as exc:
            raise AmbiguousWrite(f"{message}; outcome unknown ({exc})") from exc
        return meta if meta.put_id == put_id else None

    async def _resolve_refusal(
        self,
        key: str,
        mode: Create | Update,
        put_id: str,
        failure: Failure,
        exc: Exception,
        maybe_applied: bool,
    ) -> ObjectMeta:
        """Maps a 412/404 answer, recognising our own earlier write."""
        message = describe("put", key, failure)
        if isinstance(mode, Create) and failure.status == 412 and not maybe_applied:
            raise AlreadyExists(message) from exc
        if isinstance(mode, Update) and failure.status == 404 and not maybe_applied:
            raise NotFound(message) from exc
        try:
            meta: ObjectMeta | None = await self.head(key)
        except NotFound:
            meta = None
        except StoreUnavailable as head_exc:
            if maybe_applied:
                raise AmbiguousWrite(f"{message}; outcome unknown ({head_exc})") from head_exc
            # Update answered 412: the condition failed, missing or changed.
            raise PreconditionFailed(message) from exc
        if meta is not None and meta.put_id == put_id:
            return meta  # the response of our own write was lost
        if isinstance(mode, Create):
            raise AlreadyExists(message) from exc
        if meta is None:
            raise NotFound(message) from exc
        raise PreconditionFailed(message) from exc
