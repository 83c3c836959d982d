"""JWT bearer tokens: key files and JWKS, RS256 / ES256 / EdDSA / HS256, every refusal.

A valid token's tenant claim names the tenant (its sessions live under
``tenants/<tenant>/``). Expired, not-yet-valid, wrong audience or issuer,
another key, a tampered payload, ``alg: none`` and the HS256-with-public-key
confusion are all ``UNAUTHENTICATED``; a valid token without a usable tenant
claim is ``PERMISSION_DENIED``. JWKS changes are picked up while serving.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import ValidationError

from sessiond.errors import PermissionDenied, Unauthenticated
from sessiond.server.app import build_server
from sessiond.server.ops.files import ConfigurationError
from sessiond.server.ops.settings import Settings
from sessiond.server.storage.memory import MemoryStore
from support.recording import RecordingStore
from support.security import (
    AUDIENCE,
    ISSUER,
    TOKEN_B,
    KeyPair,
    replace_file,
    write_jwks,
    write_tokens,
)

JWT = {"auth_jwt_audience": AUDIENCE, "auth_jwt_issuer": ISSUER, "auth_reload_seconds": 0.05}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def handmade(header: dict, payload: dict, sign) -> str:
    """A token with any header, signed by ``sign(signing_input) -> bytes``."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64(sign(signing_input.encode()))}"


def claims(tenant: str = "acme", **extra) -> dict:
    now = int(time.time())
    return {"tenant": tenant, "aud": AUDIENCE, "iss": ISSUER, "exp": now + 300, **extra}


@pytest.mark.parametrize("make_key", [KeyPair.rsa, KeyPair.ec, KeyPair.ed25519])
async def test_a_pem_key_file_verifies_tokens_and_names_the_tenant(
    serve, tmp_path: Path, clients, make_key
) -> None:
    key = make_key()
    store = RecordingStore(MemoryStore())
    served = await serve(store=store, auth_jwt_key_file=str(key.write_pem(tmp_path / "k")), **JWT)
    client = clients(served.target, token=key.sign("acme"))
    await client.start("s1")
    assert [s.session_id for s in (await client.list()).sessions] == ["s1"]
    assert store.outside("tenants/acme/") == []
    other = clients(served.target, token=key.sign("globex"))
    assert list((await other.list()).sessions) == []


async def test_a_jwks_file_with_several_keys_and_kids(serve, tmp_path: Path, clients) -> None:
    rs, es = KeyPair.rsa(), KeyPair.ec()
    jwks = write_jwks(tmp_path / "jwks.json", [(rs, "rsa-1"), (es, "ec-1")])
    served = await serve(auth_jwks_file=str(jwks), **JWT)
    for key, kid in [(rs, "rsa-1"), (es, "ec-1"), (es, None)]:
        await clients(served.target, token=key.sign("acme", kid=kid)).list()
    with pytest.raises(Unauthenticated) as caught:  # the kid names a key of another type
        await clients(served.target, token=rs.sign("acme", kid="ec-1")).list()
    assert caught.value.metadata["problem"] == "unknown_key"
    with pytest.raises(Unauthenticated) as caught:  # the right kid, another key
        await clients(served.target, token=KeyPair.rsa().sign("acme", kid="rsa-1")).list()
    assert caught.value.metadata["problem"] == "signature"
    with pytest.raises(Unauthenticated) as caught:
        await clients(served.target, token=rs.sign("acme", kid="unknown")).list()
    assert caught.value.metadata["problem"] == "unknown_key"


