"""The object-store port: the only way the domain touches storage.

Modelled on Rust's ``object_store``: ``put`` takes a mode (create-only,
compare-and-swap on an ETag, or overwrite) and failures are typed, so the claim
protocol can tell "someone else won" from "the store is down".

Every adapter (S3, local directory, in-memory) implements :class:`ObjectStore`
with identical semantics; ``tests/contract`` runs one suite against all three.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

#: Called once per store request with the operation ("get", "head", "put",
#: "list", "delete") and its outcome ("ok", "not_found", "not_modified",
#: "already_exists", "precondition_failed", "error"). Retries count as requests.
RequestObserver = Callable[[str, str], None]


class StoreError(Exception):
    """Base of every error an object store raises."""


class NotFound(StoreError):
    """The key does not exist (GET/HEAD of a missing key, If-Match on a missing key)."""


class AlreadyExists(StoreError):
    """A create-only put found the key already present."""


class PreconditionFailed(StoreError):
    """An ``If-Match`` put found a different ETag: somebody else wrote first."""


class StoreUnavailable(StoreError):
    """The store failed transiently and retries did not help; nothing is known to be written."""


class AmbiguousWrite(StoreError):
    """A conditional write may or may not have been applied, and checking failed.

    Callers must not assume either outcome; sessiond surfaces this as
    ``UNAVAILABLE`` / ``COMMIT_UNKNOWN``.
    """


class StoreUnsupported(StoreError):
    """The store ignores conditional writes; sessiond refuses to serve it."""


class NotModified(StoreError):
    """A conditional GET (``if_none_match``) found the object unchanged."""


@dataclass(frozen=True)
class Create:
    """Put only if the key does not exist (``If-None-Match: *``)."""


@dataclass(frozen=True)
class Update:
    """Put only if the key's current ETag equals ``etag`` (``If-Match``)."""

    etag: str


@dataclass(frozen=True)
class Overwrite:
    """Put unconditionally."""


PutMode = Create | Update | Overwrite

CREATE = Create()
OVERWRITE = Overwrite()


@dataclass(frozen=True)
class ObjectMeta:
    """What the store knows about one object.

    Attributes:
        key: The object's key, relative to the store's root.
        etag: Opaque entity tag (identical bytes may give identical tags, so a
            compare-and-swap protocol must also version the content).
        size: Size in bytes.
        last_modified: Modification time, if the adapter knows it.
        put_id: The ``put_id`` the object was written with, if any (only
            reported by ``head`` and ``get``, not by ``list``).
    """

    key: str
    etag: str
    size: int
    last_modified: datetime | None = None
    put_id: str | None = None


@dataclass(frozen=True)
class GetResult:
    """The body of an object and its metadata."""

    body: bytes
    meta: ObjectMeta


@dataclass(frozen=True)
class ListPage:
    """One page of a listing, keys in ascending byte order.

    Attributes:
        items: The objects of this page.
        next_start_after: Pass as ``start_after`` to get the next page; ``None``
            on the last page.
    """

    items: list[ObjectMeta] = field(default_factory=list)
    next_start_after: str | None = None


class ObjectStore(abc.ABC):
    """An object store with conditional writes.

    Keys are ``/``-separated relative paths of printable ASCII; adapters map
    them under their own root (a bucket prefix, a directory). All methods are
    coroutines and safe to call concurrently.
    """

    @abc.abstractmethod
    async def get(self, key: str, *, if_none_match: str | None = None) -> GetResult:
        """Reads an object.

        Args:
            key: The key.
            if_none_match: An ETag; when the object still has it, raise
                ``NotModified`` instead of returning the body (a cheap
                revalidation of a cached copy).

        Raises:
            NotFound: The key does not exist.
            NotModified: ``if_none_match`` equals the current ETag.
            StoreUnavailable: The store failed after retries.
        """

    @abc.abstractmethod
    async def head(self, key: str) -> ObjectMeta:
        """Reads an object's metadata.

        Raises:
            NotFound: The key does not exist.
            StoreUnavailable: The store failed after retries.
        """

    @abc.abstractmethod
    async def put(
        self, key: str, body: bytes, *, mode: PutMode, put_id: str | None = None
    ) -> ObjectMeta:
        """Writes an object.

        Args:
            key: The key.
            body: The full content.
            mode: ``Create``, ``Update(etag)`` or ``Overwrite``.
            put_id: A unique tag stored with the object, so that a conditional
                write whose response was lost can recognise its own success.
                Adapters generate one when it is ``None``.

        Returns:
            The metadata of the written object (its new ETag).

        Raises:
            AlreadyExists: ``Create`` and the key exists.
            PreconditionFailed: ``Update`` and the ETag differs.
            NotFound: ``Update`` and the key does not exist.
            AmbiguousWrite: A conditional write's outcome could not be determined.
            StoreUnavailable: The store failed after retries; nothing was written.
        """

    @abc.abstractmethod
    async def list(
        self, prefix: str, *, start_after: str | None = None, limit: int = 1000
    ) -> ListPage:
        """Lists objects whose key starts with ``prefix``, in ascending key order.

        Args:
            prefix: Key prefix (may be empty).
            start_after: Only keys strictly greater than this.
            limit: Maximum items in the page (1..1000).

        Raises:
            StoreUnavailable: The store failed after retries.
        """

    @abc.abstractmethod
    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Deletes an object; deleting a missing key succeeds.

        Args:
            key: The key.
            if_match: Delete only if the object's current ETag equals this
                (a writer removing its own leftover must not remove a file
                another writer has since replaced).

        Raises:
            PreconditionFailed: ``if_match`` given and the ETag differs.
            NotFound: ``if_match`` given and the key does not exist.
            StoreUnavailable: The store failed after retries.
        """

    @abc.abstractmethod
    async def list_prefixes(self, prefix: str) -> list[str]:
        """The "directories" directly below ``prefix``: every distinct
        ``prefix + <segment> + "/"`` that some key starts with, in ascending
        order (S3's ``CommonPrefixes`` with delimiter ``/``; all pages).

        Raises:
            StoreUnavailable: The store failed after retries.
        """

    async def ensure_prefix(self, prefix: str) -> None:
        """Makes an empty "directory" exist where the adapter has directories.

        Object stores have no directories, so the default does nothing; the
        local-directory adapter creates one, because Strands'
        FileSessionManager expects ``messages/`` to exist even when empty.
        """
        return None

    async def start(self) -> None:
        """Opens connections and checks the store; called once before serving."""
        return None

    async def close(self) -> None:
        """Releases connections; called once at shutdown."""
        return None

    async def list_all(self, prefix: str, *, start_after: str | None = None) -> list[ObjectMeta]:
        """Lists every object under ``prefix`` (all pages)."""
        items: list[ObjectMeta] = []
        cursor = start_after
        while True:
            page = await self.list(prefix, start_after=cursor)
            items.extend(page.items)
            if page.next_start_after is None:
                return items
            cursor = page.next_start_after
