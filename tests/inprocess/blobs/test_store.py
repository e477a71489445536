"""BlobStore (shared/blobs/store.py) on a local directory and on an S3-compatible server (moto)."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import pytest

import shared.blobs.store
from shared.blobs.store import BlobStore, blob_store
from shared.settings import Settings
from tests.s3 import S3Server


@pytest.fixture(params=["local", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    if request.param == "local":
        yield BlobStore(str(tmp_path / "blobs"), cache_dir=tmp_path / "cache")
        return
    server: S3Server = request.getfixturevalue("s3_server")
    bucket = server.new_bucket()
    yield BlobStore(f"s3://{bucket}/prefix", cache_dir=tmp_path / "cache", storage_options=server.options())


def test_bytes_round_trip_and_are_deleted(store: BlobStore) -> None:
    assert not store.exists("results/a/1.json.gz")
    assert store.put_bytes("results/a/1.json.gz", b"hello") == 5
    assert store.exists("results/a/1.json.gz")
    assert store.size("results/a/1.json.gz") == 5
    assert store.get_bytes("results/a/1.json.gz") == b"hello"
    with store.open("results/a/1.json.gz") as stream:
        assert stream.read(2) == b"he" and stream.read() == b"llo"
    store.delete("results/a/1.json.gz")
    assert not store.exists("results/a/1.json.gz")
    store.delete("results/a/1.json.gz")  # missing is fine
    with pytest.raises(FileNotFoundError):
        store.get_bytes("results/a/1.json.gz")


def test_a_file_is_streamed_in_and_read_back_as_a_local_file(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "upload.csv"
    content = b"a,b,target\n" + b"1,2,0\n" * 200_000  # 1.2 MB: more than one copy buffer or upload part
    source.write_bytes(content)
    assert store.put_file("uploads/x/1.csv", source) == len(content)
    local = store.local_path("uploads/x/1.csv")
    assert local.read_bytes() == content
    if store.is_local:
        assert local == Path(store.root) / "uploads/x/1.csv"  # the blob itself, no copy
    else:
        assert local.is_relative_to(store.cache_dir)
        assert store.local_path("uploads/x/1.csv") == local  # downloaded once
    store.delete("uploads/x/1.csv")
    assert not local.exists()  # the blob, or its cached copy
    with pytest.raises(FileNotFoundError):
        store.local_path("uploads/x/1.csv")


def test_listing_gives_keys_sizes_and_times_under_a_prefix(store: BlobStore) -> None:
    store.put_bytes("chunks/j/shap-0-a.part", gzip.compress(b"part"))
    store.put_bytes("chunks/j/shap-1-b.part", b"12345")
    store.put_bytes("prepared/j/c.pickle", b"model")
    listed = {blob.key: blob for blob in store.list("chunks/")}
    assert set(listed) == {"chunks/j/shap-0-a.part", "chunks/j/shap-1-b.part"}
    assert listed["chunks/j/shap-1-b.part"].size == 5
    now = datetime.now(UTC)
    assert all(
        now - timedelta(minutes=5) < blob.modified < now + timedelta(minutes=5) for blob in listed.values()
    )
    assert [blob.key for blob in store.list("uploads/")] == []  # nothing there yet: not an error


def test_local_writes_are_atomic_and_leave_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(str(tmp_path / "blobs"), cache_dir=tmp_path / "cache")
    store.put_bytes("results/j/1.json.gz", b"first")

    def copy_failing_halfway(source: object, target: BinaryIO, length: int = 0) -> None:
        target.write(b"half")  # then the disk is full, or the process killed
        raise OSError("no space left on device")

    monkeypatch.setattr(shared.blobs.store.shutil, "copyfileobj", copy_failing_halfway)
    source = tmp_path / "big.csv"
    source.write_bytes(b"x" * 10)
    with pytest.raises(OSError, match="no space"):
        store.put_file("results/j/2.json.gz", source)
    assert not store.exists("results/j/2.json.gz")
    assert sorted(p.name for p in (tmp_path / "blobs/results/j").iterdir()) == ["1.json.gz"]


def test_invalid_keys_are_refused(tmp_path: Path) -> None:
    store = BlobStore(str(tmp_path / "blobs"), cache_dir=tmp_path / "cache")
    for key in ("", "/etc/passwd", "uploads/../../x"):
        with pytest.raises(ValueError):
            store.put_bytes(key, b"x")


def test_the_settings_choose_the_store_once_per_process(tmp_path: Path, s3_server: S3Server) -> None:
    local = Settings(home=tmp_path)
    assert blob_store(local) is blob_store(local)
    assert blob_store(local).is_local and Path(blob_store(local).root) == (tmp_path / "blobs").resolve()
    bucket = s3_server.new_bucket()
    remote = Settings(home=tmp_path, storage_url=f"s3://{bucket}/p", storage_options=s3_server.options())
    assert not blob_store(remote).is_local
    blob_store(remote).put_bytes("k/1", b"x")
    assert blob_store(remote).get_bytes("k/1") == b"x"
    memory = Settings(home=tmp_path, storage_url="memory://fitexplain-test")
    blob_store(memory).put_bytes("k/1", b"y")
    assert blob_store(memory).get_bytes("k/1") == b"y"
