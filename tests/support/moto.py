"""An S3 endpoint for tests: moto running as a server in a subprocess.

Fixtures (usable from any tier; ``tests/conftest.py`` registers this plugin):

``moto_endpoint`` (session)
    ``"http://127.0.0.1:<port>"`` of a moto server started once per test
    session and killed at the end. Any bucket name works on it.
``moto_s3_client`` (session)
    A plain synchronous botocore S3 client on that endpoint, for setting up
    or inspecting buckets behind the code under test.
``s3_bucket`` (function)
    ``(endpoint_url, bucket_name)`` of a new, empty bucket with a random name.
``make_s3_store`` (function)
    ``await make_s3_store(prefix="", **kwargs)`` returns a started
    :class:`S3Store` on ``s3_bucket`` (all calls share that bucket; pass
    different prefixes to separate them); ``kwargs`` override the
    constructor's (e.g. ``probe=False``, ``retry=RetryPolicy(...)``). Every
    store made is closed at teardown.

Credentials are passed explicitly (``MOTO_CREDENTIALS``); a test that needs
them in the environment (e.g. a server built with ``open_store("s3://...")``)
can also request ``aws_test_credentials`` from ``support.env``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aioboto3
import botocore.session
import pytest

from sessiond.server.storage.retry import RetryPolicy
from sessiond.server.storage.s3 import S3Store

#: Keyword arguments giving an :class:`S3Store` moto's dummy credentials.
MOTO_CREDENTIALS: dict[str, str] = {
    "access_key_id": "testing",
    "secret_access_key": "testing",
    "region": "us-east-1",
}

#: Short backoffs keep retry tests fast.
FAST_RETRY = RetryPolicy(max_attempts=5, base_delay=0.005, max_delay=0.05)

MakeS3Store = Callable[..., Awaitable[S3Store]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(url: str, proc: subprocess.Popen[bytes], log_path: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    with open(log_path, errors="replace") as log:
        tail = log.read()[-2000:]
    raise RuntimeError(f"moto server did not start on {url}:\n{tail}")


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Starts ``python -m moto.server`` on a free port; yields its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = str(tmp_path_factory.mktemp("moto") / "moto.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    env["AWS_DEFAULT_REGION"] = "us-east-1"
    # The request log goes to a file (read only if startup fails), not the terminal.
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        _wait_until_up(url, proc, log_path)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def moto_s3_client(moto_endpoint: str) -> Any:
    """A synchronous botocore S3 client on the moto endpoint."""
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=moto_endpoint,
        region_name=MOTO_CREDENTIALS["region"],
        aws_access_key_id=MOTO_CREDENTIALS["access_key_id"],
        aws_secret_access_key=MOTO_CREDENTIALS["secret_access_key"],
    )


@pytest.fixture
def s3_bucket(moto_endpoint: str, moto_s3_client: Any) -> tuple[str, str]:
    """Creates an empty bucket with a random name; returns ``(endpoint_url, bucket)``."""
    bucket = f"test-{uuid.uuid4().hex[:20]}"
    moto_s3_client.create_bucket(Bucket=bucket)
    return moto_endpoint, bucket


@pytest.fixture(scope="session")
def aioboto3_session() -> aioboto3.Session:
    """One aioboto3 session for all tests: it caches the S3 model (~0.2 s per load)."""
    return aioboto3.Session()


@pytest.fixture
async def make_s3_store(
    s3_bucket: tuple[str, str], aioboto3_session: aioboto3.Session
) -> AsyncIterator[MakeS3Store]:
    """Yields ``make(prefix="", **kwargs)`` returning started S3Stores on ``s3_bucket``."""
    endpoint, bucket = s3_bucket
    stores: list[S3Store] = []

    async def make(prefix: str = "", **kwargs: Any) -> S3Store:
        options: dict[str, Any] = {
            "prefix": prefix,
            "endpoint_url": endpoint,
            "session": aioboto3_session,
            "retry": FAST_RETRY,
            **MOTO_CREDENTIALS,
        }
        options.update(kwargs)
        store = S3Store(bucket, **options)
        stores.append(store)
        await store.start()
        return store

    yield make
    for store in stores:
        await store.close()