async def test_every_kind_of_bad_token_is_refused(serve, tmp_path: Path, clients) -> None:
    key, stranger = KeyPair.rsa(), KeyPair.rsa()
    secret = b"s" * 40
    (tmp_path / "secret").write_bytes(secret)
    served = await serve(
        auth_jwt_key_file=str(key.write_pem(tmp_path / "k")),
        auth_jwt_secret_file=str(tmp_path / "secret"),
        **JWT,
    )
    good = key.sign("acme")
    head, body, signature = good.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(body + "==")) | {"tenant": "globex"}
    public_pem = key.public_pem

    def hs256(secret_bytes: bytes):
        return lambda data: hmac.new(secret_bytes, data, hashlib.sha256).digest()

    refused = {
        "expired": key.sign("acme", lifetime=-120),
        "not yet valid": key.sign("acme", nbf=int(time.time()) + 600),
        "wrong audience": key.sign("acme", aud="another-service"),
        "no audience": jwt.encode({**claims(), "aud": None}, key.private, algorithm="RS256"),
        "wrong issuer": key.sign("acme", iss="https://evil.example"),
        "no expiry": jwt.encode(
            {"tenant": "acme", "aud": AUDIENCE, "iss": ISSUER}, key.private, algorithm="RS256"
        ),
        "another key": stranger.sign("acme"),
        "tampered payload": f"{head}.{b64(json.dumps(tampered).encode())}.{signature}",
        "alg none": handmade({"alg": "none", "typ": "JWT"}, claims(), lambda _: b""),
        "alg none, no signature": handmade({"alg": "none"}, claims(), lambda _: b"")[:-1],
        "HS256 signed with the public key": handmade(
            {"alg": "HS256", "typ": "JWT"}, claims(), hs256(public_pem)
        ),
        "HS256 with the stripped public key": handmade(
            {"alg": "HS256"}, claims(), hs256(public_pem.strip())
        ),
        "RS256 header on an HMAC signature": handmade({"alg": "RS256"}, claims(), hs256(secret)),
        "alg is not a string": handmade({"alg": ["RS256"]}, claims(), lambda _: b"x"),
        "kid is not a string": handmade({"alg": "RS256", "kid": {"a": 1}}, claims(), hs256(b"k")),
        "not a JWT": "a.b.c",
        "garbage": "x" * 40,
    }
    for name, token in refused.items():
        with pytest.raises(Unauthenticated) as caught:
            await clients(served.target, token=token).list()
        assert token not in caught.value.message, name
    accepted = {
        "good": good,
        "expired within the leeway": key.sign("acme", lifetime=-10),
        "HS256 with the secret file": handmade({"alg": "HS256"}, claims(), hs256(secret)),
    }
    for token in accepted.values():
        await clients(served.target, token=token).list()
    expired = key.sign("acme", lifetime=-120)
    with pytest.raises(Unauthenticated) as caught:
        await clients(served.target, token=expired).list()
    assert caught.value.metadata["problem"] == "expired"


async def test_a_valid_token_without_a_usable_tenant_is_permission_denied(
    serve, tmp_path: Path, clients
) -> None:
    key = KeyPair.ec()
    served = await serve(auth_jwt_key_file=str(key.write_pem(tmp_path / "k")), **JWT)
    for token in (key.sign(None), key.sign("../other"), key.sign("a/b"), key.sign(tenant=7)):
        with pytest.raises(PermissionDenied):
            await clients(served.target, token=token).list()
    custom = await serve(auth_jwt_key_file=str(tmp_path / "k"), auth_jwt_tenant_claim="org", **JWT)
    await clients(custom.target, token=key.sign(None, org="acme")).list()
    with pytest.raises(PermissionDenied):
        await clients(custom.target, token=key.sign("acme")).list()


async def test_jwks_rotation_while_serving(serve, tmp_path: Path, clients) -> None:
    old, new = KeyPair.rsa(), KeyPair.ec()
    jwks = write_jwks(tmp_path / "jwks.json", [(old, "2024")])
    served = await serve(auth_jwks_file=str(jwks), **JWT)
    old_client = clients(served.target, token=old.sign("acme", kid="2024"))
    new_client = clients(served.target, token=new.sign("acme", kid="2025"))
    await old_client.list()
    with pytest.raises(Unauthenticated):
        await new_client.list()
    # Publish the new key next to the old one, then retire the old one.
    replace_file(jwks, json.dumps({"keys": [old.jwk("2024"), new.jwk("2025")]}))
    await eventually(new_client.list)
    await old_client.list()
    replace_file(jwks, json.dumps({"keys": [new.jwk("2025")]}))
    await eventually(lambda: refused(old_client.list))
    await new_client.list()


