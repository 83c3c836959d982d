"""Fixtures running one contract suite against every ObjectStore adapter.

``kind`` is "memory", "local", "s3" (GET and PUT through the lean request
path, as with any explicit endpoint) or "s3-sdk" (every call through
aiobotocore, as on AWS S3 proper); ``make_store(observer=None)`` builds a
store of that kind (local and S3 stores made in one test share one backing
root; each memory store is its own); ``store`` is one such store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from sessiond.server.storage.local import LocalDirectoryStore
from sessiond.server.storage.memory import MemoryStore
from sessiond.server.storage.port import ObjectStore, RequestObserver

KINDS = ["memory", "local", "s3", "s3-sdk"]

MakeStore = Callable[..., Awaitable[ObjectStore]]


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """The adapter under test."""
    return str(request.param)


@pytest.fixture
def make_store(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> MakeStore:
    """Returns ``make(observer=None)`` building a started store of ``kind``."""
    # Only S3 tests need the moto server, so it is looked up lazily.
    s3 = kind.startswith("s3")
    make_s3: Any = request.getfixturevalue("make_s3_store") if s3 else None

    async def make(observer: RequestObserver | None = None) -> ObjectStore:
        store: ObjectStore
        if kind == "memory":
            store = MemoryStore(observer=observer)
        elif kind == "local":
            # fsync off for speed; test_local_directory covers durable=True.
            store = LocalDirectoryStore(tmp_path / "root", durable=False, observer=observer)
        else:
            # A nested prefix checks that the adapter maps keys under it.
            return await make_s3(prefix="/svc/root/", observer=observer, lean_requests=kind == "s3")
        await store.start()
        return store

    return make


@pytest.fixture
async def store(make_store: MakeStore) -> ObjectStore:
    """A started store of ``kind``."""
    return await make_store()
