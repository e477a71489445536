"""Job bytes in the blob store: written before their rows, deleted after the commit that dropped them
(never by a rollback), counted from the rows' sizes, swept when orphaned."""

from __future__ import annotations

import gzip
import hashlib
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from shared.blobs.gc import sweep_orphans
from shared.blobs.store import BlobStore, current_store
from shared.db import session_scope
from shared.dispatch import chunks
from shared.store import jobstore
from shared.store.retention import purge_expired
from shared.store.uploads import (
    sha256_hex,
    store_upload,
    upload_content,
    upload_path,
    usage,
)
from shared.tables import JobChunk, JobPrepared, JobResult, Upload, utcnow
from tests.inprocess.factories import IRIS, TINY_GBDT, ago, make_job, make_user, set_job
from tests.parts import shap_part


class Rollback(Exception):
    pass


@pytest.fixture
def store() -> BlobStore:
    return current_store()


@pytest.fixture
def user_id() -> int:
    return make_user("alice")[0]


def running_job(user_id: int, csv: bytes = IRIS, params: dict[str, object] | None = None) -> str:
    job_id = make_job(user_id, csv=csv, params=params)
    with session_scope() as session:
        assert jobstore.claim(session, job_id, worker="w", stale_after=300, max_attempts=3).job is not None
    return job_id


def succeeded_job(user_id: int, result: dict[str, object] | None = None, csv: bytes = IRIS) -> str:
    job_id = running_job(user_id, csv)
    with session_scope() as session:
        assert jobstore.succeed(session, job_id, "w", result or {"accuracy": 0.9})
    return job_id


def upload_key(digest: str) -> str | None:
    with session_scope() as session:
        return session.scalar(select(Upload.blob_key).where(Upload.sha256 == digest))


def result_row(job_id: str) -> JobResult | None:
    with session_scope() as session:
        return session.get(JobResult, job_id)


def test_an_upload_is_a_blob_with_its_size(store: BlobStore, tmp_path: Path) -> None:
    source = tmp_path / "upload.parquet"
    source.write_bytes(b"PAR1 not really parquet PAR1")
    digest = sha256_hex(source.read_bytes())
    with session_scope() as session:
        store_upload(session, source, digest, 3, 2)
        store_upload(session, source, digest, 3, 2)  # stored once per content
    key = upload_key(digest)
    assert key is not None and key.startswith(f"uploads/{digest}/") and key.endswith(".parquet")
    assert store.get_bytes(key) == source.read_bytes()
    with session_scope() as session:
        row = session.get(Upload, digest)
        assert row is not None and row.size_bytes == source.stat().st_size
        assert upload_content(session, digest) == source.read_bytes()
        path = upload_path(session, digest)
        assert path is not None and path.read_bytes() == source.read_bytes()
        assert upload_path(session, "0" * 64) is None and upload_content(session, None) == b""


def test_an_upload_written_by_a_transaction_that_rolls_back_is_deleted(store: BlobStore) -> None:
    content = b"a,target\n1,0\n2,1\n"
    before = {blob.key for blob in store.list("uploads/")}
    with pytest.raises(Rollback), session_scope() as session:
        store_upload(session, content, sha256_hex(content), 2, 2)
        raise Rollback
    assert {blob.key for blob in store.list("uploads/")} == before
    assert upload_key(sha256_hex(content)) is None


def test_a_result_is_a_blob_with_its_stored_size_and_checksum(user_id: int, store: BlobStore) -> None:
    job_id = succeeded_job(user_id, {"y_pred": [1, 0], "accuracy": 0.5})
    row = result_row(job_id)
    assert row is not None
    stored = store.get_bytes(row.blob_key)
    assert row.stored_bytes == len(stored) and row.sha256 == hashlib.sha256(stored).hexdigest()
    assert row.size_bytes == len(gzip.decompress(stored))
    with session_scope() as session:
        assert jobstore.result_body(session, job_id) == stored
        stream = jobstore.open_result(session, job_id)
        assert stream is not None
        with stream:
            assert orjson.loads(gzip.decompress(stream.read())) == {"y_pred": [1, 0], "accuracy": 0.5}
        assert jobstore.open_result(session, "nope") is None
        assert usage(session, user_id).results_bytes == row.stored_bytes


