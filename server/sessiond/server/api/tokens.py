"""Static bearer tokens from a file: token -> tenant.

Format (UTF-8, one entry a line; blank lines and ``#`` comments ignored)::

    # tenant:token
    acme:3q2-7pLk0uV4Jx9m0c1Zr8y6Hf2Wd5sN
    # or the token's SHA-256 (hex), so the file holds no usable secret
    globex:sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08

The tenant must be a valid id (it becomes the key prefix ``tenants/<tenant>/``).
A token is at least 16 characters without whitespace. A tenant may have any
number of tokens (rotation: add the new one, move the clients, remove the
old one); one token cannot belong to two tenants.

Only SHA-256 digests are kept in memory. A presented token is hashed and
compared with **every** digest using ``hmac.compare_digest`` (no early exit,
no dictionary lookup keyed by secret-derived bytes), so the time taken does
not depend on how much of a valid token an attacker has guessed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from sessiond.server.domain.validation import ID_PATTERN
from sessiond.server.ops.files import ConfigurationError, WatchedFiles

#: Shortest plaintext token accepted in the file.
MIN_TOKEN_CHARS = 16
_DIGEST = re.compile(r"sha256:([0-9a-fA-F]{64})")


@dataclass(frozen=True)
class TokenEntry:
    """One token of the file.

    Attributes:
        digest: SHA-256 of the token.
        tenant: The tenant the token belongs to.
        token_id: A short public identifier (the digest's first 12 hex digits), for logs.
    """

    digest: bytes
    tenant: str
    token_id: str


def token_digest(token: str) -> bytes:
    """SHA-256 of a token's UTF-8 bytes."""
    return hashlib.sha256(token.encode("utf-8")).digest()


def parse_token_file(contents: list[bytes]) -> tuple[TokenEntry, ...]:
    """The entries of a token file.

    Raises:
        ConfigurationError: A malformed line (named by number; its content is never quoted).
    """
    try:
        text = contents[0].decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigurationError("the token file is not UTF-8") from None
    entries: list[TokenEntry] = []
    owners: dict[bytes, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tenant, sep, secret = line.partition(":")
        tenant, secret = tenant.strip(), secret.strip()
        if not sep or not ID_PATTERN.fullmatch(tenant):
            raise ConfigurationError(
                f"token file line {number}: expected 'tenant:token' with a tenant of 1-63"
                " characters of [A-Za-z0-9._-] starting with a letter or digit"
            )
        if match := _DIGEST.fullmatch(secret):
            digest = bytes.fromhex(match.group(1))
        elif len(secret) < MIN_TOKEN_CHARS or any(c.isspace() for c in secret):
            raise ConfigurationError(
                f"token file line {number}: a token must be at least {MIN_TOKEN_CHARS}"
                " characters without whitespace (or sha256:<64 hex digits>)"
            )
        else:
            digest = token_digest(secret)
        if owners.get(digest, tenant) != tenant:
            raise ConfigurationError(
                f"token file line {number}: the same token is listed for two tenants"
            )
        owners[digest] = tenant
        entries.append(TokenEntry(digest, tenant, digest.hex()[:12]))
    return tuple(entries)


class TokenFile:
    """The tokens of a file, re-read when it changes.

    Args:
        path: The token file.
        reload_seconds: Least seconds between checks for a new version (0: never).

    Raises:
        ConfigurationError: The file cannot be read or is malformed.
    """

    def __init__(self, path: str, *, reload_seconds: float = 5.0) -> None:
        self.files = WatchedFiles("token file", [path], parse_token_file, interval=reload_seconds)

    def lookup(self, token: str) -> TokenEntry | None:
        """The entry of ``token``, or None; constant time in the token's content."""
        return find_digest(self.files.get(), token_digest(token))


def find_digest(entries: tuple[TokenEntry, ...], digest: bytes) -> TokenEntry | None:
    """The entry whose digest equals ``digest``, comparing with every entry in constant time."""
    found: TokenEntry | None = None
    for entry in entries:
        if hmac.compare_digest(entry.digest, digest):
            found = entry
    return found
