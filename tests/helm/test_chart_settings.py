"""The chart cannot drift from the server: what it sets is what ``sessiond serve`` reads.

Every ``SESSIOND_*`` variable and ``--flag`` the chart renders (for every ci
values file) must be a field of the server's ``Settings``, and the rendered
environment and arguments, parsed by the real command line and settings
code, must give valid settings that agree with the pod's ports. The value
schema's bounds and choices must be the settings' own.
"""

from __future__ import annotations

import os
import re
import typing
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import annotated_types
import grpc
import pytest
from prometheus_client import CollectorRegistry, start_http_server
from pydantic import SecretStr

from sessiond.client.cli import build_parser
from sessiond.server.engines.config import build_registry
from sessiond.server.ops.settings import DEVELOPMENT_TOKEN_SECRET, Settings, from_arguments
from support.helm import (
    CHART,
    CI_VALUES,
    load_values,
    render,
    server_container,
    server_deployment,
    server_environment,
    values_ids,
)

CI = {path.stem: path for path in CI_VALUES}
ENV_NAMES = {f"SESSIOND_{name.upper()}": name for name in Settings.model_fields}
SERVE_FLAGS = {"--" + name.replace("_", "-") for name in Settings.model_fields}
POD_NAME = "rel-sessiond-7d9c8b6f5-x2k4p"

#: values path -> the setting it feeds.
VALUE_SETTINGS = {
    ("store", "leaseTtlSeconds"): "lease_ttl_seconds",
    ("store", "healthCheckIntervalSeconds"): "health_check_interval_seconds",
    ("store", "indexSegmentCapacity"): "index_segment_capacity",
    ("server", "tenant"): "tenant",
    ("server", "logLevel"): "log_level",
    ("server", "logFormat"): "log_format",
    ("server", "shutdownDrainSeconds"): "shutdown_drain_seconds",
    ("server", "shutdownGraceSeconds"): "shutdown_grace_seconds",
    ("server", "maxMessageBytes"): "max_message_bytes",
    ("server", "maxReceiveBytes"): "max_receive_bytes",
    ("server", "maxConcurrentRpcs"): "max_concurrent_rpcs",
    ("engines", "default"): "default_engine",
    ("engines", "model"): "model",
    ("engines", "openai", "baseUrl"): "openai_base_url",
    ("engines", "bedrock", "region"): "bedrock_region",
    ("engines", "bedrock", "endpoint"): "bedrock_endpoint",
    ("engines", "bedrock", "model"): "bedrock_model",
    ("engines", "maxTokens"): "max_tokens",
    ("engines", "temperature"): "temperature",
    ("engines", "systemPrompt"): "system_prompt",
    ("engines", "timeoutSeconds"): "engine_timeout_seconds",
    ("engines", "maxRetries"): "engine_max_retries",
    ("engines", "contextWindow", "messages"): "context_window_messages",
    ("engines", "contextWindow", "tokens"): "context_window_tokens",
    ("engines", "maxToolRounds"): "max_tool_rounds",
    ("engines", "toolResultTimeoutSeconds"): "tool_result_timeout_seconds",
    ("engines", "onDisconnect"): "on_disconnect",
    ("tls", "reloadSeconds"): "tls_reload_seconds",
    ("auth", "reloadSeconds"): "auth_reload_seconds",
    ("auth", "exemptHealth"): "auth_exempt_health",
    ("auth", "exemptReflection"): "auth_exempt_reflection",
    ("auth", "jwt", "audience"): "auth_jwt_audience",
    ("auth", "jwt", "issuer"): "auth_jwt_issuer",
    ("auth", "jwt", "tenantClaim"): "auth_jwt_tenant_claim",
    ("auth", "jwt", "algorithms"): "auth_jwt_algorithms",
    ("auth", "jwt", "leewaySeconds"): "auth_jwt_leeway_seconds",
}


