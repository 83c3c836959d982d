"""Fixtures of the reliability tier: real ``sessiond serve`` processes on moto.

``sessiond_processes``
    ``launch(name, prefix=..., endpoint=..., extra=..., wait=True)`` starts a
    ``sessiond serve`` process on the test's bucket (``s3_bucket``); every
    process is stopped at teardown (SIGTERM, SIGKILL after 15 s).
``s3_objects``
    ``read(key)`` / ``keys(prefix)`` / ``write(key, body)`` on the test's bucket, with a
    plain botocore client (what the processes stored, unmediated).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.processes import SessiondProcess, stop_all

Launch = Callable[..., SessiondProcess]


@pytest.fixture
def sessiond_processes(tmp_path: Path, s3_bucket: tuple[str, str]) -> Iterator[Launch]:
    """Yields ``launch(name, prefix="sessiond", endpoint=None, extra=None, wait=True)``."""
    endpoint, bucket = s3_bucket
    started: list[SessiondProcess] = []

    def launch(
        name: str,
        *,
        prefix: str = "sessiond",
        endpoint_url: str | None = None,
        extra: dict[str, str] | None = None,
        wait: bool = True,
    ) -> SessiondProcess:
        process = SessiondProcess.launch(
            tmp_path,
            endpoint_url or endpoint,
            bucket,
            prefix=prefix,
            name=name,
            extra=extra,
            wait=wait,
        )
        started.append(process)
        return process

    try:
        yield launch
    finally:
        stop_all(started)


class BucketObjects:
    """Direct access to the objects of the test's bucket."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def read(self, key: str) -> bytes:
        """The object's bytes (raises botocore's NoSuchKey if missing)."""
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def write(self, key: str, body: bytes) -> None:
        """Overwrites an object (to plant corrupt data)."""
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body)

    def keys(self, prefix: str) -> list[str]:
        """Every key under ``prefix``, sorted."""
        found: list[str] = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(found)


@pytest.fixture
def s3_objects(s3_bucket: tuple[str, str], moto_s3_client: Any) -> BucketObjects:
    """The objects of the test's bucket, read and written with a plain client."""
    return BucketObjects(moto_s3_client, s3_bucket[1])
