"""No secret ever leaves the process: not in stored objects, exports, logs or errors.

A real ``sessiond serve`` runs with every kind of secret configured — a
page-token key, a token file, JWT keys and an HS256 secret, an OpenAI API key,
a TLS key with mutual TLS — and DEBUG JSON logs. The test drives turns
(including an engine call whose upstream error body echoes the API key, and
refused calls whose tokens embed real tokens), lists with page tokens,
exports to a file and to the store, imports, and stops the process. Then it
scans every stored object (gunzipped too), the exported bundle and each of
its members, the whole log, and every error and response it received for
each secret, raw and base64-encoded.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import io
import json
import os
import secrets
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import grpc
import jwt
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sessiond.client.aio import AsyncClient
from sessiond.errors import SessiondError
from sessiond.v1 import session_service_pb2 as pb
from support.fake_openai_thread import FakeOpenAIThread
from support.processes import free_port
from support.security import AUDIENCE, ISSUER, KeyPair, Pki, write_tokens

SESSIOND = Path(sys.executable).with_name("sessiond")


def encodings(secret: str) -> set[bytes]:
    """The secret's bytes and its base64 forms (as they could hide in JSON or a header)."""
    raw = secret.encode()
    found = {raw}
    if len(raw) >= 16:
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            found.add(encode(raw).rstrip(b"="))
    return found


def leaks(blob: bytes, patterns: dict[str, set[bytes]]) -> list[str]:
    return [name for name, forms in patterns.items() if any(form in blob for form in forms)]


def expand(blob: bytes) -> list[bytes]:
    """The blob, gunzipped when it is gzip, and every member when it is a tarball."""
    found = [blob]
    try:
        unzipped = gzip.decompress(blob)
    except (OSError, EOFError):
        return found
    found.append(unzipped)
    try:
        with tarfile.open(fileobj=io.BytesIO(unzipped)) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    found.append(tar.extractfile(member).read())
    except tarfile.TarError:
        pass
    return found


def wait_serving(port: int, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                request = health_pb2.HealthCheckRequest(service="sessiond.v1.SessionService")
                response = health_pb2_grpc.HealthStub(channel).Check(request, timeout=1)
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    return
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"sessiond did not start:\n{log.read_text()[-3000:]}")


