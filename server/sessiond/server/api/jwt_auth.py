"""JWT bearer tokens: signature, expiry, issuer and audience checks, tenant from a claim.

Keys come from files, re-read when they change (JWKS rotation):

- ``auth_jwt_key_file``: one or more PEM public keys (or certificates), RSA
  (2048 bits or more), EC (P-256/384/521) or Ed25519/Ed448.
- ``auth_jwks_file``: a JSON Web Key Set (public keys only; ``oct`` keys are
  refused). A key's ``alg`` restricts it; a token's ``kid`` selects keys.
- ``auth_jwt_secret_file``: a shared secret of 32 bytes or more, the only
  key ever used for ``HS256``.

Algorithm confusion is impossible by construction: every key carries the set
of algorithms that fit its type (intersected with ``auth_jwt_algorithms``),
a token's ``alg`` header only selects among those, and no public key is ever
offered to an HMAC algorithm. ``alg: none`` fits no key. Tokens must carry
``exp``; ``aud`` must match (the audience is required), ``iss`` when
configured; ``nbf``/``iat`` are checked; all with the configured leeway.

Verified tokens are cached by digest until they expire (or the keys change),
so the interceptor and the tenant resolution of one call verify once.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from sessiond.errors import PermissionDenied, Unauthenticated
from sessiond.server.api.tokens import token_digest
from sessiond.server.domain.validation import ID_PATTERN
from sessiond.server.ops.files import ConfigurationError, WatchedFiles
from sessiond.server.ops.security_checks import HMAC_JWT_ALGORITHM, jwt_algorithms
from sessiond.server.ops.settings import Settings

RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
MIN_RSA_BITS = 2048
MIN_SECRET_BYTES = 32
CACHE_SIZE = 4096


@dataclass(frozen=True)
class VerificationKey:
    """A key and the algorithms it may verify.

    Attributes:
        key: A cryptography public key, or the HMAC secret (bytes).
        algorithms: JWT algorithm names this key accepts.
        kid: The JWKS key id, if any.
    """

    key: Any
    algorithms: frozenset[str]
    kid: str | None = None


def algorithms_of(public_key: Any, allowed: frozenset[str]) -> frozenset[str]:
    """The algorithms that fit a public key's type, within ``allowed``.

    Raises:
        ConfigurationError: An unsupported or weak key.
    """
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            raise ConfigurationError(f"RSA keys must have at least {MIN_RSA_BITS} bits")
        fitting = RSA_ALGORITHMS
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        name = EC_ALGORITHMS.get(public_key.curve.name)
        if name is None:
            raise ConfigurationError(f"unsupported EC curve {public_key.curve.name}")
        fitting = frozenset({name})
    elif isinstance(public_key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        fitting = frozenset({"EdDSA"})
    else:
        raise ConfigurationError(f"unsupported key type {type(public_key).__name__}")
    return fitting & allowed


def parse_pem_keys(contents: bytes, allowed: frozenset[str]) -> list[VerificationKey]:
    """Every PEM public key or certificate in a file.

    Raises:
        ConfigurationError: No key, a private key, or a key no allowed algorithm fits.
    """
    keys = []
    blocks = contents.split(b"-----BEGIN ")[1:]
    for number, block in enumerate(blocks, start=1):
        pem = b"-----BEGIN " + block
        label = block.split(b"-----", 1)[0].strip()
        try:
            if label == b"CERTIFICATE":
                public_key = x509.load_pem_x509_certificate(pem).public_key()
            elif label == b"PUBLIC KEY" or label == b"RSA PUBLIC KEY":
                public_key = serialization.load_pem_public_key(pem)
            else:
                raise ConfigurationError(
                    f"auth_jwt_key_file block {number}: expected a PUBLIC KEY or CERTIFICATE"
                    " (never put a private key in it)"
                )
        except ValueError as error:
            if isinstance(error, ConfigurationError):
                raise
            raise ConfigurationError(f"auth_jwt_key_file block {number} does not parse") from None
        fitting = algorithms_of(public_key, allowed)
        if not fitting:
            raise ConfigurationError(
                f"auth_jwt_key_file block {number}: no algorithm of auth_jwt_algorithms fits it"
            )
        keys.append(VerificationKey(public_key, fitting))
    if not keys:
        raise ConfigurationError("auth_jwt_key_file holds no PEM public key")
    return keys


def parse_jwks(contents: bytes, allowed: frozenset[str]) -> list[VerificationKey]:
    """The usable signature keys of a JWKS document.

    Raises:
        ConfigurationError: Not a JWKS, private or symmetric key material, or no usable key.
    """
    try:
        document = json.loads(contents)
    except (ValueError, UnicodeDecodeError):
        raise ConfigurationError("auth_jwks_file is not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ConfigurationError('auth_jwks_file must be a JSON object with a "keys" list')
    builders = {"RSA": RSAAlgorithm, "EC": ECAlgorithm, "OKP": OKPAlgorithm}
    keys = []
    for number, jwk in enumerate(document["keys"], start=1):
        if not isinstance(jwk, dict):
            raise ConfigurationError(f"auth_jwks_file key {number} is not an object")
        if jwk.get("use", "sig") != "sig":
            continue  # an encryption key
        kty = jwk.get("kty")
        if kty == "oct":
            raise ConfigurationError(
                f"auth_jwks_file key {number} is symmetric (oct); HS256 secrets belong in"
                " auth_jwt_secret_file only"
            )
        if "d" in jwk or kty not in builders:
            raise ConfigurationError(
                f"auth_jwks_file key {number}: expected a public RSA, EC or OKP key"
            )
        try:
            public_key = builders[kty].from_jwk(jwk)
        except Exception:
            raise ConfigurationError(f"auth_jwks_file key {number} does not parse") from None
        fitting = algorithms_of(public_key, allowed)
        if "alg" in jwk:
            fitting &= {jwk["alg"]}
        kid = jwk.get("kid")
        if fitting:
            keys.append(VerificationKey(public_key, frozenset(fitting), kid and str(kid)))
    if not keys:
        raise ConfigurationError("auth_jwks_file has no signature key usable with the algorithms")
    return keys


def parse_secret(contents: bytes) -> list[VerificationKey]:
    """The HS256 key of a secret file (surrounding whitespace removed).

    Raises:
        ConfigurationError: Shorter than 32 bytes.
    """
    secret = contents.strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigurationError(
            f"auth_jwt_secret_file must hold at least {MIN_SECRET_BYTES} bytes"
        )
    return [VerificationKey(secret, frozenset({HMAC_JWT_ALGORITHM}))]


@dataclass(frozen=True)
class JwtIdentity:
    """A verified token: its tenant, subject and expiry (epoch seconds)."""

    tenant: str
    subject: str
    expires: float


class JwtVerifier:
    """Verifies JWT bearer tokens against keys from files.

    Raises:
        ConfigurationError: A key file cannot be read or holds no usable key.
    """

    def __init__(self, settings: Settings, *, clock: Any = time.time) -> None:
        allowed = frozenset(jwt_algorithms(settings.auth_jwt_algorithms))
        interval = settings.auth_reload_seconds
        self._sources: list[WatchedFiles[list[VerificationKey]]] = []
        if settings.auth_jwt_key_file:
            self._add("JWT key file", settings.auth_jwt_key_file, parse_pem_keys, allowed, interval)
        if settings.auth_jwks_file:
            self._add("JWKS file", settings.auth_jwks_file, parse_jwks, allowed, interval)
        if settings.auth_jwt_secret_file:
            self._sources.append(
                WatchedFiles(
                    "JWT secret file",
                    [settings.auth_jwt_secret_file],
                    lambda contents: parse_secret(contents[0]),
                    interval=interval,
                )
            )
        self.audience = settings.auth_jwt_audience
        self.issuer = settings.auth_jwt_issuer
        self.tenant_claim = settings.auth_jwt_tenant_claim
        self.leeway = settings.auth_jwt_leeway_seconds
        self._clock = clock
        self._cache: OrderedDict[bytes, tuple[JwtIdentity, tuple[int, ...]]] = OrderedDict()

    def _add(self, what: str, path: str, parse: Any, allowed: frozenset[str], interval: float):
        self._sources.append(
            WatchedFiles(what, [path], lambda c: parse(c[0], allowed), interval=interval)
        )

    def keys(self) -> tuple[list[VerificationKey], tuple[int, ...]]:
        """Every current key, and the versions of their files (a cache stamp)."""
        keys: list[VerificationKey] = []
        for source in self._sources:
            keys.extend(source.get())
        return keys, tuple(source.version for source in self._sources)

    def verify(self, token: str) -> JwtIdentity:
        """The identity in a valid token.

        Raises:
            Unauthenticated: Malformed, badly signed, expired, wrong audience or issuer.
            PermissionDenied: Valid, but its tenant claim is missing or not a valid id.
        """
        keys, stamp = self.keys()
        digest = token_digest(token)
        cached = self._cache.get(digest)
        if cached is not None and cached[1] == stamp and cached[0].expires > self._clock():
            return cached[0]
        claims = self._decode(token, keys)
        tenant = claims.get(self.tenant_claim)
        if not isinstance(tenant, str) or not ID_PATTERN.fullmatch(tenant):
            raise PermissionDenied(
                "the token carries no valid tenant claim", claim=self.tenant_claim
            )
        identity = JwtIdentity(tenant, str(claims.get("sub", "")), float(claims["exp"]))
        self._cache[digest] = (identity, stamp)
        if len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return identity

    def _decode(self, token: str, keys: list[VerificationKey]) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not valid", problem="malformed") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        if not isinstance(algorithm, str) or not isinstance(kid, str | None):
            raise Unauthenticated("the bearer token is not valid", problem="malformed")
        candidates = [key for key in keys if algorithm in key.algorithms]
        if kid is not None and any(key.kid is not None for key in candidates):
            candidates = [key for key in candidates if key.kid == kid]
        if not candidates:
            raise Unauthenticated("the bearer token is not valid", problem="unknown_key")
        required = ["exp", "aud"] + (["iss"] if self.issuer else [])
        for key in candidates:
            try:
                return jwt.decode(
                    token,
                    key.key,
                    algorithms=[algorithm],
                    audience=self.audience,
                    issuer=self.issuer,
                    leeway=self.leeway,
                    options={"require": required},
                )
            except jwt.InvalidSignatureError:
                continue  # another key with this algorithm may have signed it
            except jwt.ExpiredSignatureError:
                raise Unauthenticated("the bearer token has expired", problem="expired") from None
            except jwt.PyJWTError:
                raise Unauthenticated("the bearer token is not valid", problem="claims") from None
        raise Unauthenticated("the bearer token is not valid", problem="signature")
