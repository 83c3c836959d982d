"""Test material for the security tests: a throw-away PKI, token files and JWTs.

::

    pki = Pki(tmp_path)                       # a self-signed CA
    server = pki.issue("server", server=True) # Issued(cert, key) files, SAN localhost/127.0.0.1
    client = pki.issue("client")              # a client certificate (clientAuth)

    write_tokens(path, {"acme": ["token-of-acme-0001"]})

    key = KeyPair.rsa()                       # or .ec(), .ed25519()
    token = key.sign({"tenant": "acme", "aud": "sessiond"}, kid="k1")
    key.write_pem(path); write_jwks(path, [key])

Everything is generated with ``cryptography`` (keys are small-ish and fast:
RSA 2048, P-256, Ed25519).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

#: Tokens of the two tenants of the token-file tests (16+ characters each).
TOKEN_A = "token-of-tenant-a-7c1e0f9b"
TOKEN_B = "token-of-tenant-b-2d8a4c6e"
#: The audience every test server and token use.
AUDIENCE = "sessiond-tests"
ISSUER = "https://issuer.example.test"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem_private(key: Any) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass
class Issued:
    """Files of one issued certificate."""

    cert: Path
    key: Path
    common_name: str


class Pki:
    """A certificate authority whose certificates are written under ``directory``."""

    def __init__(self, directory: Path, name: str = "sessiond test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=60))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        slug = name.replace(" ", "-")
        self.ca_file = directory / f"{slug}.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self, common_name: str, *, server: bool = False, names: tuple[str, ...] = ()
    ) -> Issued:
        """A certificate (server: SANs ``common_name``, ``localhost``, 127.0.0.1 and ``names``)."""
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - datetime.timedelta(minutes=5))
            .not_valid_after(_now() + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            alternatives: list[x509.GeneralName] = [
                x509.DNSName(n) for n in (common_name, "localhost", *names)
            ]
            alternatives.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
            builder = builder.add_extension(
                x509.SubjectAlternativeName(alternatives), critical=False
            ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        else:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
            )
        cert = builder.sign(self.key, hashes.SHA256())
        base = self.directory / common_name
        issued = Issued(Path(f"{base}.crt"), Path(f"{base}.key"), common_name)
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(_pem_private(key))
        return issued


def write_tokens(path: Path, tokens: dict[str, list[str]], *, comment: str = "") -> Path:
    """Writes a token file (``tenant:token`` lines) and returns its path."""
    lines = [f"# {comment}"] if comment else []
    lines += [f"{tenant}:{token}" for tenant, values in tokens.items() for token in values]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class KeyPair:
    """A JWT signing key and its algorithm."""

    private: Any
    algorithm: str

    @classmethod
    def rsa(cls) -> KeyPair:
        """RS256 (2048 bits)."""
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256")

    @classmethod
    def ec(cls) -> KeyPair:
        """ES256 (P-256)."""
        return cls(ec.generate_private_key(ec.SECP256R1()), "ES256")

    @classmethod
    def ed25519(cls) -> KeyPair:
        """EdDSA (Ed25519)."""
        return cls(ed25519.Ed25519PrivateKey.generate(), "EdDSA")

    @property
    def public_pem(self) -> bytes:
        """The public key as PEM (SubjectPublicKeyInfo)."""
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @property
    def private_pem(self) -> bytes:
        """The private key as PEM (PKCS#8, unencrypted)."""
        return _pem_private(self.private)

    def write_pem(self, path: Path) -> Path:
        """Writes the public key PEM to ``path``."""
        path.write_bytes(self.public_pem)
        return path

    def jwk(self, kid: str | None = None) -> dict[str, Any]:
        """The public key as a JWK (with ``kid`` and ``alg``)."""
        builder = {"RS256": RSAAlgorithm, "ES256": ECAlgorithm, "EdDSA": OKPAlgorithm}
        document = json.loads(builder[self.algorithm].to_jwk(self.private.public_key()))
        document["alg"] = self.algorithm
        document["use"] = "sig"
        if kid:
            document["kid"] = kid
        return document

    def sign(
        self,
        tenant: str | None = "acme",
        *,
        kid: str | None = None,
        lifetime: float = 300,
        **claims: Any,
    ) -> str:
        """A token for ``tenant`` (audience ``AUDIENCE``, issuer ``ISSUER``) unless overridden."""
        now = int(time.time())
        payload: dict[str, Any] = {
            "sub": "user-1",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + lifetime,
        }
        if tenant is not None:
            payload["tenant"] = tenant
        payload.update(claims)
        headers = {"kid": kid} if kid else None
        return jwt.encode(payload, self.private, algorithm=self.algorithm, headers=headers)


def write_jwks(path: Path, keys: list[tuple[KeyPair, str]]) -> Path:
    """Writes a JWKS of ``(key, kid)`` pairs."""
    path.write_text(json.dumps({"keys": [key.jwk(kid) for key, kid in keys]}))
    return path


def replace_file(path: Path, data: bytes | str) -> None:
    """Replaces a file atomically (as a Secret update or a deploy tool would)."""
    scratch = path.with_name(path.name + ".new")
    if isinstance(data, str):
        scratch.write_text(data)
    else:
        scratch.write_bytes(data)
    scratch.replace(path)
