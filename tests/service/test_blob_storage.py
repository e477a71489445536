"""Job bytes in the blob store, through the real API and worker processes, on a local directory and on
an S3-compatible server (moto): the worker reads the upload and fanned-out parts from the store, the
result is served from it, and deletion, retention and the orphan sweep leave no blob behind."""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pandas as pd
import pytest
from sqlalchemy import Engine, func, select, update
from sqlalchemy.orm import Session

from shared.blobs.gc import sweep_orphans
from shared.blobs.store import BlobStore
from shared.db import make_engine
from shared.store.retention import purge_expired
from shared.tables import Job, JobChunk, JobResult, Upload, utcnow
from tests.stack import DATA, Client, Stack

pytestmark = [pytest.mark.service]

IRIS = (DATA / "iris_dataset2.csv").read_bytes()


def variant(i: int) -> bytes:
    """A distinct CSV (its own sha256) of iris's shape."""
    return IRIS.replace(b"sepal length (cm)", f"sepal length {i:05d}".encode(), 1)


@pytest.fixture(scope="module", params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A stack storing its bytes in a local directory, or in a bucket of a local S3 server."""
    env = {
        # Fan iris's 45 test rows out in chunks: parts and the prepared model go through the store.
        "FITEXPLAIN_FANOUT_MIN_ROWS": "20",
        "FITEXPLAIN_FANOUT_CHUNK_ROWS": "10",
    }
    if request.param == "s3":
        server = request.getfixturevalue("s3_server")
        env.update(server.env(server.new_bucket()))
    stack = Stack(tmp_path_factory.mktemp(f"blobs-{request.param}"), extra_env=env).setup()
    stack.start_worker(concurrency=2)  # two pool processes: a job fans out only when another can help
    stack.start_api()
    stack.wait_for_workers(2)
    with stack.as_this_process():  # retention and the sweep below run here, on the stack's store
        yield stack
    stack.stop()


@pytest.fixture(scope="module")
def engine(storage: Stack) -> Iterator[Engine]:
    made = make_engine(storage.database_url)
    yield made
    made.dispose()


@pytest.fixture(scope="module")
def blobs(storage: Stack) -> BlobStore:
    return storage.blob_store()


def finished_job(stack: Stack, client: Client, content: bytes, interpretability: str = "none") -> str:
    response = client.submit("gbdtclassification", content, interpretability=interpretability)
    assert response.status_code == 202, response.text
    job_id = str(response.json()["id"])
    assert client.wait(job_id)["status"] == "succeeded"
    return job_id


def keys_of(engine: Engine, job_id: str) -> tuple[str, str]:
    """(result blob, upload blob) of a job."""
    with Session(engine) as session:
        result = session.scalar(select(JobResult.blob_key).where(JobResult.job_id == job_id))
        upload = session.scalar(
            select(Upload.blob_key).join(Job, Job.dataset_sha256 == Upload.sha256).where(Job.id == job_id)
        )
    assert result is not None and upload is not None
    return result, upload


def test_the_result_is_served_from_its_blob_and_working_data_is_gone(
    storage: Stack, engine: Engine, blobs: BlobStore
) -> None:
    ann = Client(storage.url, storage.token("ann"))
    job_id = finished_job(storage, ann, variant(1), interpretability="shap")
    result_key, upload_key = keys_of(engine, job_id)
    stored = blobs.get_bytes(result_key)
    with Session(engine) as session:
        row = session.get(JobResult, job_id)
        assert row is not None
        assert (row.stored_bytes, row.sha256) == (len(stored), hashlib.sha256(stored).hexdigest())
        assert session.scalar(select(func.count()).where(JobChunk.job_id == job_id)) >= 2  # fanned out
    stored_upload = blobs.get_bytes(upload_key)  # the canonical Parquet of the CSV sent
    sent = pd.read_csv(io.BytesIO(variant(1)))
    kept = pd.read_parquet(io.BytesIO(stored_upload))
    assert stored_upload[:4] == b"PAR1" and len(kept) == len(sent)
    for column in sent.columns:  # (the canonical file also keeps each row's line number)
        assert (kept[column].astype(float) == sent[column].astype(float)).all(), column

    as_gzip = httpx.get(
        f"{storage.url}/jobs/{job_id}/result",
        headers={**ann.http.headers, "Accept-Encoding": "gzip"},
    )
    assert as_gzip.status_code == 200 and as_gzip.headers["content-encoding"] == "gzip"
    assert as_gzip.json() == ann.result(job_id)
    assert gzip.decompress(stored) == as_gzip.content  # httpx decoded the very bytes stored

    assert [b.key for b in blobs.list(f"chunks/{job_id}/")] == []  # merged into the result, dropped
    assert [b.key for b in blobs.list(f"prepared/{job_id}/")] == []

    usage = ann.http.get("/account/usage").json()
    assert usage["results_bytes"] == len(stored) and usage["uploads_bytes"] == len(stored_upload)


def test_deleting_a_job_deletes_its_blobs(storage: Stack, engine: Engine, blobs: BlobStore) -> None:
    bob = Client(storage.url, storage.token("bob"))
    job_id = finished_job(storage, bob, variant(2))
    result_key, upload_key = keys_of(engine, job_id)
    assert blobs.exists(result_key) and blobs.exists(upload_key)
    assert bob.http.delete(f"/jobs/{job_id}").status_code == 204
    assert not blobs.exists(result_key) and not blobs.exists(upload_key)
    assert bob.http.get("/account/usage").json()["used_bytes"] == 0


def test_retention_deletes_the_blobs_of_expired_jobs(
    storage: Stack, engine: Engine, blobs: BlobStore
) -> None:
    cid = Client(storage.url, storage.token("cid"))
    job_id = finished_job(storage, cid, variant(3))
    result_key, upload_key = keys_of(engine, job_id)
    with Session(engine) as session:
        session.execute(update(Job).where(Job.id == job_id).values(finished_at=utcnow() - timedelta(days=40)))
        session.commit()
        assert purge_expired(session, retention_days=30) == {
            "jobs": 1,
            "results": 1,
            "datasets": 1,
            "models": 1,  # its kept model
        }
        session.commit()
    assert not blobs.exists(result_key) and not blobs.exists(upload_key)


def test_orphan_blobs_are_swept_and_referenced_ones_kept(
    storage: Stack, engine: Engine, blobs: BlobStore
) -> None:
    dee = Client(storage.url, storage.token("dee"))
    job_id = finished_job(storage, dee, variant(4))
    kept = keys_of(engine, job_id)
    blobs.put_bytes("results/crashed/before-commit.json.gz", b"orphan")
    with Session(engine) as session:
        assert sweep_orphans(session, blobs, 30) == 0  # too young: its transaction may still commit
        assert sweep_orphans(session, blobs, 30, now=utcnow() + timedelta(hours=1)) >= 1
    assert not blobs.exists("results/crashed/before-commit.json.gz")
    assert all(blobs.exists(key) for key in kept)
    assert dee.result(job_id)["accuracy"] is not None