def set_value(values: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Sets ``values[path[0]][path[1]]... = value``, making the dicts on the way."""
    for key in path[:-1]:
        values = values.setdefault(key, {})
    values[path[-1]] = value


def served_settings(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The settings ``sessiond serve`` would run with in the rendered pod."""
    container = server_container(docs)
    assert "command" not in container, "the image's ENTRYPOINT (sessiond) must run"
    args = container["args"]
    assert args[0] == "serve"
    flags = [arg for arg in args[1:] if arg.startswith("--")]
    assert set(flags) <= SERVE_FLAGS, f"flags the server lacks: {set(flags) - SERVE_FLAGS}"
    for name in list(os.environ):
        if name.startswith("SESSIOND_"):
            monkeypatch.delenv(name)
    for name, value in server_environment(docs).items():
        if isinstance(value, dict):  # a reference, resolved by Kubernetes
            if "fieldRef" in value:
                assert value["fieldRef"]["fieldPath"] == "metadata.name"
                value = POD_NAME
            else:
                ref = value["secretKeyRef"]
                value = f"secret:{ref['name']}/{ref['key']}"
        monkeypatch.setenv(name, value)
    return from_arguments(build_parser().parse_args(args))


def assert_bindable(settings: Settings) -> None:
    """The listen addresses work the way the server uses them (on port 0 here)."""
    host = settings.listen.rpartition(":")[0]
    server = grpc.server(ThreadPoolExecutor(max_workers=1))
    try:
        assert server.add_insecure_port(f"{host}:0") > 0  # as app.Server.start binds it
        if settings.health_listen:  # the plaintext health-only server, the same way
            health_host = settings.health_listen.rpartition(":")[0]
            assert server.add_insecure_port(f"{health_host}:0") > 0
    finally:
        server.stop(None)
    if settings.metrics_listen:  # as main.serve starts the metrics endpoint
        metrics_host = settings.metrics_listen.rpartition(":")[0]
        httpd, thread = start_http_server(0, addr=metrics_host, registry=CollectorRegistry())
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.mark.parametrize("name", values_ids())
def test_chart_sets_only_settings_the_server_reads(newest, name: str) -> None:
    environment = server_environment(newest[name])
    ours = {key for key in environment if key.startswith("SESSIOND_")}
    assert ours, "the chart configures nothing?"
    assert ours <= set(ENV_NAMES), f"variables the server does not read: {ours - set(ENV_NAMES)}"


@pytest.mark.parametrize("name", values_ids())
def test_rendered_settings_load_and_match_the_pod(
    newest, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = newest[name]
    settings = served_settings(docs, monkeypatch)
    container = server_container(docs)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert settings.listen.rpartition(":")[2] == str(ports["grpc"])
    assert settings.listen.rpartition(":")[0] in {"0.0.0.0", "[::]"}  # reachable by probes
    if "metrics" in ports:
        assert settings.metrics_listen.rpartition(":")[2] == str(ports["metrics"])
    else:
        assert settings.metrics_listen == ""  # off
    if "health" in ports:  # the probes' plaintext port: TLS, or health behind tokens
        assert settings.health_listen.rpartition(":")[2] == str(ports["health"])
        assert settings.tls_cert_file or not settings.auth_exempt_health
    else:
        assert settings.health_listen == ""
    # TLS, or plaintext on the pod address by the chart's explicit choice.
    assert bool(settings.tls_cert_file) != settings.allow_insecure
    assert settings.store.startswith("s3://")
    assert settings.replica_id == POD_NAME
    assert_bindable(settings)
    secret = settings.page_token_secret.get_secret_value()
    assert secret != DEVELOPMENT_TOKEN_SECRET and secret.startswith("secret:")
    values = load_values(CI[name])
    bucket = values.get("store", {}).get("bucket") or "sessiond-dev"
    assert settings.store.removeprefix("s3://").split("/")[0] == bucket
    if values.get("store", {}).get("endpoint"):
        assert settings.s3_endpoint == values["store"]["endpoint"]


def test_every_value_reaches_its_setting(helm_path: Path, monkeypatch) -> None:
    distinct = {
        ("store", "leaseTtlSeconds"): 123.5,
        ("store", "healthCheckIntervalSeconds"): 7.25,
        ("store", "indexSegmentCapacity"): 1000,
        ("server", "tenant"): "tenant-9",
        ("server", "logLevel"): "ERROR",
        ("server", "logFormat"): "text",
        ("server", "shutdownDrainSeconds"): 11,
        ("server", "shutdownGraceSeconds"): 22.5,
        ("server", "maxMessageBytes"): 4096,
        ("server", "maxReceiveBytes"): 33554433,
        ("server", "maxConcurrentRpcs"): 77,
        ("engines", "default"): "engine-9",
        ("engines", "model"): "model-9",
        ("engines", "openai", "baseUrl"): "http://llm-9.models:8009/v1",
        ("engines", "bedrock", "region"): "ap-southeast-9",
        ("engines", "bedrock", "endpoint"): "https://bedrock-9.example",
        ("engines", "bedrock", "model"): "bedrock-model-9",
        ("engines", "maxTokens"): 999,
        ("engines", "temperature"): 1.25,
        ("engines", "systemPrompt"): "Be brief: 9 words.",
        ("engines", "timeoutSeconds"): 9.5,
        ("engines", "maxRetries"): 9,
        ("engines", "contextWindow", "messages"): 90,
        ("engines", "contextWindow", "tokens"): 9000,
        ("engines", "maxToolRounds"): 99,
        ("engines", "toolResultTimeoutSeconds"): 909.5,
        ("engines", "onDisconnect"): "complete",
        ("tls", "reloadSeconds"): 45.5,
        ("auth", "reloadSeconds"): 2.5,
        ("auth", "exemptHealth"): False,
        ("auth", "exemptReflection"): True,
        ("auth", "jwt", "audience"): "aud-9",
        ("auth", "jwt", "issuer"): "https://issuer-9.example/",
        ("auth", "jwt", "tenantClaim"): "org_9",
        ("auth", "jwt", "algorithms"): "ES256, EdDSA",
        ("auth", "jwt", "leewaySeconds"): 12.5,
    }
    assert set(distinct) == set(VALUE_SETTINGS)
    values: dict[str, Any] = {
        "store": {"bucket": "bkt", "prefix": "/a/b/", "region": "eu-north-1"},
        "server": {"grpcPort": 6000, "listenHost": "[::]", "healthPort": 6002},
        "metrics": {"port": 6001},
        "tls": {"enabled": True, "existingSecret": "tls-9", "mountPath": "/tls9/"},
        "auth": {
            "enabled": True,
            "existingSecret": "auth-9",
            "mountPath": "/auth9",
            "tokensFileKey": "tokens.txt",
            "jwt": {"keyFileKey": "key.pem", "jwksFileKey": "keys.json", "secretFileKey": "hs"},
        },
    }
    for path, value in distinct.items():
        set_value(values, path, value)
    settings = served_settings(render(values=values), monkeypatch)
    for path, setting in VALUE_SETTINGS.items():
        assert getattr(settings, setting) == distinct[path], setting
    assert settings.store == "s3://bkt/a/b"
    assert settings.s3_region == "eu-north-1" and settings.s3_endpoint is None
    assert (settings.listen, settings.metrics_listen) == ("[::]:6000", ":::6001")
    assert settings.health_listen == "[::]:6002"
    # The files the server reads are the mounted Secrets' keys.
    assert (settings.tls_cert_file, settings.tls_key_file) == ("/tls9/tls.crt", "/tls9/tls.key")
    assert settings.tls_client_ca_file is None and settings.allow_insecure is False
    assert settings.auth_tokens_file == "/auth9/tokens.txt"
    assert settings.auth_jwt_key_file == "/auth9/key.pem"
    assert settings.auth_jwks_file == "/auth9/keys.json"
    assert settings.auth_jwt_secret_file == "/auth9/hs"
    assert_bindable(settings)


def test_security_defaults_and_mutual_tls_reach_the_server(helm_path: Path, monkeypatch) -> None:
    plain = served_settings(render(values={"store": {"bucket": "bkt"}}), monkeypatch)
    # Plaintext on a pod address is the chart's explicit choice (tls.enabled=false).
    assert plain.allow_insecure is True and plain.tls_cert_file is None
    assert plain.health_listen == "" and plain.auth_tokens_file is None
    for name in ("auth_jwt_key_file", "auth_jwks_file", "auth_jwt_secret_file"):
        assert getattr(plain, name) is None
    mutual = {
        "store": {"bucket": "bkt"},
        "tls": {
            "enabled": True,
            "existingSecret": "tls",
            "clientAuth": {"enabled": True, "existingSecret": "client-ca", "caKey": "bundle.pem"},
        },
    }
    settings = served_settings(render(values=mutual), monkeypatch)
    assert settings.tls_client_ca_file == "/etc/sessiond/client-ca/bundle.pem"
    assert settings.allow_insecure is False and settings.health_listen == "0.0.0.0:8081"
    del mutual["tls"]["clientAuth"]["existingSecret"]
    settings = served_settings(render(values=mutual), monkeypatch)
    assert settings.tls_client_ca_file == "/etc/sessiond/tls/bundle.pem"


def test_schema_bounds_are_the_settings_bounds(schema) -> None:
    bound_names = {
        annotated_types.Gt: ("gt", "exclusiveMinimum"),
        annotated_types.Ge: ("ge", "minimum"),
        annotated_types.Lt: ("lt", "exclusiveMaximum"),
        annotated_types.Le: ("le", "maximum"),
    }
    for path, setting in VALUE_SETTINGS.items():
        node = schema
        for key in path:
            node = node["properties"][key]
        field = Settings.model_fields[setting]
        types = set(node["type"]) if isinstance(node["type"], list) else {node["type"]}
        base = typing.get_args(field.annotation) or (field.annotation,)
        if typing.get_origin(field.annotation) is typing.Literal:
            # null in the chart means "leave the server's default"
            assert [v for v in node["enum"] if v is not None] == list(base), setting
            continue
        base = tuple(t for t in base if t is not type(None))
        # null in the chart means "leave the server's default"
        expected = {int: "integer", float: "number", str: "string", bool: "boolean"}[base[0]]
        assert expected in types, setting
        bounds = {}
        for constraint in field.metadata:
            attr, keyword = bound_names[type(constraint)]
            bounds[keyword] = getattr(constraint, attr)
        keywords = [keyword for _, keyword in bound_names.values()]
        schema_bounds = {keyword: node[keyword] for keyword in keywords if keyword in node}
        assert schema_bounds == bounds, setting


def test_secret_settings_come_only_from_secrets(newest) -> None:
    secret_settings = {
        f"SESSIOND_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if field.annotation is SecretStr
    }
    assert "SESSIOND_PAGE_TOKEN_SECRET" in secret_settings
    for docs in newest.values():
        environment = server_environment(docs)
        for name in secret_settings & set(environment):
            assert isinstance(environment[name], dict), f"{name} is inlined"
            assert "secretKeyRef" in environment[name]


def test_image_defaults_are_server_settings_and_chart_ports(newest) -> None:
    dockerfile = (CHART.parents[1] / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    image_env = dict(re.findall(r"\b(SESSIOND_[A-Z_]+)=(\S+)", final_stage))
    assert set(image_env) <= set(ENV_NAMES)
    exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", final_stage, re.M).group(1).split()}
    default = server_container(newest["default-values"])
    assert exposed == {port["containerPort"] for port in default["ports"]}
    assert image_env["SESSIOND_LISTEN"].endswith(":50051")
    assert image_env["SESSIOND_METRICS_LISTEN"].endswith(":9464")


def test_engines_reach_the_server_and_build(helm_path: Path, monkeypatch, tmp_path: Path) -> None:
    """The engines scenario: every setting arrives, and the server builds those engines."""
    docs = render([CI["engines-values"]])
    settings = served_settings(docs, monkeypatch)
    assert settings.default_engine == "openai" and settings.on_disconnect == "complete"
    assert settings.allowed_models == (
        "Qwen/Qwen2.5-7B-Instruct,mistralai/Mistral-7B-Instruct-v0.3"
    )
    # The key and the engines file are the mounted Secret's and ConfigMap's keys.
    assert settings.openai_api_key is None
    assert settings.openai_api_key_file == "/etc/sessiond/openai/token"
    assert settings.engines_file == "/etc/sessiond/engines/engines.yaml"
    mounts = {m["name"]: m for m in server_container(docs)["volumeMounts"]}
    volumes = {v["name"]: v for v in server_deployment(docs)["spec"]["template"]["spec"]["volumes"]}
    assert mounts["openai-api-key"]["readOnly"] is True
    assert volumes["openai-api-key"]["secret"]["secretName"] == "vllm-api-key"
    assert volumes["openai-api-key"]["secret"]["items"] == [{"key": "token", "path": "token"}]
    assert mounts["engines-file"]["readOnly"] is True
    assert volumes["engines-file"]["configMap"]["name"] == "sessiond-engines"
    # The engines file's engines read their keys from the mounted key Secrets.
    key_dir = mounts["engine-keys-0"]["mountPath"]
    assert key_dir == "/etc/sessiond/engine-keys/openai-keys"
    assert volumes["engine-keys-0"]["secret"]["secretName"] == "openai-keys"
    # With those files where the pod has them (here under tmp_path), the server
    # builds the engines.
    pod_files = tmp_path / "pod"
    key_file = pod_files / "etc/sessiond/openai/token"
    gpt_key = pod_files / key_dir.lstrip("/") / "gpt"
    engines_file = pod_files / "etc/sessiond/engines/engines.yaml"
    for path, text in ((key_file, "vllm-token\n"), (gpt_key, "gpt-token\n")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    engines_file.parent.mkdir(parents=True)
    engines_file.write_text(
        "engines:\n"
        "  haiku:\n    type: bedrock\n    region: us-east-1\n"
        "    model: anthropic.claude-3-haiku-20240307-v1:0\n"
        f"  gpt:\n    type: openai\n    model: gpt-4o-mini\n    api_key_file: {gpt_key}\n"
    )
    local = settings.model_copy(
        update={"openai_api_key_file": str(key_file), "engines_file": str(engines_file)}
    )
    registry = build_registry(local)
    assert {"echo", "openai", "bedrock", "haiku", "gpt"} <= set(registry.names)
    assert registry.loop.complete_on_disconnect is True
    assert registry.loop.max_tool_rounds == 8 and registry.loop.tool_result_timeout_seconds == 120


def test_bedrock_engines_reach_the_server_and_build(
    helm_path: Path, monkeypatch, tmp_path: Path
) -> None:
    """Bedrock through IRSA, engines file from a Secret, falsy values still set."""
    docs = render([CI["engines-bedrock-values"]])
    settings = served_settings(docs, monkeypatch)
    assert settings.default_engine == "bedrock" and settings.on_disconnect == "error"
    # A comma-separated string arrives as the server reads it.
    assert settings.allowed_models == (
        "anthropic.claude-3-haiku-20240307-v1:0,amazon.nova-pro-v1:0"
    )
    assert settings.bedrock_region is None  # AWS_REGION, from the IRSA webhook
    assert settings.bedrock_endpoint.endswith(".bedrock-runtime.us-east-1.vpce.amazonaws.com")
    assert settings.bedrock_model == "anthropic.claude-3-5-sonnet-20240620-v1:0"
    assert settings.openai_base_url is None and settings.openai_api_key_file is None
    # 0 is a value, not "unset": no retries, temperature 0, the whole history.
    assert settings.engine_max_retries == 0 and settings.temperature == 0.0
    assert settings.context_window_messages == 0
    assert settings.engines_file == "/etc/sessiond/engines-file/engines.json"
    environment = server_environment(docs)
    assert environment["SESSIOND_ENGINE_MAX_RETRIES"] == "0"
    assert environment["SESSIOND_TEMPERATURE"] == "0"
    # Unset values are left to the server.
    for name in ("SESSIOND_ENGINE_TIMEOUT_SECONDS", "SESSIOND_MAX_TOOL_ROUNDS", "SESSIOND_MODEL"):
        assert name not in environment, name
    engines_file = tmp_path / "engines.json"
    engines_file.write_text(
        '{"engines": {"nova": {"type": "bedrock", "model": "amazon.nova-lite-v1:0"}}}'
    )
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    registry = build_registry(settings.model_copy(update={"engines_file": str(engines_file)}))
    assert {"echo", "bedrock", "nova"} <= set(registry.names)
    assert registry.default == "bedrock"
    assert registry.loop.complete_on_disconnect is False


def test_allowed_models_as_a_list_or_a_string(helm_path: Path, monkeypatch) -> None:
    def allowed(models: Any) -> str:
        values = {"store": {"bucket": "bkt"}, "engines": {"allowedModels": models}}
        return served_settings(render(values=values), monkeypatch).allowed_models

    expected = "gpt-4o,gpt-4o-mini,o3"
    assert allowed(["gpt-4o", "gpt-4o-mini", "o3"]) == expected
    assert allowed("gpt-4o,gpt-4o-mini,o3") == expected
    assert allowed(" gpt-4o , gpt-4o-mini,o3 ") == expected
    assert allowed([]) == allowed("") == ""


def test_default_values_leave_the_engines_to_the_server(helm_path: Path, monkeypatch) -> None:
    docs = render(values={"store": {"bucket": "bkt"}})
    settings = served_settings(docs, monkeypatch)
    defaults = Settings()
    for name in ("model", "openai_base_url", "openai_api_key_file", "bedrock_region"):
        assert getattr(settings, name) is None, name
    assert settings.engines_file is None and settings.allowed_models == ""
    engine_settings = (
        "engine_timeout_seconds",
        "engine_max_retries",
        "context_window_messages",
        "context_window_tokens",
        "max_tool_rounds",
        "tool_result_timeout_seconds",
        "on_disconnect",
        "max_tokens",
        "temperature",
        "system_prompt",
    )
    for name in engine_settings:
        assert getattr(settings, name) == getattr(defaults, name), name
    # Not even rendered: an unset value is the server's default, whatever it becomes.
    environment = server_environment(docs)
    engine_variables = {f"SESSIOND_{name.upper()}" for name in engine_settings}
    assert not engine_variables & set(environment)
    assert environment["SESSIOND_DEFAULT_ENGINE"] == "echo"
