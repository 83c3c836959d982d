"""Object storage: the port and its adapters (memory, local directory, S3).

The adapters are imported lazily, so importing the port (as the domain does)
does not pull in aioboto3.
"""

from __future__ import annotations

import importlib
from typing import Any

from sessiond.server.storage.port import (
    CREATE,
    OVERWRITE,
    AlreadyExists,
    AmbiguousWrite,
    Create,
    GetResult,
    ListPage,
    NotFound,
    NotModified,
    ObjectMeta,
    ObjectStore,
    Overwrite,
    PreconditionFailed,
    PutMode,
    RequestObserver,
    StoreError,
    StoreUnavailable,
    StoreUnsupported,
    Update,
)

_LAZY = {
    "open_store": "factory",
    "LocalDirectoryStore": "local",
    "MemoryStore": "memory",
    "FailNext": "memory",
    "FaultHook": "memory",
    "PauseOn": "memory",
    "S3Store": "s3",
}

__all__ = [
    "CREATE",
    "OVERWRITE",
    "AlreadyExists",
    "AmbiguousWrite",
    "Create",
    "FailNext",
    "FaultHook",
    "GetResult",
    "ListPage",
    "LocalDirectoryStore",
    "MemoryStore",
    "NotFound",
    "NotModified",
    "ObjectMeta",
    "ObjectStore",
    "Overwrite",
    "PauseOn",
    "PreconditionFailed",
    "PutMode",
    "RequestObserver",
    "S3Store",
    "StoreError",
    "StoreUnavailable",
    "StoreUnsupported",
    "Update",
    "open_store",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
