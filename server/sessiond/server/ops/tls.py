"""TLS and mutual TLS of the gRPC port, from PEM files that may change while serving.

The port is bound with ``grpc.dynamic_ssl_server_credentials``: gRPC asks
:meth:`ServerTls.fetch` for a new certificate configuration at every new
handshake, and the answer is "no change" except when the files changed (they
are re-read at most every ``tls_reload_seconds``). So a renewed certificate
(cert-manager, a rotated Secret) is served to new connections without a
restart; established connections keep theirs.

A new version is accepted only when it is complete and consistent: the chain
parses, the private key parses and belongs to the first certificate, and the
client CA bundle (mutual TLS) parses. Otherwise the previous one stays in
force and the refusal is logged (half-written files during a rotation are
simply retried at the next check).
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from sessiond.server.ops.files import ConfigurationError, WatchedFiles
from sessiond.server.ops.settings import Settings

log = logging.getLogger("sessiond.server.tls")


@dataclass(frozen=True)
class CertificateSet:
    """One consistent version of the TLS files.

    Attributes:
        key: The PEM private key.
        chain: The PEM certificate chain (leaf first).
        client_ca: PEM CA certificates of client certificates (None: no mutual TLS).
        not_after: Expiry of the leaf certificate.
        subject: The leaf's subject, for logs.
    """

    key: bytes
    chain: bytes
    client_ca: bytes | None
    not_after: datetime.datetime
    subject: str

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        """This version as a gRPC server certificate configuration."""
        return grpc.ssl_server_certificate_configuration(
            [(self.key, self.chain)], root_certificates=self.client_ca
        )


def parse_certificates(contents: list[bytes]) -> CertificateSet:
    """Checks and wraps ``[chain, key]`` or ``[chain, key, client CA]`` PEM bytes.

    Raises:
        ConfigurationError: Something does not parse, or the key does not match.
    """
    chain, key_pem = contents[0], contents[1]
    client_ca = contents[2] if len(contents) > 2 else None
    try:
        certificates = x509.load_pem_x509_certificates(chain)
    except ValueError:
        raise ConfigurationError("tls_cert_file holds no valid PEM certificate") from None
    try:
        key: PrivateKeyTypes = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(
            "tls_key_file holds no valid unencrypted PEM private key"
        ) from None
    leaf = certificates[0]
    if _public_bytes(key.public_key()) != _public_bytes(leaf.public_key()):  # type: ignore[arg-type]
        raise ConfigurationError("tls_key_file is not the key of tls_cert_file's certificate")
    if client_ca is not None:
        try:
            x509.load_pem_x509_certificates(client_ca)
        except ValueError:
            raise ConfigurationError("tls_client_ca_file holds no valid PEM certificate") from None
    return CertificateSet(
        key=key_pem,
        chain=chain,
        client_ca=client_ca,
        not_after=leaf.not_valid_after_utc,
        subject=leaf.subject.rfc4514_string(),
    )


def _public_bytes(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


class ServerTls:
    """The TLS credentials of the gRPC port, reloaded from their files.

    Raises:
        ConfigurationError: The files cannot be read, or are not a valid set.
    """

    def __init__(
        self,
        cert_file: str,
        key_file: str,
        client_ca_file: str | None = None,
        *,
        reload_seconds: float = 30.0,
    ) -> None:
        paths = [cert_file, key_file] + ([client_ca_file] if client_ca_file else [])
        self.mutual = client_ca_file is not None
        self.files = WatchedFiles(
            "TLS certificate", paths, parse_certificates, interval=reload_seconds
        )
        self._served_version = self.files.version
        _warn_if_expiring(self.files.get())

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerTls | None:
        """The TLS of these settings; None when TLS is off."""
        if not (settings.tls_cert_file and settings.tls_key_file):
            return None
        return cls(
            settings.tls_cert_file,
            settings.tls_key_file,
            settings.tls_client_ca_file,
            reload_seconds=settings.tls_reload_seconds,
        )

    @property
    def current(self) -> CertificateSet:
        """The version new connections get (without checking the files)."""
        return self.files.value

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials that follow the files (mutual TLS with a client CA)."""
        return grpc.dynamic_ssl_server_credentials(
            self.current.configuration(),
            self.fetch,
            require_client_authentication=self.mutual,
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's per-handshake callback: a new configuration, or None for "unchanged"."""
        try:
            certificates = self.files.get()
            if self.files.version == self._served_version:
                return None
            self._served_version = self.files.version
            _warn_if_expiring(certificates)
            log.info("serving a new TLS certificate", extra={"subject": certificates.subject})
            return certificates.configuration()
        except Exception:  # never fail a handshake because of a reload problem
            log.exception("TLS certificate reload failed; the previous one stays")
            return None


def _warn_if_expiring(certificates: CertificateSet) -> None:
    left = certificates.not_after - datetime.datetime.now(datetime.UTC)
    if left < datetime.timedelta(days=7):
        expired = left.total_seconds() <= 0
        log.warning(
            "the TLS certificate has expired" if expired else "the TLS certificate expires soon",
            extra={
                "subject": certificates.subject,
                "not_after": certificates.not_after.isoformat(),
            },
        )