def test_a_superseded_success_leaves_no_blob(user_id: int, store: BlobStore) -> None:
    job_id = running_job(user_id)
    before = {blob.key for blob in store.list("results/")}
    with session_scope() as session:
        assert not jobstore.succeed(session, job_id, "someone else", {"late": True})
    assert {blob.key for blob in store.list("results/")} == before


def test_delete_removes_the_blobs_after_the_commit_and_a_rollback_keeps_them(
    user_id: int, store: BlobStore
) -> None:
    job_id = succeeded_job(user_id)
    row = result_row(job_id)
    assert row is not None and row.blob_key is not None
    upload = upload_key(sha256_hex(IRIS))
    assert upload is not None
    with pytest.raises(Rollback), session_scope() as session:
        jobstore.delete_job(session, job_id)
        raise Rollback
    assert store.exists(row.blob_key) and store.exists(upload)
    with session_scope() as session:
        jobstore.delete_job(session, job_id)
        session.flush()
        assert store.exists(row.blob_key) and store.exists(upload)  # not before the commit
    assert not store.exists(row.blob_key) and not store.exists(upload)


def test_an_upload_shared_with_another_job_keeps_its_blob(user_id: int, store: BlobStore) -> None:
    first, second = succeeded_job(user_id), make_job(user_id)
    upload = upload_key(sha256_hex(IRIS))
    assert upload is not None
    with session_scope() as session:
        jobstore.delete_job(session, first)
    assert store.exists(upload)
    with session_scope() as session:
        assert jobstore.cancel(session, second)  # a cancel releases the upload at once
    assert not store.exists(upload)


def test_working_data_blobs_go_when_the_job_finishes(user_id: int, store: BlobStore) -> None:
    job_id = running_job(
        user_id, params={**TINY_GBDT, "interpretability": "shap"}
    )  # only explanations fan out
    with session_scope() as session:
        chunks.create_chunks(session, job_id, "shap", [(0, 10), (10, 20)])
        chunks.store_prepared(session, job_id, {"model": "fitted"})
    for _ in range(2):
        with session_scope() as session:
            chunk = chunks.claim_next(session, job_id, stale_after=300)
            assert chunk is not None
            chunks.finish(session, chunk, shap_part(chunk.start, chunk.stop))
    with session_scope() as session:
        keys = [*session.scalars(select(JobChunk.blob_key)), *session.scalars(select(JobPrepared.blob_key))]
        assert len(keys) == 3 and all(key is not None and store.exists(key) for key in keys)
        assert [part.span for part in chunks.load_parts(session, job_id, "shap")] == [(0, 10), (10, 20)]
        assert chunks.load_prepared(session, job_id) == {"model": "fitted"}
    with session_scope() as session:
        assert jobstore.succeed(session, job_id, "w", {"ok": True})
    assert not any(store.exists(key) for key in keys if key is not None)
    with session_scope() as session:
        assert session.scalars(select(JobChunk.blob_key)).all() == [None, None]


def test_a_chunk_finished_twice_keeps_only_the_later_part(user_id: int, store: BlobStore) -> None:
    job_id = running_job(user_id)
    with session_scope() as session:
        chunks.create_chunks(session, job_id, "shap", [(0, 10)])
    with session_scope() as session:
        chunk = chunks.claim_next(session, job_id, stale_after=300)
        assert chunk is not None
        chunks.finish(session, chunk, shap_part(0, 10, fill=1.0))
    with session_scope() as session:
        first = session.scalar(select(JobChunk.blob_key))
        chunks.finish(session, chunk, shap_part(0, 10, fill=2.0))  # a reclaimed chunk's slow first worker
    assert first is not None and not store.exists(first)
    with session_scope() as session:
        assert float(chunks.load_parts(session, job_id, "shap")[0].values[0, 0]) == 2.0


def test_retention_removes_the_blobs_of_expired_jobs(user_id: int, store: BlobStore) -> None:
    job_id = succeeded_job(user_id)
    set_job(job_id, finished_at=ago(40 * 86400))
    row = result_row(job_id)
    upload = upload_key(sha256_hex(IRIS))
    assert row is not None and row.blob_key is not None and upload is not None
    with session_scope() as session:
        assert purge_expired(session, 30) == {"jobs": 1, "results": 1, "datasets": 1, "models": 0}
    assert not store.exists(row.blob_key) and not store.exists(upload)