async def refused(call) -> None:
    try:
        await call()
    except Unauthenticated:
        return
    raise AssertionError("still accepted")


async def eventually(call, attempts: int = 100) -> None:
    for attempt in range(attempts):
        try:
            await call()
            return
        except (Unauthenticated, AssertionError):
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(0.05)


async def test_token_file_and_jwt_together(serve, tmp_path: Path, clients) -> None:
    key = KeyPair.rsa()
    served = await serve(
        auth_tokens_file=str(write_tokens(tmp_path / "tokens", {"tenant-b": [TOKEN_B]})),
        auth_jwt_key_file=str(key.write_pem(tmp_path / "k")),
        **JWT,
    )
    await clients(served.target, token=TOKEN_B).start("from-token")
    await clients(served.target, token=key.sign("tenant-b")).get("from-token")
    assert served.server.authenticator.sources == ["token-file", "jwt"]


def build(tmp_path: Path, **settings) -> None:
    options = {"listen": "127.0.0.1:0", "metrics_listen": "", **JWT, **settings}
    build_server(Settings(**options), store=MemoryStore())


def test_key_material_that_is_refused_at_start(tmp_path: Path) -> None:
    private = KeyPair.rsa()
    (tmp_path / "private.pem").write_bytes(private.private_pem)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    (tmp_path / "weak.pem").write_bytes(KeyPair(weak, "RS256").public_pem)
    (tmp_path / "oct.json").write_text(json.dumps({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}))
    with_private = private.jwk("p") | json.loads(
        jwt.algorithms.RSAAlgorithm.to_jwk(private.private)
    )
    (tmp_path / "private.json").write_text(json.dumps({"keys": [with_private]}))
    (tmp_path / "short").write_text("too-short")
    (tmp_path / "empty.pem").write_text("nothing here")
    cases = {
        "auth_jwt_key_file=private.pem": "never put a private key",
        "auth_jwt_key_file=weak.pem": "at least 2048 bits",
        "auth_jwt_key_file=empty.pem": "no PEM public key",
        "auth_jwks_file=oct.json": "symmetric",
        "auth_jwks_file=private.json": "expected a public",
        "auth_jwt_secret_file=short": "at least 32 bytes",
        "auth_jwks_file=missing.json": "cannot read",
    }
    for case, message in cases.items():
        name, _, file = case.partition("=")
        with pytest.raises(ConfigurationError, match=message):
            build(tmp_path, **{name: str(tmp_path / file)})
    # An RSA key when only ES256 is allowed fits no algorithm.
    (tmp_path / "rsa.pem").write_bytes(KeyPair.rsa().public_pem)
    with pytest.raises(ConfigurationError, match="no algorithm"):
        build(tmp_path, auth_jwt_key_file=str(tmp_path / "rsa.pem"), auth_jwt_algorithms="ES256")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"auth_jwt_audience": None}, "auth_jwt_audience"),
        ({"auth_jwt_algorithms": "RS256,HS256"}, "HS256 is enabled only by"),
        ({"auth_jwt_algorithms": "none"}, "unknown algorithm"),
        ({"auth_jwt_algorithms": " , "}, "at least one"),
        ({"auth_jwt_tenant_claim": " "}, "must name a claim"),
    ],
)
def test_jwt_settings_that_are_refused(settings: dict, message: str) -> None:
    options = {**JWT, "auth_jwks_file": "/keys.json", **settings}
    with pytest.raises(ValidationError, match=message):
        Settings(**options)