def test_no_secret_in_objects_exports_logs_or_errors(tmp_path: Path) -> None:
    pki = Pki(tmp_path / "pki")
    server_cert, client_cert = pki.issue("sessiond.test", server=True), pki.issue("agent")
    rs = KeyPair.rsa()
    hs_secret = secrets.token_hex(24)
    (tmp_path / "hs.secret").write_text(hs_secret + "\n")
    token_a, token_b = "tok-a-" + secrets.token_hex(12), "tok-b-" + secrets.token_hex(12)
    tokens = write_tokens(tmp_path / "tokens", {"tenant-a": [token_a], "tenant-b": [token_b]})
    page_secret = "pts-" + secrets.token_hex(16)
    openai_key = "sk-scan-" + secrets.token_hex(16)
    jwt_rs = rs.sign("tenant-a", lifetime=600)
    jwt_hs = jwt.encode(
        {"tenant": "tenant-b", "aud": AUDIENCE, "iss": ISSUER, "exp": int(time.time()) + 600},
        hs_secret.encode(),
        algorithm="HS256",
    )
    key_lines = [
        line
        for issued in (server_cert, client_cert)
        for line in issued.key.read_text().splitlines()
        if not line.startswith("-----") and len(line) >= 32
    ]
    patterns = {
        name: encodings(value)
        for name, value in {
            "page token secret": page_secret,
            "OpenAI key": openai_key,
            "token A": token_a,
            "token B": token_b,
            "HS256 secret": hs_secret,
            "RS256 JWT": jwt_rs,
            "HS256 JWT": jwt_hs,
            "JWT signature": jwt_rs.rsplit(".", 1)[1],
        }.items()
    }
    for number, line in enumerate(key_lines):
        patterns[f"TLS key line {number}"] = {line.encode()}

    store, port, health_port = tmp_path / "store", free_port(), free_port()
    log = tmp_path / "sessiond.log"
    flags = {
        "--listen": f"127.0.0.1:{port}",
        "--health-listen": f"127.0.0.1:{health_port}",
        "--store": str(store),
        "--metrics-listen": "",
        "--log-format": "json",
        "--log-level": "DEBUG",
        "--shutdown-grace-seconds": "2",
        "--tls-cert-file": str(server_cert.cert),
        "--tls-key-file": str(server_cert.key),
        "--tls-client-ca-file": str(pki.ca_file),
        "--auth-tokens-file": str(tokens),
        "--auth-jwt-key-file": str(rs.write_pem(tmp_path / "rs.pem")),
        "--auth-jwt-secret-file": str(tmp_path / "hs.secret"),
        "--auth-jwt-audience": AUDIENCE,
        "--auth-jwt-issuer": ISSUER,
        "--engine": "openai",
        "--model": "gpt-scan",
        "--engine-max-retries": "0",
    }
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIOND_", "OPENAI"))}
    environment["SESSIOND_PAGE_TOKEN_SECRET"] = page_secret
    with FakeOpenAIThread() as fake:
        flags["--openai-base-url"] = fake.url
        args = [str(SESSIOND), "serve", "--openai-api-key", openai_key]
        for flag, value in flags.items():
            args += [flag, value]
        with open(log, "wb") as out:
            proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=environment)
        try:
            wait_serving(health_port, proc, log)
            seen = asyncio.run(
                drive(port, pki, client_cert, fake, token_a, token_b, jwt_rs, jwt_hs, tmp_path)
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(20)
    assert code == 0, log.read_text()[-3000:]
    assert fake.authorizations and all(a == f"Bearer {openai_key}" for a in fake.authorizations)

    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    serving = next(r for r in records if r["message"] == "serving")
    assert serving["tls"] == "mutual" and serving["auth"] == ["token-file", "jwt"]
    assert serving["health_port"] == health_port
    assert any(r["message"].startswith("call refused") for r in records)
    assert any("model call failed" in r["message"] for r in records)

    # The scan: stored objects, exports, the log, every error and response.
    findings: dict[str, list[str]] = {}
    stored = [path for path in store.rglob("*") if path.is_file()]
    assert any("exports" in str(path) for path in stored)
    assert any("tenant-b" in str(path) for path in stored)
    for path in stored:
        for blob in expand(path.read_bytes()):
            if found := leaks(blob, patterns):
                findings[str(path.relative_to(store))] = found
    bundle_blobs = expand(seen["bundle"])
    assert len(bundle_blobs) > 2 and any(b"the fake model says hi" in b for b in bundle_blobs)
    for number, blob in enumerate(bundle_blobs):
        if found := leaks(blob, patterns):
            findings[f"bundle part {number}"] = found
    if found := leaks(log.read_bytes(), patterns):
        findings["log"] = found
    assert len(seen["errors"]) >= 8
    for number, text in enumerate(seen["errors"] + seen["responses"]):
        if found := leaks(text.encode(), patterns):
            findings[f"error or response {number}: {text[:80]}"] = found
    assert findings == {}


async def drive(port, pki, client_cert, fake, token_a, token_b, jwt_rs, jwt_hs, tmp_path):
    """Turns, listings, refusals, exports and imports; returns what the client saw."""
    target = f"127.0.0.1:{port}"
    errors: list[str] = []
    responses: list[str] = []

    def client(token: str) -> AsyncClient:
        return AsyncClient(
            target,
            ca_file=pki.ca_file,
            cert_file=client_cert.cert,
            key_file=client_cert.key,
            server_name="sessiond.test",
            token=token,
            retries=False,
            timeout=20,
        )

    async def expect_failure(call) -> None:
        try:
            await call
        except SessiondError as error:
            errors.append(f"{type(error).__name__} {error.message} {json.dumps(error.metadata)}")
        else:
            raise AssertionError("the call should have failed")

    a, b, rs, hs = client(token_a), client(token_b), client(jwt_rs), client(jwt_hs)
    try:
        await a.start("scan-1", title="scanned", labels={"kind": "scan"})
        responses.append(str(await a.chat("scan-1", "hello model")))
        async with a.run("scan-1", "a client turn") as turn:
            await turn.append("working")
            await turn.finish("done")
        await a.chat("scan-1", "later", checkpoint="after_prompt")
        responses.append(str(await a.resume("scan-1")))
        fake.failing = True
        await expect_failure(a.chat("scan-1", "this call fails upstream"))
        await expect_failure(a.chat("scan-1", "and again"))
        fake.failing = False
        await a.start("scan-2")
        first = await a.list(page_size=1)
        second = await a.list(page_size=1, page_token=first.next_page_token)
        responses.append(str(first) + str(second))
        responses.append(str(await rs.get("scan-1")))
        responses.append(str(await rs.all_messages("scan-1")))
        await hs.start("b-own")
        responses.append(str(await hs.list()))
        # Refusals whose presented credentials contain real secrets.
        for bad in (token_a + "x", "x" + token_b, jwt_rs[:-2] + "AA", jwt_hs + "x", token_a[:-1]):
            async with client(bad) as refused:
                await expect_failure(refused.get("scan-1"))
        await expect_failure(b.get("scan-1"))  # another tenant
        await expect_failure(b.list(page_token=first.next_page_token))
        # Exports: streamed and into the store; an import into tenant-b.
        chunks = []
        async for response in a.export(session_ids=["scan-1", "scan-2"]):
            responses.append(str(response.manifest) if response.HasField("manifest") else "")
            if response.HasField("chunk"):
                chunks.append(response.chunk)
        async for _ in a.export(destination_prefix="backup"):
            pass
        bundle = b"".join(chunks)
        responses.append(str(await b.import_bundle([bundle])))
        responses.append(str(await b.get("scan-1")))
        raw = a.stub.Get(pb.GetRequest(session_id="missing"))
        try:
            await raw
        except grpc.aio.AioRpcError as error:
            errors.append(f"{error.details()} {error.trailing_metadata()}")
    finally:
        for each in (a, b, rs, hs):
            await each.close()
    return {"errors": errors, "responses": responses, "bundle": bundle}
