"""Model-call failures as sessiond errors, with messages written here.

An endpoint's own error text can echo what it was sent — a key, a header,
the prompt — so it never reaches an error, a turn record or a log line: each
adapter classifies the failure (by status code, error code, exception type)
and raises one of these with a message of its own.
"""

from __future__ import annotations

from sessiond.errors import (
    ContextTooLong,
    EngineRateLimited,
    EngineRejected,
    EngineTimeout,
    EngineUnauthorized,
    EngineUnavailable,
    SessiondError,
)

#: Phrases endpoints use when the prompt exceeds the model's context window
#: (OpenAI, vLLM, llama.cpp, Ollama, LiteLLM, Bedrock); matched, never echoed.
CONTEXT_PHRASES = (
    "context length",
    "context_length",
    "context window",
    "context size",
    "maximum context",
    "too many tokens",
    "too many input tokens",
    "prompt is too long",
    "input is too long",
    "too long for",
    "exceeds the available context",
    "reduce the length",
)


def looks_like_context_overflow(*texts: object) -> bool:
    """True when an endpoint's error code or text says the prompt is too long."""
    lowered = " ".join(str(text) for text in texts if text).lower()
    return any(phrase in lowered for phrase in CONTEXT_PHRASES)


def timeout(engine: str, seconds: float, model: str) -> SessiondError:
    """The model did not answer in time."""
    return EngineTimeout(
        f"the {engine} engine's model did not answer within {seconds:g} seconds",
        engine=engine,
        model=model or None,
    )


def unreachable(engine: str, model: str) -> SessiondError:
    """The endpoint could not be reached (connection refused, reset, DNS)."""
    return EngineUnavailable(
        f"the {engine} engine's endpoint cannot be reached; retry later",
        engine=engine,
        model=model or None,
    )


def from_status(engine: str, status: int, model: str, *, context: bool = False) -> SessiondError:
    """The error for an HTTP status of the endpoint (``context``: its text says too long)."""
    meta = {"engine": engine, "model": model or None, "http_status": status}
    if status in (401, 403):
        return EngineUnauthorized(
            f"the {engine} engine's endpoint refused the server's credentials (HTTP {status}); "
            "the operator must check the engine's credentials",
            **meta,
        )
    if status == 429:
        return EngineRateLimited(
            f"the {engine} engine's endpoint is rate limiting requests (HTTP 429); retry later",
            **meta,
        )
    if context or status == 413:
        return ContextTooLong(
            f"the conversation is too long for the {engine} engine's model; "
            "shorten the input or lower the context window",
            **meta,
        )
    if status == 408:
        return EngineTimeout(f"the {engine} engine's model timed out (HTTP 408)", **meta)
    if status >= 500 or status == 0:
        return EngineUnavailable(
            f"the {engine} engine's endpoint failed (HTTP {status}); retry later", **meta
        )
    return EngineRejected(
        f"the {engine} engine's endpoint refused the request (HTTP {status}); "
        "check the model name and the engine's settings",
        **meta,
    )
