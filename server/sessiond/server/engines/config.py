"""The engines the operator configured: from flags / ``SESSIOND_*`` variables and an engines file.

Flags configure at most one engine of each kind, named after it:

- ``openai`` when ``--openai-base-url``, ``--openai-api-key(-file)`` is set or
  ``--engine openai`` names it (model: ``--model``);
- ``bedrock`` when ``--bedrock-region``, ``--bedrock-endpoint``,
  ``--bedrock-model`` is set or ``--engine bedrock`` names it (model:
  ``--bedrock-model``, else ``--model``).

``--engines-file`` (YAML or JSON) adds any number of named engines::

    default: local            # optional: the default engine
    engines:
      local:
        type: openai          # or bedrock
        base_url: http://localhost:11434/v1
        model: llama3.2
        allowed_models: [qwen2.5]
        api_key_env: OPENAI_API_KEY      # or api_key_file: /run/secrets/key
        timeout_seconds: 60
        context_window: {messages: 40, tokens: 8000}

Keys are never written in the file: an engine names the environment variable
or the (mounted secret) file that holds its key. Bedrock uses the standard AWS
credential chain (environment, profile, web identity / IRSA, instance role).

The default engine: ``--engine``, else the file's ``default``, else
``--default-engine`` (``echo``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from sessiond.server.domain.context_window import ContextWindow
from sessiond.server.domain.engines import EchoEngine, Engine, EngineRegistry, LoopSettings
from sessiond.server.ops.settings import Settings


@dataclass(frozen=True)
class EngineConfig:
    """One configured model engine.

    Attributes:
        name: The name requests use.
        kind: ``openai`` (any OpenAI-compatible chat-completions endpoint) or ``bedrock``.
        model: The default model.
        allowed_models: Other models a request may choose.
        base_url: The OpenAI-compatible endpoint (None: api.openai.com).
        api_key: The OpenAI-compatible endpoint's key, if any.
        region: AWS region (bedrock).
        endpoint_url: Bedrock runtime endpoint override.
        profile: AWS profile (bedrock).
        timeout_seconds: How long the model may stay silent.
        max_retries: Retries on rate limits, timeouts and server errors.
        max_tokens: Most tokens in an answer (None: the endpoint's default).
        temperature: Sampling temperature (None: the endpoint's default).
        system_prompt: A system prompt for every call.
        window: The engine's context window (None: the server's).
        stream: Stream the model's answer (False: one request, one answer).
        max_tokens_field: The OpenAI parameter carrying ``max_tokens``
            (``max_completion_tokens`` for newer OpenAI models).
    """

    name: str
    kind: Literal["openai", "bedrock"]
    model: str
    allowed_models: frozenset[str] = frozenset()
    base_url: str | None = None
    api_key: SecretStr | None = None
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    timeout_seconds: float = 120.0
    max_retries: int = 2
    max_tokens: int | None = None
    temperature: float | None = None
    system_prompt: str | None = None
    window: ContextWindow | None = None
    stream: bool = True
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"


class _Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    messages: int = Field(0, ge=0)
    tokens: int = Field(0, ge=0)


class _FileEngine(BaseModel):
    """One engine of the engines file."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["openai", "bedrock"]
    model: str = Field(min_length=1)
    allowed_models: list[str] = Field(default_factory=list)
    base_url: str | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    timeout_seconds: float | None = Field(None, gt=0, le=3600)
    max_retries: int | None = Field(None, ge=0, le=10)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    system_prompt: str | None = None
    context_window: _Window | None = None
    stream: bool = True
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"


class _EnginesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    default: str | None = None
    engines: dict[str, _FileEngine] = Field(default_factory=dict)


def _split(models: str) -> frozenset[str]:
    return frozenset(item.strip() for item in models.split(",") if item.strip())


def _read_key_file(path: str, engine: str) -> SecretStr:
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"engine {engine}: cannot read the API key file {path}") from exc
    if not key:
        raise ValueError(f"engine {engine}: the API key file {path} is empty")
    return SecretStr(key)


def _key(engine: str, *, file: str | None, env: str | None) -> SecretStr | None:
    if file:
        return _read_key_file(file, engine)
    if env and os.environ.get(env):
        return SecretStr(os.environ[env])
    return None


def _region(region: str | None, engine: str) -> str:
    found = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not found:
        raise ValueError(f"engine {engine}: set its region (--bedrock-region or AWS_REGION)")
    return found


