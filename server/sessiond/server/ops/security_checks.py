"""Consistency checks of the security settings, run when the settings are validated.

They look at the settings alone (no file is read here; the files are read and
checked when the server is built). A failure is a ``ValueError`` whose message
says what to change, so ``sessiond serve`` exits with code 2 and that message.
"""

from __future__ import annotations

import ipaddress
from typing import Any

#: Asymmetric JWT algorithms sessiond can verify (PyJWT names).
ASYMMETRIC_JWT_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
#: The one symmetric algorithm, accepted only with a secret file.
HMAC_JWT_ALGORITHM = "HS256"


def is_loopback(host: str) -> bool:
    """True for a loopback host: ``localhost``, ``127.0.0.0/8``, ``::1`` (bracketed or not).

    Anything else (``0.0.0.0``, ``[::]``, a name, an interface address) may be
    reachable from the network.
    """
    bare = host.strip()
    if bare.startswith("[") and bare.endswith("]"):
        bare = bare[1:-1]
    if bare.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def jwt_algorithms(text: str) -> list[str]:
    """The comma-separated asymmetric algorithms of ``auth_jwt_algorithms``.

    Raises:
        ValueError: Empty, unknown, ``none``, or an HMAC algorithm.
    """
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError("auth_jwt_algorithms must name at least one algorithm")
    for name in names:
        if name.upper().startswith("HS"):
            raise ValueError(
                f"auth_jwt_algorithms: {name} is not accepted here; HS256 is enabled only by"
                " auth_jwt_secret_file (a shared secret, never a public key)"
            )
        if name not in ASYMMETRIC_JWT_ALGORITHMS:
            known = ", ".join(sorted(ASYMMETRIC_JWT_ALGORITHMS))
            raise ValueError(f"auth_jwt_algorithms: unknown algorithm {name!r} (known: {known})")
    return names


def check_security(settings: Any) -> None:
    """Checks the TLS and authentication settings together.

    Raises:
        ValueError: An inconsistent combination, or plaintext on a network address.
    """
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        raise ValueError("TLS needs both tls_cert_file and tls_key_file")
    tls = bool(settings.tls_cert_file)
    if settings.tls_client_ca_file and not tls:
        raise ValueError("tls_client_ca_file (mutual TLS) needs tls_cert_file and tls_key_file")
    host = settings.listen.rpartition(":")[0]
    if not tls and not settings.allow_insecure and not is_loopback(host):
        raise ValueError(
            f"refusing to serve plaintext gRPC on {settings.listen}, which is not a loopback"
            " address: configure TLS (--tls-cert-file and --tls-key-file), or set"
            " --allow-insecure true (SESSIOND_ALLOW_INSECURE=true) when a service mesh or a"
            " trusted network protects the traffic"
        )
    if settings.health_listen:
        health_host, _, port = settings.health_listen.rpartition(":")
        if not health_host or not port.isdigit():
            raise ValueError("health_listen must be host:port (or empty)")
        if settings.health_listen == settings.listen and port != "0":
            raise ValueError("health_listen must differ from listen")
    jwt_algorithms(settings.auth_jwt_algorithms)
    jwt_files = (settings.auth_jwt_key_file, settings.auth_jwks_file, settings.auth_jwt_secret_file)
    if any(jwt_files):
        if not settings.auth_jwt_audience:
            raise ValueError(
                "JWT authentication needs auth_jwt_audience: without it a token minted for"
                " another service by the same issuer would be accepted"
            )
        if not settings.auth_jwt_tenant_claim.strip():
            raise ValueError("auth_jwt_tenant_claim must name a claim")
