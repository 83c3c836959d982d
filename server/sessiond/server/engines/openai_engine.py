"""The ``openai`` engine: any OpenAI-compatible chat-completions endpoint.

OpenAI, Azure OpenAI (its ``/openai/v1`` endpoint), vLLM, Ollama, LM Studio,
llama.cpp's server, LiteLLM... through the official ``openai`` package
(``AsyncOpenAI`` with ``base_url``). Answers are streamed (``stream=True``
with ``stream_options.include_usage``) unless the engine sets ``stream:
false``. An endpoint that needs no key (Ollama) gets a placeholder, because
the client requires one.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai

from sessiond.errors import SessiondError
from sessiond.server.domain.content import message_text
from sessiond.server.domain.engines import EngineEvent, ModelRequest, TextDelta
from sessiond.server.engines import failures
from sessiond.server.engines.config import EngineConfig
from sessiond.server.engines.openai_format import ChatStream, from_completion, to_messages, to_tools

log = logging.getLogger("sessiond.engines")

#: Sent when no key is configured: local servers (Ollama, llama.cpp) ignore it.
NO_KEY = "sessiond-no-key"


class OpenAIEngine:
    """A model behind an OpenAI-compatible chat-completions endpoint."""

    needs_history = True
    instant = False

    def __init__(self, config: EngineConfig) -> None:
        self.name = config.name
        self.model = config.model
        self.allowed_models = config.allowed_models
        self.window = config.window
        self._config = config
        self._client = openai.AsyncOpenAI(
            api_key=config.api_key.get_secret_value() if config.api_key else NO_KEY,
            base_url=config.base_url,
            timeout=config.timeout_seconds,
            max_retries=config.max_retries,
        )

    def _params(self, request: ModelRequest, model: str) -> dict[str, Any]:
        config = self._config
        params: dict[str, Any] = {
            "model": model,
            "messages": to_messages(request.messages, config.system_prompt),
        }
        if request.tools:
            params["tools"] = to_tools(request.tools)
        if config.max_tokens is not None:
            params[config.max_tokens_field] = config.max_tokens
        if config.temperature is not None:
            params["temperature"] = config.temperature
        return params

    async def stream(self, request: ModelRequest) -> AsyncIterator[EngineEvent]:
        """One chat completion: text deltas as they arrive, then the answer."""
        model = request.model or self.model
        params = self._params(request, model)
        try:
            if self._config.stream:
                chunks = await self._client.chat.completions.create(
                    **params, stream=True, stream_options={"include_usage": True}
                )
                answer = ChatStream()
                async for chunk in chunks:
                    text = answer.add(chunk)
                    if text:
                        yield TextDelta(text)
                yield answer.response(model)
                return
            completion = await self._client.chat.completions.create(**params)
            response = from_completion(completion, model)
            if text := message_text(response.message):
                yield TextDelta(text)
            yield response
        except openai.OpenAIError as exc:
            raise self._failure(exc, model) from None
        except httpx2.TimeoutException:
            # A stream that goes silent: raised while iterating, not wrapped by openai.
            raise failures.timeout(self.name, self._config.timeout_seconds, model) from None
        except httpx2.HTTPError:
            raise failures.unreachable(self.name, model) from None

    def _failure(self, exc: openai.OpenAIError, model: str) -> SessiondError:
        # Only the exception's type, status and code are logged: its text may
        # echo the request (and some servers echo the key).
        status = getattr(exc, "status_code", None)
        log.warning(
            "model call failed",
            extra={"engine": self.name, "error": type(exc).__name__, "http_status": status},
        )
        if isinstance(exc, openai.APITimeoutError):
            return failures.timeout(self.name, self._config.timeout_seconds, model)
        if isinstance(exc, openai.APIConnectionError):
            return failures.unreachable(self.name, model)
        code = getattr(exc, "code", None)
        if isinstance(exc, openai.APIStatusError):
            body = exc.body if isinstance(exc.body, dict | str) else None
            context = failures.looks_like_context_overflow(code, getattr(exc, "message", ""), body)
            return failures.from_status(self.name, exc.status_code, model, context=context)
        if isinstance(exc, openai.APIError):  # an error event inside the stream
            context = failures.looks_like_context_overflow(code, getattr(exc, "message", ""))
            return failures.from_status(self.name, 400 if context else 502, model, context=context)
        return failures.from_status(self.name, 0, model)

    async def aclose(self) -> None:
        """Closes the HTTP client."""
        await self._client.close()
