"""Builds an object store from a URL (the server's ``--store`` setting)."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from sessiond.server.storage.local import LocalDirectoryStore
from sessiond.server.storage.memory import MemoryStore
from sessiond.server.storage.port import ObjectStore, RequestObserver
from sessiond.server.storage.s3 import S3Store

_FORMS = "memory://, s3://bucket[/prefix], file:///absolute/path or a directory path"


def open_store(
    url: str,
    *,
    s3_endpoint: str | None = None,
    s3_region: str | None = None,
    observer: RequestObserver | None = None,
) -> ObjectStore:
    """Returns an (unstarted) object store for ``url``.

    Args:
        url: ``memory://`` (in-process, lost at exit), ``s3://bucket`` or
            ``s3://bucket/some/prefix``, ``file:///abs/path``, or a plain
            filesystem path (relative paths are made absolute).
        s3_endpoint: Endpoint URL of an S3-compatible store (MinIO...).
        s3_region: The S3 region.
        observer: Called as ``observer(op, outcome)`` once per store request.

    Raises:
        ValueError: The URL has another scheme or a malformed form.
    """
    if not url or not url.strip():
        raise ValueError(f"empty store URL; expected {_FORMS}")
    if "://" not in url:
        return LocalDirectoryStore(url, observer=observer)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise ValueError(f"store URL {url!r} must not have a query or fragment")
    if scheme == "memory":
        if parts.netloc or parts.path not in ("", "/"):
            raise ValueError(f"store URL {url!r}: memory:// takes no name or path")
        return MemoryStore(observer=observer)
    if scheme == "s3":
        if not parts.netloc:
            raise ValueError(f"store URL {url!r}: missing bucket (s3://bucket[/prefix])")
        return S3Store(
            parts.netloc,
            prefix=unquote(parts.path).strip("/"),
            endpoint_url=s3_endpoint,
            region=s3_region,
            observer=observer,
        )
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"store URL {url!r}: file URLs must be file:///absolute/path")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"store URL {url!r}: file URLs need an absolute path")
        return LocalDirectoryStore(path, observer=observer)
    raise ValueError(f"unsupported store URL {url!r}; expected {_FORMS}")
