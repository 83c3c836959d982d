"""Engine configuration: flags, environment, the engines file, secrets, and the CLI example."""

from __future__ import annotations

import json

import pytest
from fake_models import text

from sessiond.client.cli import build_parser
from sessiond.server.domain.context_window import ContextWindow
from sessiond.server.engines.config import build_registry, engine_configs
from sessiond.server.ops.settings import Settings, from_arguments


def settings(**values) -> Settings:
    return Settings(**values)


def test_the_ollama_example_parses_into_an_openai_default_engine() -> None:
    args = build_parser().parse_args(
        [
            "serve",
            "--engine",
            "openai",
            "--openai-base-url",
            "http://localhost:11434/v1",
            "--model",
            "llama3.2",
        ]
    )
    registry = build_registry(from_arguments(args))
    assert registry.default == "openai"
    assert registry.names == ["echo", "openai"]
    engine = registry.get("")
    assert engine.model == "llama3.2"
    assert str(engine._client.base_url) == "http://localhost:11434/v1/"
    assert engine._client.api_key == "sessiond-no-key"  # Ollama needs none


async def test_the_ollama_example_talks_to_a_local_endpoint(serve, fake_openai) -> None:
    args = build_parser().parse_args(
        ["serve", "--engine", "openai", "--openai-base-url", fake_openai.url, "--model", "llama3.2"]
    )
    chosen = from_arguments(args).model_dump(exclude_unset=True)
    chosen.pop("listen", None)
    served = await serve(**chosen)
    await served.client.start("ollama")
    fake_openai.queue(text("Hi from llama."))
    assert (await served.client.chat("ollama", "hi")).text == "Hi from llama."
    assert fake_openai.bodies[0]["model"] == "llama3.2"
    assert fake_openai.requests[0].headers["authorization"] == "Bearer sessiond-no-key"


def test_environment_variables_and_key_sources(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SESSIOND_ENGINE", "openai")
    monkeypatch.setenv("SESSIOND_MODEL", "gpt-4o-mini")
    monkeypatch.setenv("SESSIOND_ALLOWED_MODELS", "gpt-4o, o3-mini")
    monkeypatch.setenv("SESSIOND_CONTEXT_WINDOW_MESSAGES", "40")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    default, configs = engine_configs(Settings())
    assert default == "openai"
    (config,) = configs
    assert config.api_key.get_secret_value() == "sk-from-env"
    assert config.allowed_models == {"gpt-4o", "o3-mini"}
    key_file = tmp_path / "key"
    key_file.write_text("sk-from-file\n")
    monkeypatch.setenv("SESSIOND_OPENAI_API_KEY_FILE", str(key_file))
    (config,) = engine_configs(Settings())[1]
    assert config.api_key.get_secret_value() == "sk-from-file"
    registry = build_registry(Settings())
    assert registry.loop.window == ContextWindow(max_messages=40)


def test_redacted_settings_hide_the_key() -> None:
    chosen = settings(openai_api_key="sk-very-secret", model="m", openai_base_url="http://x/v1")
    assert "sk-very-secret" not in json.dumps(chosen.redacted(), default=str)
    assert chosen.redacted()["openai_api_key"] == "***"
    assert "sk-very-secret" not in repr(chosen)
    embedded = settings(openai_base_url="https://user:pa55@proxy:8443/v1", model="m")
    assert embedded.redacted()["openai_base_url"] == "https://***@proxy:8443/v1"


def test_engines_file(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("LOCAL_KEY", "sk-local")
    (tmp_path / "key").write_text("sk-file")
    path = tmp_path / "engines.json"
    path.write_text(
        json.dumps(
            {
                "default": "local",
                "engines": {
                    "local": {
                        "type": "openai",
                        "base_url": "http://localhost:8000/v1",
                        "model": "qwen",
                        "allowed_models": ["llama"],
                        "api_key_env": "LOCAL_KEY",
                        "context_window": {"messages": 10, "tokens": 2000},
                        "timeout_seconds": 30,
                    },
                    "cloud": {
                        "type": "openai",
                        "model": "gpt",
                        "api_key_file": str(tmp_path / "key"),
                    },
                    "claude": {"type": "bedrock", "region": "us-west-2", "model": "anthropic.x"},
                },
            }
        )
    )
    default, configs = engine_configs(settings(engines_file=str(path)))
    by_name = {c.name: c for c in configs}
    assert default == "local" and set(by_name) == {"local", "cloud", "claude"}
    assert by_name["local"].api_key.get_secret_value() == "sk-local"
    assert by_name["local"].window == ContextWindow(10, 2000)
    assert by_name["cloud"].api_key.get_secret_value() == "sk-file"
    assert by_name["claude"].region == "us-west-2"
    registry = build_registry(settings(engines_file=str(path), engine="claude"))
    assert registry.default == "claude"
    assert registry.names == ["claude", "cloud", "echo", "local"]


@pytest.mark.parametrize(
    ("engines", "problem"),
    [
        ({"x": {"type": "openai", "model": "m", "api_key": "sk-inline"}}, "api_key"),
        ({"x": {"type": "gemini", "model": "m"}}, "type"),
        ({"x": {"type": "openai"}}, "model"),
        ({"x": {"type": "openai", "model": "m", "api_key_file": "/nonexistent/key"}}, "key file"),
        ({"x": {"type": "bedrock", "model": "m"}}, "region"),
        ({"client": {"type": "openai", "model": "m"}}, "client"),
    ],
)
def test_bad_engines_files_are_refused_without_echoing_values(tmp_path, engines, problem) -> None:
    path = tmp_path / "engines.json"
    path.write_text(json.dumps({"engines": engines}))
    with pytest.raises(ValueError, match=problem) as caught:
        build_registry(settings(engines_file=str(path)))
    assert "sk-inline" not in str(caught.value)


def test_flag_engines_need_a_model_and_a_configured_default() -> None:
    with pytest.raises(ValueError, match="--model"):
        build_registry(settings(openai_base_url="http://x/v1"))
    with pytest.raises(ValueError, match="region"):
        build_registry(settings(engine="bedrock", model="m"))
    with pytest.raises(ValueError, match="not configured"):
        build_registry(settings(engine="nope"))
    assert build_registry(settings()).names == ["echo"]


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("e.yaml", "engines: [unclosed", "not valid YAML"),
        ("e.json", "{nope", "not valid JSON"),
        ("e.json", "[1, 2]", "must hold an object"),
        ("e.yaml", "engines:\n  x: {type: openai, model: m, api_key: sk-inline}", "no keys"),
    ],
)
def test_unreadable_engines_files(tmp_path, name, content, problem) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ValueError, match=problem) as caught:
        engine_configs(settings(engines_file=str(path)))
    assert "sk-inline" not in str(caught.value)