def test_orphan_blobs_are_swept_once_old_enough(user_id: int, store: BlobStore) -> None:
    job_id = succeeded_job(user_id)
    row = result_row(job_id)
    assert row is not None and row.blob_key is not None
    store.put_bytes("results/crashed/before-its-commit.json.gz", b"orphan")
    store.put_bytes("prepared/crashed/model.pickle", b"orphan")
    with session_scope() as session:
        assert sweep_orphans(session, store, 30) == 0  # young: its transaction may still commit
        swept = sweep_orphans(session, store, 30, now=utcnow() + timedelta(hours=1))
    assert swept >= 2
    assert not store.exists("results/crashed/before-its-commit.json.gz")
    assert not store.exists("prepared/crashed/model.pickle")
    assert store.exists(row.blob_key) and store.exists(upload_key(sha256_hex(IRIS)) or "?")


def test_a_store_down_after_the_commit_leaves_an_orphan_for_the_sweep(
    user_id: int, store: BlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = succeeded_job(user_id)
    row = result_row(job_id)
    assert row is not None and row.blob_key is not None

    def store_down(self: BlobStore, key: str) -> None:
        raise ConnectionError("the store is unreachable")

    with monkeypatch.context() as patch:
        patch.setattr(BlobStore, "delete", store_down)
        with session_scope() as session:
            jobstore.delete_job(session, job_id)  # the commit stands; the blob stays behind
    assert result_row(job_id) is None and store.exists(row.blob_key)
    with session_scope() as session:
        sweep_orphans(session, store, 30, now=utcnow() + timedelta(hours=1))
    assert not store.exists(row.blob_key)


def parquet_job(user_id: int) -> tuple[str, JobResult]:
    """A succeeded job whose result was stored with its Parquet form (as the worker does for large ones)."""
    job_id = running_job(user_id)
    with session_scope() as session:
        assert jobstore.succeed(session, job_id, "w", {"y_pred": [1.0, 2.0]}, parquet=b"PAR1 form PAR1")
    row = result_row(job_id)
    assert row is not None and row.parquet_key is not None and row.blob_key is not None
    return job_id, row


def test_a_stored_parquet_form_is_a_blob_beside_the_json_and_is_not_charged(
    user_id: int, store: BlobStore
) -> None:
    job_id, row = parquet_job(user_id)
    assert row.parquet_key is not None and row.parquet_key.startswith(f"results/{job_id}/")
    assert store.get_bytes(row.parquet_key) == b"PAR1 form PAR1" and row.parquet_bytes == 14
    with session_scope() as session:
        stream = jobstore.open_result_parquet(session, job_id)
        assert stream is not None and stream.read() == b"PAR1 form PAR1"
        stream.close()
        assert usage(session, user_id).results_bytes == row.stored_bytes  # the service's copy, not charged
        sweep_orphans(session, store, 30, now=utcnow() + timedelta(hours=1))
    assert store.exists(row.parquet_key) and store.exists(str(row.blob_key))  # referenced: kept
    with session_scope() as session:
        jobstore.delete_job(session, job_id)
    assert not store.exists(row.parquet_key) and not store.exists(str(row.blob_key))


def test_retention_removes_a_stored_parquet_form(user_id: int, store: BlobStore) -> None:
    job_id, row = parquet_job(user_id)
    set_job(job_id, finished_at=ago(40 * 86400))
    with session_scope() as session:
        assert purge_expired(session, 30)["results"] == 1
    assert not store.exists(str(row.parquet_key)) and not store.exists(str(row.blob_key))


def test_a_result_without_a_parquet_form_has_none_to_open(user_id: int) -> None:
    job_id = succeeded_job(user_id)
    row = result_row(job_id)
    assert row is not None and (row.parquet_key, row.parquet_bytes) == (None, 0)
    with session_scope() as session:
        assert jobstore.open_result_parquet(session, job_id) is None


def test_a_result_stored_too_late_leaves_no_blob(user_id: int, store: BlobStore) -> None:
    """The job is no longer this worker's (cancelled, requeued): neither form is kept."""
    job_id = running_job(user_id)
    with session_scope() as session:
        assert not jobstore.succeed(session, job_id, "another", {"y_pred": [1.0]}, parquet=b"PAR1")
    assert [blob.key for blob in store.list(f"results/{job_id}/")] == []