def _read_file(path: str) -> Any:
    """The parsed content of a YAML (``.yaml``/``.yml``) or JSON engines file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read the engines file {path}") from exc
    if not path.endswith((".yaml", ".yml")):
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError(f"the engines file {path} is not valid JSON") from None
    try:
        import yaml  # PyYAML: only needed for YAML engines files
    except ImportError as exc:
        raise ValueError("a YAML engines file needs PyYAML; use JSON or install it") from exc
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError:
        raise ValueError(f"the engines file {path} is not valid YAML") from None


def load_engines_file(path: str) -> tuple[str | None, list[EngineConfig]]:
    """The default engine and the engines of an engines file (YAML or JSON).

    Raises:
        ValueError: The file cannot be read or is not a valid engines file.
    """
    raw = _read_file(path)
    if not isinstance(raw, dict):
        raise ValueError(f"the engines file {path} must hold an object")
    engines = raw.get("engines") if isinstance(raw.get("engines"), dict) else {}
    for name, item in engines.items():
        if isinstance(item, dict) and "api_key" in item:
            raise ValueError(
                f"engine {name}: the engines file holds no keys; "
                "name them with api_key_env or api_key_file"
            )
    try:
        parsed = _EnginesFile.model_validate(raw)
    except ValidationError as exc:
        # Only locations and messages: a mistyped file must not echo values.
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ValueError(f"invalid engines file {path}: {problems}") from None
    configs = []
    for name, item in parsed.engines.items():
        window = None
        if item.context_window is not None:
            window = ContextWindow(item.context_window.messages, item.context_window.tokens)
        configs.append(
            EngineConfig(
                name=name,
                kind=item.type,
                model=item.model,
                allowed_models=frozenset(item.allowed_models),
                base_url=item.base_url,
                api_key=_key(name, file=item.api_key_file, env=item.api_key_env),
                region=_region(item.region, name) if item.type == "bedrock" else None,
                endpoint_url=item.endpoint_url,
                profile=item.profile,
                timeout_seconds=item.timeout_seconds or 120.0,
                max_retries=2 if item.max_retries is None else item.max_retries,
                max_tokens=item.max_tokens,
                temperature=item.temperature,
                system_prompt=item.system_prompt,
                window=window,
                stream=item.stream,
                max_tokens_field=item.max_tokens_field,
            )
        )
    return parsed.default, configs


def _flag_engines(settings: Settings, default: str, taken: set[str]) -> list[EngineConfig]:
    shared: dict[str, Any] = {
        "allowed_models": _split(settings.allowed_models),
        "timeout_seconds": settings.engine_timeout_seconds,
        "max_retries": settings.engine_max_retries,
        "max_tokens": settings.max_tokens,
        "temperature": settings.temperature,
        "system_prompt": settings.system_prompt,
    }
    configs = []
    wants_openai = any(
        (settings.openai_base_url, settings.openai_api_key, settings.openai_api_key_file)
    )
    if "openai" not in taken and (wants_openai or default == "openai"):
        if not settings.model:
            raise ValueError("the openai engine needs a model: set --model")
        key = settings.openai_api_key
        if key is None:
            key = _key("openai", file=settings.openai_api_key_file, env="OPENAI_API_KEY")
        configs.append(
            EngineConfig(
                name="openai",
                kind="openai",
                model=settings.model,
                base_url=settings.openai_base_url,
                api_key=key,
                **shared,
            )
        )
    wants_bedrock = any(
        (settings.bedrock_region, settings.bedrock_endpoint, settings.bedrock_model)
    )
    if "bedrock" not in taken and (wants_bedrock or default == "bedrock"):
        model = settings.bedrock_model or settings.model
        if not model:
            raise ValueError("the bedrock engine needs a model: set --bedrock-model or --model")
        configs.append(
            EngineConfig(
                name="bedrock",
                kind="bedrock",
                model=model,
                region=_region(settings.bedrock_region, "bedrock"),
                endpoint_url=settings.bedrock_endpoint,
                **shared,
            )
        )
    return configs


def engine_configs(settings: Settings) -> tuple[str, list[EngineConfig]]:
    """The default engine's name and every configured model engine.

    Raises:
        ValueError: A configuration problem (the message names no secret).
    """
    file_default, configs = (
        load_engines_file(settings.engines_file) if settings.engines_file else (None, [])
    )
    default = settings.engine or file_default or settings.default_engine
    configs += _flag_engines(settings, default, {c.name for c in configs})
    return default, configs


def create_engine(config: EngineConfig) -> Engine:
    """The engine of a configuration (imports the provider's library only when used)."""
    if config.kind == "openai":
        from sessiond.server.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(config)
    from sessiond.server.engines.bedrock_engine import BedrockEngine

    return BedrockEngine(config)


def build_registry(settings: Settings, engines: list[Engine] | None = None) -> EngineRegistry:
    """The server's engines: ``engines`` (default: ``echo``) plus the configured ones.

    An injected engine wins over a configured one of the same name (tests).

    Raises:
        ValueError: A configuration problem, or the default engine is not configured.
    """
    default, configs = engine_configs(settings)
    chosen: list[Engine] = list(engines or [EchoEngine()])
    names = {engine.name for engine in chosen}
    if any(config.name == "client" for config in configs):
        raise ValueError("'client' is the caller's runtime; choose another engine name")
    chosen += [create_engine(config) for config in configs if config.name not in names]
    loop = LoopSettings(
        max_tool_rounds=settings.max_tool_rounds,
        tool_result_timeout_seconds=settings.tool_result_timeout_seconds,
        window=ContextWindow(settings.context_window_messages, settings.context_window_tokens),
        complete_on_disconnect=settings.on_disconnect == "complete",
    )
    return EngineRegistry(chosen, default=default, loop=loop)
