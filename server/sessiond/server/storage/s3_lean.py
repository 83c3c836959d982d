"""GET and PUT of one object without the SDK's per-call machinery.

A turn is two or three PUTs, and on a small machine aiobotocore's client-side
work per call (parameter and endpoint-rule processing, serialisation, event
dispatch, response parsing) costs ~3.5 ms of CPU: more than the rest of the
turn. For the two calls on the hot path this module builds the request itself,
signs it with botocore's own ``S3SigV4Auth`` and sends it through the client's
own HTTP session (same connection pool, TLS and proxy settings), at about
two thirds of the CPU.

It keeps the SDK's contract where the adapter depends on it:

* failures surface as the same botocore exceptions: error answers as
  ``ClientError`` with the HTTP status and S3 error code, transport failures
  as the HTTP session maps them (``EndpointConnectionError``,
  ``ReadTimeoutError``...), so :func:`sessiond.server.storage.retry.classify`
  is unchanged;
* the client's ``before-parameter-build.s3.<Op>`` and ``before-send.s3.<Op>``
  events are emitted with the same arguments, so hooks registered on
  ``client.meta.events`` (fault injection in the tests) see these requests.

Used only with an explicit endpoint (path-style addressing), where the URL is
``<endpoint>/<bucket>/<key>``; on AWS S3 proper the SDK resolves endpoints and
the adapter uses it for every call.
"""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

from botocore import exceptions as bce
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.hooks import first_non_none_response

_META = "x-amz-meta-"


class LeanS3:
    """Signed GET and PUT requests of single objects (path-style addressing).

    Args:
        client: The started aiobotocore S3 client: its credentials, region,
            endpoint, HTTP session and event hooks are used (private
            attributes of aiobotocore 2.25, pinned through aioboto3 15.5.0;
            :meth:`usable` checks they are there).
    """

    def __init__(self, client: Any) -> None:
        self._client = client
        self._endpoint = client.meta.endpoint_url.rstrip("/")
        self._region = client.meta.region_name or "us-east-1"
        self._credentials = client._request_signer._credentials
        self._http = client._endpoint.http_session
        self._models = client.meta.service_model

    @staticmethod
    def usable(client: Any, endpoint_url: str | None) -> bool:
        """Whether requests can go this way: an explicit endpoint, credentials, the SDK's parts."""
        signer = getattr(client, "_request_signer", None)
        endpoint = getattr(client, "_endpoint", None)
        return (
            bool(endpoint_url)
            and getattr(signer, "_credentials", None) is not None
            and hasattr(endpoint, "http_session")
        )

    async def get_object(self, params: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """``GetObject`` with ``Bucket``, ``Key`` and optional ``IfNoneMatch``.

        Returns:
            ``(response, body)``, the response shaped as the SDK's (``ETag``,
            ``ContentLength``, ``LastModified``, ``Metadata``).
        """
        params = await self._parameters("GetObject", params)
        headers = {}
        if params.get("IfNoneMatch") is not None:
            headers["If-None-Match"] = params["IfNoneMatch"]
        answer, body = await self._send("GetObject", "GET", params, headers, b"")
        return _shaped(answer, len(body)), body

    async def put_object(self, params: dict[str, Any]) -> dict[str, Any]:
        """``PutObject`` with ``Bucket``, ``Key``, ``Body``, ``Metadata`` and conditions."""
        body = params["Body"]  # the SDK's own handlers wrap it in a file object
        params = await self._parameters("PutObject", params)
        headers = {f"{_META}{name}": value for name, value in params.get("Metadata", {}).items()}
        if params.get("IfNoneMatch") is not None:
            headers["If-None-Match"] = params["IfNoneMatch"]
        if params.get("IfMatch") is not None:
            headers["If-Match"] = params["IfMatch"]
        answer, _ = await self._send("PutObject", "PUT", params, headers, body)
        return _shaped(answer, len(body))

    async def _parameters(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        # What the SDK emits before building a request: handlers may change
        # the parameters in place (the tests strip conditions this way).
        params = dict(params)
        await self._client.meta.events.emit(
            f"before-parameter-build.s3.{operation}",
            params=params,
            model=self._models.operation_model(operation),
            context={},
        )
        return params

    async def _send(
        self,
        operation: str,
        method: str,
        params: dict[str, Any],
        headers: dict[str, str],
        body: bytes,
    ) -> tuple[dict[str, str], bytes]:
        """Signs and sends one request; returns the (lower-cased) headers and body of a 2xx."""
        url = f"{self._endpoint}/{quote(params['Bucket'])}/{quote(params['Key'], safe='/~')}"
        credentials = await self._credentials.get_frozen_credentials()
        request = AWSRequest(method=method, url=url, headers=headers, data=body)
        S3SigV4Auth(credentials, "s3", self._region).add_auth(request)
        prepared = request.prepare()
        responses = await self._client.meta.events.emit(
            f"before-send.s3.{operation}", request=prepared
        )
        response = first_non_none_response(responses)
        if response is None:
            response = await self._http.send(prepared)
        answer = {k.lower(): v for k, v in response.headers.items()}
        content = await response.content
        if response.status_code >= 300:
            raise _client_error(operation, response.status_code, answer, content)
        return answer, content


def _shaped(headers: dict[str, str], size: int) -> dict[str, Any]:
    """A response dict shaped as the SDK's for the fields the adapter reads."""
    modified = headers.get("last-modified")
    return {
        "ETag": headers.get("etag", ""),
        "ContentLength": int(headers.get("content-length", size)),
        "LastModified": parsedate_to_datetime(modified) if modified else None,
        "Metadata": {k[len(_META) :]: v for k, v in headers.items() if k.startswith(_META)},
    }


def _client_error(
    operation: str, status: int, headers: dict[str, str], content: bytes
) -> bce.ClientError:
    """The ``ClientError`` the SDK raises for an error answer (S3's XML ``<Code>``)."""
    code, message = str(status), ""
    if content:
        try:
            root = ElementTree.fromstring(content)
        except ElementTree.ParseError:
            pass
        else:
            code = root.findtext("Code") or code
            message = root.findtext("Message") or ""
    elif status == 304:
        code = "304"
    response = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": headers},
    }
    return bce.ClientError(response, operation)
