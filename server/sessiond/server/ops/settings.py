"""The server's settings: one typed object from flags and ``SESSIOND_*`` variables.

Precedence: command-line flag, then environment variable, then default.
Validated once at start; ``redacted()`` is what gets logged.
"""

from __future__ import annotations

import argparse
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sessiond.server.ops.security_checks import check_security

#: Used only when no secret is configured; fine for one developer, not for production.
DEVELOPMENT_TOKEN_SECRET = "sessiond-development-page-token-secret"


class Settings(BaseSettings):
    """Every setting of ``sessiond serve``.

    Each field is also the environment variable ``SESSIOND_<NAME>`` and the flag
    ``--<name-with-dashes>``.
    """

    # hide_input_in_errors: a validation error must not print the inputs, which
    # include secrets (a model-level error would show all of them).
    model_config = SettingsConfigDict(
        env_prefix="SESSIOND_", extra="forbid", hide_input_in_errors=True
    )

    listen: str = Field("127.0.0.1:50051", description="gRPC listen address host:port")
    store: str = Field(
        ".sessiond-data",
        description="where sessions live: a directory, file:///dir, s3://bucket/prefix, memory://",
    )
    s3_endpoint: str | None = Field(None, description="S3 endpoint URL (MinIO, moto, ...)")
    s3_region: str | None = Field(None, description="S3 region")
    tenant: str = Field("default", description="the tenant of every caller while auth is off")
    tenant_prefix: str = Field(
        "tenants/{tenant}/",
        description="where a tenant's sessions live under the store's root; '' serves a"
        " prefix of Strands sessions as it is (one tenant: authentication off)",
    )
    lease_ttl_seconds: float = Field(30.0, gt=0.5, le=3600, description="lease duration")
    default_engine: str = Field("echo", description="engine for Chat/Resume when none is named")
    metrics_listen: str = Field(
        "127.0.0.1:9464", description="Prometheus metrics host:port; empty disables"
    )
    shutdown_grace_seconds: float = Field(
        10.0, ge=0, le=600, description="how long in-flight calls may finish on SIGTERM"
    )
    shutdown_drain_seconds: float = Field(
        0.0,
        ge=0,
        le=120,
        description="on SIGTERM, report NOT_SERVING this long before refusing new calls",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="least severe log level written"
    )
    log_format: Literal["json", "text"] = Field(
        "json", description="log lines as JSON objects (json) or readable text (text)"
    )
    replica_id: str | None = Field(None, description="this process's lease holder id")
    max_message_bytes: int = Field(1024 * 1024, ge=1024, description="largest stored message")
    max_receive_bytes: int = Field(
        32 * 1024 * 1024, ge=1024 * 1024, description="largest gRPC request message"
    )
    max_concurrent_rpcs: int | None = Field(
        None,
        ge=1,
        description="concurrent SessionService calls (and, separately, streams) before"
        " RESOURCE_EXHAUSTED; health checks are exempt",
    )
    page_token_secret: SecretStr = Field(
        SecretStr(DEVELOPMENT_TOKEN_SECRET), description="HMAC key of page tokens"
    )
    discovery_interval_seconds: float = Field(
        300.0,
        ge=1,
        description="how often List looks for sessions written by Strands alone",
    )
    adopt_on_claim: bool = Field(
        False,
        description="look for messages a Strands writer appended at every turn's claim (one GET"
        " beside the claim), so the restored context has them; off: they are found and adopted"
        " at the turn's first commit at no extra cost",
    )
    index_segment_capacity: int = Field(
        256, ge=2, le=4096, description="sessions per listing index segment (tuning)"
    )
    health_check_interval_seconds: float = Field(
        10.0, gt=0, description="how often readiness re-checks the store"
    )

    # -- server-side engines (docs/engines.md) ------------------------------------------
    engine: str | None = Field(
        None, description="the default engine, e.g. openai or bedrock (wins over default_engine)"
    )
    model: str | None = Field(
        None, description="model of the engines configured by flags (openai, and bedrock)"
    )
    allowed_models: str = Field(
        "", description="comma-separated models a request may pick instead of --model"
    )
    openai_base_url: str | None = Field(
        None,
        description="OpenAI-compatible endpoint (e.g. http://localhost:11434/v1 for Ollama); "
        "configures the openai engine",
    )
    openai_api_key: SecretStr | None = Field(
        None, description="API key of the openai engine (default $OPENAI_API_KEY; Ollama: none)"
    )
    openai_api_key_file: str | None = Field(
        None, description="file holding the openai engine's API key (a mounted secret)"
    )
    bedrock_region: str | None = Field(
        None, description="AWS region of the bedrock engine (configures it)"
    )
    bedrock_endpoint: str | None = Field(None, description="Bedrock runtime endpoint URL override")
    bedrock_model: str | None = Field(
        None, description="model id of the bedrock engine (default --model; configures it)"
    )
    max_tokens: int | None = Field(None, ge=1, description="most tokens a model answer may have")
    temperature: float | None = Field(None, ge=0, le=2, description="model sampling temperature")
    system_prompt: str | None = Field(None, description="system prompt of the flag engines")
    engine_timeout_seconds: float = Field(
        120.0, gt=0, le=3600, description="how long a model may stay silent before ENGINE_TIMEOUT"
    )
    engine_max_retries: int = Field(
        2, ge=0, le=10, description="retries of a model call on rate limits and server errors"
    )
    context_window_messages: int = Field(
        0, ge=0, description="history messages sent to the model at most (0: all)"
    )
    context_window_tokens: int = Field(
        0, ge=0, description="history tokens (estimated) sent to the model at most (0: all)"
    )
    max_tool_rounds: int = Field(
        16, ge=1, le=1000, description="model responses with tool calls allowed per turn"
    )
    tool_result_timeout_seconds: float = Field(
        300.0, gt=0, le=86400, description="how long the caller may take to return tool results"
    )
    on_disconnect: Literal["error", "complete"] = Field(
        "error",
        description="what a server-engine turn does when its caller disconnects: end as ERROR"
        " (error) or finish without the caller (complete; tool calls then wait for a resuming Run)",
    )
    engines_file: str | None = Field(
        None, description="YAML or JSON file of named engines (docs/engines.md)"
    )

    # -- security: TLS and authentication (docs/security.md) ----------------------------
    tls_cert_file: str | None = Field(
        None, description="PEM certificate chain of the gRPC port; with --tls-key-file turns TLS on"
    )
    tls_key_file: str | None = Field(None, description="PEM private key of --tls-cert-file")
    tls_client_ca_file: str | None = Field(
        None,
        description="PEM CA certificates: require client certificates signed by them (mutual TLS)",
    )
    tls_reload_seconds: float = Field(
        30.0,
        ge=0,
        le=86400,
        description="how often changed TLS files are picked up by new connections (0: never)",
    )
    allow_insecure: bool = Field(
        False,
        description="serve plaintext on a non-loopback --listen address (a mesh or trusted"
        " network provides transport security); plaintext on loopback is always allowed",
    )
    health_listen: str = Field(
        "",
        description="extra plaintext host:port serving grpc.health.v1 only (kubelet probes"
        " cannot do TLS); empty: none",
    )
    auth_tokens_file: str | None = Field(
        None,
        description="bearer tokens, one 'tenant:token' (or 'tenant:sha256:<hex>') a line;"
        " turns authentication on; re-read when it changes",
    )
    auth_jwt_key_file: str | None = Field(
        None, description="PEM public key(s) verifying JWT bearer tokens (RSA, EC or Ed25519)"
    )
    auth_jwks_file: str | None = Field(
        None, description="JWKS (JSON Web Key Set) file verifying JWT bearer tokens"
    )
    auth_jwt_secret_file: str | None = Field(
        None, description="shared secret (32+ bytes) verifying HS256 JWTs; the only way to HS256"
    )
    auth_jwt_issuer: str | None = Field(None, description="required 'iss' of JWTs")
    auth_jwt_audience: str | None = Field(
        None, description="required 'aud' of JWTs (required when JWTs are accepted)"
    )
    auth_jwt_tenant_claim: str = Field("tenant", description="JWT claim naming the caller's tenant")
    auth_jwt_algorithms: str = Field(
        "RS256,ES256,EdDSA",
        description="comma-separated asymmetric JWT algorithms accepted (HS256 comes only with"
        " --auth-jwt-secret-file)",
    )
    auth_jwt_leeway_seconds: float = Field(
        30.0, ge=0, le=600, description="clock skew allowed on JWT exp / nbf / iat"
    )
    auth_reload_seconds: float = Field(
        5.0, ge=0, le=3600, description="how often changed token / key files are re-read (0: never)"
    )
    auth_exempt_health: bool = Field(
        True, description="grpc.health.v1 needs no credentials (probes, load balancers)"
    )
    auth_exempt_reflection: bool = Field(
        False, description="server reflection needs no credentials"
    )

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        check_security(self)
        return self

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("listen must be host:port")
        return value

    def redacted(self) -> dict[str, Any]:
        """The settings as logged: secrets masked."""
        values = self.model_dump()
        values["page_token_secret"] = "***" if self.page_token_secret else ""
        values["openai_api_key"] = "***" if self.openai_api_key else None
        # The TLS and auth settings are file paths: the files' contents (keys,
        # tokens, secrets) are never part of the settings, so never logged.
        for name in ("openai_base_url", "bedrock_endpoint"):
            values[name] = _without_userinfo(values[name])
        return values


def _without_userinfo(url: str | None) -> str | None:
    """A URL with any ``user:password@`` masked (an endpoint may embed credentials)."""
    if not url or "@" not in url:
        return url
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if "@" not in authority:
        return url
    return f"{scheme}{sep}***@{authority.rsplit('@', 1)[1]}{slash}{path}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds one ``--flag`` per setting (defaults left to the environment / model)."""
    for name, field in Settings.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:  # --allow-insecure alone means true
            parser.add_argument(
                flag, dest=name, default=None, nargs="?", const="true", help=field.description
            )
            continue
        parser.add_argument(flag, dest=name, default=None, help=field.description)


def from_arguments(namespace: argparse.Namespace) -> Settings:
    """Settings from parsed flags over the environment."""
    given = {
        name: value
        for name in Settings.model_fields
        if (value := getattr(namespace, name, None)) is not None
    }
    return Settings(**given)
