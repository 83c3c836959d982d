"""Fixtures of the security tests: a PKI, token files, clients that close themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from sessiond.client.aio import AsyncClient
from support.security import TOKEN_A, TOKEN_B, Pki, write_tokens


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    """A fresh certificate authority writing into ``tmp_path/pki``."""
    return Pki(tmp_path / "pki")


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    """A token file: tenant-a and tenant-b, one token each."""
    return write_tokens(tmp_path / "tokens", {"tenant-a": [TOKEN_A], "tenant-b": [TOKEN_B]})


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., AsyncClient]]:
    """``clients(target, **kwargs)``: an ``AsyncClient`` closed at teardown."""
    made: list[AsyncClient] = []

    def make(target: str, **kwargs: Any) -> AsyncClient:
        kwargs.setdefault("timeout", 10)
        kwargs.setdefault("retries", False)
        client = AsyncClient(target, **kwargs)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()
