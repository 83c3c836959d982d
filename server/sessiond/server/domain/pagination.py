"""Opaque, signed page tokens bound to the tenant, the RPC and its filters.

A token is ``base64url(json(payload)) . base64url(hmac_sha256(payload))``. The
payload names the kind of listing, the tenant and a digest of the request's
filters, so a token cannot be replayed against another tenant, another
listing or other filters (INVALID_ARGUMENT, INVALID_PAGE_TOKEN).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from sessiond.errors import InvalidPageToken


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def filter_digest(filters: Any) -> str:
    """A short digest of a request's filters (JSON-serialisable)."""
    encoded = json.dumps(filters, sort_keys=True, default=str).encode()
    return hashlib.sha256(encoded).hexdigest()[:16]


class PageTokens:
    """Makes and checks page tokens with one server secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:16]

    def make(self, *, kind: str, tenant: str, filters: str, position: dict[str, Any]) -> str:
        """Returns a token for the next page at ``position``."""
        payload = json.dumps(
            {"k": kind, "t": tenant, "f": filters, "p": position}, separators=(",", ":")
        ).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def read(self, token: str, *, kind: str, tenant: str, filters: str) -> dict[str, Any] | None:
        """Returns the position in ``token``; None for an empty token (first page).

        Raises:
            InvalidPageToken: Malformed, forged, or made for another request.
        """
        if not token:
            return None
        try:
            body, signature = token.split(".")
            payload = _unb64(body)
            valid = hmac.compare_digest(_unb64(signature), self._sign(payload))
            data = json.loads(payload) if valid else None
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("p"), dict):
            raise InvalidPageToken("page_token is not valid", field="page_token")
        if data.get("k") != kind or data.get("t") != tenant or data.get("f") != filters:
            raise InvalidPageToken(
                "page_token was made for a different request", field="page_token"
            )
        return data["p"]
