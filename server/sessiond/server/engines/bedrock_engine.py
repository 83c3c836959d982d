"""The ``bedrock`` engine: Amazon Bedrock's Converse / ConverseStream API through aioboto3.

Converse uses the very message and content-block shapes sessiond stores, so a
conversation goes out as stored (bytes decoded). Answers are streamed with
``converse_stream`` unless the engine sets ``stream: false`` (``converse``).
Credentials come from the standard AWS chain; botocore signs requests with
them and never puts the secret on the wire or in its errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aioboto3
import aiohttp
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)

from sessiond.errors import EngineUnauthorized, SessiondError
from sessiond.server.domain.content import message_text
from sessiond.server.domain.engines import EngineEvent, ModelRequest, TextDelta
from sessiond.server.engines import failures
from sessiond.server.engines.bedrock_format import (
    ConverseStream,
    from_converse,
    to_messages,
    tool_config,
)
from sessiond.server.engines.config import EngineConfig

log = logging.getLogger("sessiond.engines")

#: Bedrock error codes (case-insensitive; stream errors are camelCase) by meaning.
_UNAUTHORIZED = {
    "accessdeniedexception",
    "unrecognizedclientexception",
    "invalidsignatureexception",
    "expiredtokenexception",
    "incompletesignature",
    "missingauthenticationtokenexception",
    "missingauthenticationtoken",
}
_RATE_LIMITED = {"throttlingexception", "servicequotaexceededexception", "toomanyrequestsexception"}
_TIMEOUT = {"modeltimeoutexception"}
_UNAVAILABLE = {
    "serviceunavailableexception",
    "internalserverexception",
    "modelstreamerrorexception",
    "modelnotreadyexception",
}


class BedrockEngine:
    """A model on Amazon Bedrock (or anything speaking its runtime API)."""

    needs_history = True
    instant = False

    def __init__(self, config: EngineConfig) -> None:
        self.name = config.name
        self.model = config.model
        self.allowed_models = config.allowed_models
        self.window = config.window
        self._config = config
        self._session = aioboto3.Session(profile_name=config.profile, region_name=config.region)
        self._client: Any = None
        self._exit = contextlib.AsyncExitStack()
        self._opening = asyncio.Lock()

    async def _runtime(self) -> Any:
        """The bedrock-runtime client, opened on first use and kept."""
        async with self._opening:
            if self._client is None:
                timeout = self._config.timeout_seconds
                # total_max_attempts counts the first try; max_attempts would not.
                attempts = self._config.max_retries + 1
                settings = Config(
                    read_timeout=timeout,
                    connect_timeout=min(timeout, 10.0),
                    retries={"total_max_attempts": attempts, "mode": "standard"},
                )
                self._client = await self._exit.enter_async_context(
                    self._session.client(
                        "bedrock-runtime",
                        region_name=self._config.region,
                        endpoint_url=self._config.endpoint_url,
                        config=settings,
                    )
                )
            return self._client

    def _params(self, request: ModelRequest, model: str) -> dict[str, Any]:
        config = self._config
        params: dict[str, Any] = {"modelId": model, "messages": to_messages(request.messages)}
        if config.system_prompt:
            params["system"] = [{"text": config.system_prompt}]
        inference: dict[str, Any] = {}
        if config.max_tokens is not None:
            inference["maxTokens"] = config.max_tokens
        if config.temperature is not None:
            inference["temperature"] = config.temperature
        if inference:
            params["inferenceConfig"] = inference
        tools = tool_config(request.tools, request.messages)
        if tools is not None:
            params["toolConfig"] = tools
        return params

    async def stream(self, request: ModelRequest) -> AsyncIterator[EngineEvent]:
        """One Converse call: text deltas as they arrive, then the answer."""
        model = request.model or self.model
        params = self._params(request, model)
        try:
            client = await self._runtime()
            if self._config.stream:
                response = await client.converse_stream(**params)
                answer = ConverseStream()
                async for event in response["stream"]:
                    text = answer.add(event)
                    if text:
                        yield TextDelta(text)
                yield answer.response(model)
                return
            result = from_converse(await client.converse(**params), model)
            if text := message_text(result.message):
                yield TextDelta(text)
            yield result
        except ClientError as exc:
            raise self._failure(exc, model) from None
        except (TimeoutError, ReadTimeoutError, ConnectTimeoutError):
            self._log("timeout")
            raise failures.timeout(self.name, self._config.timeout_seconds, model) from None
        except (NoCredentialsError, PartialCredentialsError):
            self._log("no credentials")
            raise EngineUnauthorized(
                f"the {self.name} engine has no AWS credentials; the operator must provide them",
                engine=self.name,
            ) from None
        except (BotoCoreError, aiohttp.ClientError) as exc:
            self._log(type(exc).__name__)
            raise failures.unreachable(self.name, model) from None

    def _log(self, error: str, status: int | None = None) -> None:
        log.warning(
            "model call failed",
            extra={"engine": self.name, "error": error, "http_status": status},
        )

    def _failure(self, exc: ClientError, model: str) -> SessiondError:
        error = exc.response.get("Error") or {}
        code = str(error.get("Code") or "").lower()
        status = int((exc.response.get("ResponseMetadata") or {}).get("HTTPStatusCode") or 0)
        self._log(code or type(exc).__name__, status or None)
        if code in _UNAUTHORIZED:
            return failures.from_status(self.name, 403, model)
        if code in _RATE_LIMITED:
            return failures.from_status(self.name, 429, model)
        if code in _TIMEOUT:
            return failures.timeout(self.name, self._config.timeout_seconds, model)
        if code in _UNAVAILABLE:
            return failures.from_status(self.name, 503, model)
        if code == "validationexception":
            context = failures.looks_like_context_overflow(error.get("Message"))
            return failures.from_status(self.name, 400, model, context=context)
        return failures.from_status(self.name, status or 502, model)

    async def aclose(self) -> None:
        """Closes the client."""
        self._client = None
        await self._exit.aclose()
