"""open_store: URL forms and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from sessiond.server.storage import LocalDirectoryStore, MemoryStore, S3Store, open_store


def test_memory() -> None:
    assert isinstance(open_store("memory://"), MemoryStore)


@pytest.mark.parametrize(
    ("url", "bucket", "prefix"),
    [
        ("s3://my-bucket", "my-bucket", ""),
        ("s3://my-bucket/", "my-bucket", ""),
        ("s3://my-bucket/some/prefix/", "my-bucket", "some/prefix"),
    ],
)
def test_s3(url: str, bucket: str, prefix: str) -> None:
    store = open_store(url, s3_endpoint="http://127.0.0.1:9000", s3_region="eu-west-1")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix) == (bucket, prefix)


def test_local_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(f"file://{tmp_path}/data")
    assert isinstance(store, LocalDirectoryStore) and store.root == tmp_path / "data"
    assert open_store(str(tmp_path / "plain")).root == tmp_path / "plain"  # type: ignore[attr-defined]
    monkeypatch.chdir(tmp_path)
    assert open_store("relative/dir").root == tmp_path / "relative/dir"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "http://example.com/x",
        "gs://bucket",
        "s3://",
        "s3:///prefix",
        "s3://bucket?versioning=1",
        "memory://name",
        "file://host/path",
        "file://relative",
    ],
)
def test_refusals(url: str) -> None:
    with pytest.raises(ValueError):
        open_store(url)
