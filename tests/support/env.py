"""Keeps tests away from real AWS configuration.

An autouse fixture removes every ``AWS_*`` variable for each test and points
the AWS config/credentials files at paths that do not exist, so nothing on the
developer's machine (profiles, SSO caches, real keys) can leak into a test.
Code under test should get credentials explicitly (see ``support.moto``);
``aws_test_credentials`` is there for a test that needs them in the
environment instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

#: Dummy credentials accepted by moto; never valid anywhere else.
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(autouse=True)
def _isolate_aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Removes ``AWS_*`` variables and disables config files and IMDS for one test."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    missing = "/nonexistent/sessiond-tests/aws"
    monkeypatch.setenv("AWS_CONFIG_FILE", f"{missing}/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", f"{missing}/credentials")
    # Without this, a client lacking credentials would probe EC2 metadata for seconds.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Sets dummy ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` / region for one test."""
    for name, value in TEST_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    yield dict(TEST_CREDENTIALS)
