"""``sessiond serve`` refuses insecure or broken security settings with exit code 2.

Plaintext on a non-loopback address needs ``--allow-insecure``; unreadable
or invalid TLS, token and key files stop the start with one clear line
(never a traceback, never a secret); an allowed but exposed setup logs
warnings.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.processes import free_port, is_serving
from support.security import Pki

SESSIOND = Path(sys.executable).with_name("sessiond")
SECRET = "pts-refusal-secret-0123456789"


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIOND_")}
    env.update(
        SESSIOND_STORE=str(tmp_path / "store"),
        SESSIOND_METRICS_LISTEN="",
        SESSIOND_PAGE_TOKEN_SECRET=SECRET,
        SESSIOND_OPENAI_API_KEY="sk-refusal-key-0123456789",
        SESSIOND_MODEL="gpt-refusal",
    )
    return env


def serve(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SESSIOND), "serve", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment(tmp_path),
    )


def assert_refused(result: subprocess.CompletedProcess[str], message: str) -> None:
    assert result.returncode == 2, result.stderr
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert "sk-refusal-key" not in result.stderr + result.stdout


def test_plaintext_on_a_network_address_is_refused(tmp_path: Path) -> None:
    result = serve(tmp_path, "--listen", f"0.0.0.0:{free_port()}")
    assert_refused(result, "refusing to serve plaintext gRPC on 0.0.0.0:")
    assert "--allow-insecure" in result.stderr and "--tls-cert-file" in result.stderr


def test_unusable_security_files_are_refused(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    cert = pki.issue("sessiond.test", server=True)
    other = pki.issue("other.test", server=True)
    listen = ["--listen", f"127.0.0.1:{free_port()}"]
    bad_tokens = tmp_path / "tokens"
    bad_tokens.write_text("tenant-a:short\n")
    cases = {
        ("--tls-cert-file", str(cert.cert), "--tls-key-file", str(tmp_path / "nope")): (
            "refusing to start: cannot read the TLS certificate"
        ),
        ("--tls-cert-file", str(cert.cert), "--tls-key-file", str(other.key)): (
            "tls_key_file is not the key of tls_cert_file"
        ),
        ("--auth-tokens-file", str(bad_tokens)): "token file line 1",
        ("--auth-jwks-file", str(tmp_path / "nope.json"), "--auth-jwt-audience", "x"): (
            "cannot read the JWKS file"
        ),
        ("--auth-jwks-file", str(bad_tokens)): "needs auth_jwt_audience",
    }
    for flags, message in cases.items():
        assert_refused(serve(tmp_path, *listen, *flags), message)


def test_allowed_plaintext_on_the_network_starts_with_warnings(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    env = environment(tmp_path) | {"SESSIOND_LOG_FORMAT": "json"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(SESSIOND), "serve", "--listen", f"0.0.0.0:{port}", "--allow-insecure"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + 30
        while not is_serving(f"127.0.0.1:{port}"):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, log.read_text()
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    warnings = [r["message"] for r in records if r["level"] == "WARNING"]
    assert any("plaintext gRPC on a network address" in w for w in warnings), warnings
    assert any("authentication is off" in w for w in warnings), warnings
    starting = next(r for r in records if r["message"] == "starting sessiond")
    assert starting["settings"]["allow_insecure"] is True
    assert SECRET not in log.read_text()


def test_an_unusable_store_is_refused_in_one_line(tmp_path: Path) -> None:
    """An unreachable S3 endpoint (or one ignoring conditional writes) stops the start cleanly."""
    result = serve(
        tmp_path,
        "--store",
        "s3://sessions/prefix",
        "--s3-endpoint",
        f"http://127.0.0.1:{free_port()}",
        "--s3-region",
        "us-east-1",
    )
    assert_refused(result, "the store s3://sessions/prefix is not usable")
