"""Fixtures of the engine tests: fake model endpoints on real sockets, no stray credentials."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fake_models import FakeBedrock, FakeOpenAI

#: The OpenAI key the tests configure; it must never be stored or logged.
OPENAI_KEY = "sk-test-4f9c2b7e1d8a6b3c5e0f-SECRET"
#: The AWS secret key the Bedrock tests use.
AWS_SECRET = "aws-secret-7d1e9c3a5b-SECRET"


@pytest.fixture(autouse=True)
def _no_openai_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's OPENAI_API_KEY must not reach the fake endpoints."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A started fake OpenAI-compatible endpoint."""
    fake = FakeOpenAI()
    await fake.start()
    yield fake
    await fake.server.close()


@pytest.fixture
async def fake_bedrock(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeBedrock]:
    """A started fake Bedrock runtime endpoint, with AWS credentials in the environment."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDTESTENGINES")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
    fake = FakeBedrock()
    await fake.start()
    yield fake
    await fake.server.close()
