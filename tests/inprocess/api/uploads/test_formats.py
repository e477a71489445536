"""Uploads in every accepted format through the submit route (TestClient, a real Postgres): the same
data gives the same stored Parquet and the same result; a broken file is a 4xx that leaves nothing
behind, neither a `datasets` row nor a file under FITEXPLAIN_HOME/tmp."""

from __future__ import annotations

import gzip
import hashlib
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from shared.blobs.store import blob_store
from shared.db import session_scope
from shared.settings import Settings
from shared.store.uploads import upload_content
from shared.tables import Job, Upload
from tests.inprocess.factories import TINY_GBDT, Account, stored_result
from tests.stack import DATA

IRIS_CSV = (DATA / "iris_dataset2.csv").read_bytes()
IRIS = pd.read_csv(io.BytesIO(IRIS_CSV), dtype={"target": str, "training_index": str})


def arrow_bytes(frame: pd.DataFrame, stream: bool) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    with (pa.ipc.new_stream if stream else pa.ipc.new_file)(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    frame.to_parquet(sink, index=False)
    return sink.getvalue()


# (file name, content type, content) of the same iris data in each format
UPLOADS = {
    "csv": ("data.csv", "text/csv", IRIS_CSV),
    "csv.gz": ("data.csv.gz", "application/gzip", gzip.compress(IRIS_CSV)),
    "parquet": ("data.parquet", "application/vnd.apache.parquet", parquet_bytes(IRIS)),
    "arrow": ("data.arrow", "application/vnd.apache.arrow.file", arrow_bytes(IRIS, stream=False)),
    "arrow-stream": ("data.arrows", "application/vnd.apache.arrow.stream", arrow_bytes(IRIS, stream=True)),
}


def post(client: TestClient, account: Account, name: str, content_type: str, content: bytes) -> Response:
    params = {key: str(value) for key, value in {**TINY_GBDT, "interpretability": "permutation"}.items()}
    return client.post(
        "/gbdtclassification",
        params=params,
        files={"file": (name, content, content_type)},
        headers=account.headers,
    )


def count(table: type) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def leftovers(settings: Settings) -> list[Path]:
    tmp = settings.home / "tmp"
    return sorted(tmp.rglob("*")) if tmp.exists() else []


def upload_blobs(settings: Settings) -> set[str]:
    return {blob.key for blob in blob_store(settings).list("uploads/")}


def test_every_format_is_stored_as_parquet_and_gives_the_same_result(
    client: TestClient, alice: Account, service_settings: Settings, run_job: Callable[[str], str]
) -> None:
    results = {}
    for kind, (name, content_type, content) in UPLOADS.items():
        response = post(client, alice, name, content_type, content)
        assert response.status_code == 202, (kind, response.text)
        job_id = response.json()["id"]
        with session_scope() as session:
            job = session.get(Job, job_id)
            assert job is not None
            upload = session.get(Upload, job.dataset_sha256)
            assert upload is not None
            assert upload.blob_key.endswith(".parquet") and (upload.n_rows, upload.n_columns) == (150, 4)
            assert upload_content(session, upload.sha256)[:4] == b"PAR1"
        assert run_job(job_id) == "succeeded"
        results[kind] = stored_result(job_id)
    assert leftovers(service_settings) == []
    assert count(Upload) == len(UPLOADS)  # one stored file per distinct upload (their sha256 differ)
    first = results["csv"]
    for kind, result in results.items():
        assert result == first, kind


def test_a_format_unknown_by_name_is_read_by_its_magic_bytes(client: TestClient, alice: Account) -> None:
    content = UPLOADS["parquet"][2]
    response = post(client, alice, "upload.bin", "application/octet-stream", content)
    assert response.status_code == 202, response.text


def test_a_truncated_parquet_file_is_refused_and_leaves_nothing(
    client: TestClient, alice: Account, service_settings: Settings
) -> None:
    content = UPLOADS["parquet"][2]
    blobs_before = upload_blobs(service_settings)
    response = post(
        client, alice, "data.parquet", "application/vnd.apache.parquet", content[: len(content) // 2]
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "bad_parquet" and "Parquet" in response.json()["detail"]
    assert (count(Job), count(Upload)) == (0, 0)
    assert leftovers(service_settings) == [] and upload_blobs(service_settings) == blobs_before


def test_an_unknown_binary_is_refused_naming_the_accepted_formats(
    client: TestClient, alice: Account, service_settings: Settings
) -> None:
    blobs_before = upload_blobs(service_settings)
    response = post(client, alice, "book.xlsx", "application/octet-stream", b"PK\x03\x04" + bytes(200))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert response.json()["code"] == "unsupported_format"
    for word in ("CSV", "Parquet", "Arrow IPC", "gzip"):
        assert word in detail
    assert (count(Job), count(Upload)) == (0, 0) and leftovers(service_settings) == []
    assert upload_blobs(service_settings) == blobs_before


def test_a_bad_line_after_the_first_megabyte_is_a_422_naming_it(
    client: TestClient, alice: Account, service_settings: Settings
) -> None:
    rng = np.random.default_rng(1)
    rows = [
        ",".join(f"{value:.12f}" for value in row) + f",{i % 3}"
        for i, row in enumerate(rng.normal(size=(20_000, 4)))
    ]
    rows[17_998] = "1.5,2.5,abc,3.5,1"  # line 18000 (the header is line 1)
    content = ("\n".join(["a,b,c,d,target", *rows]) + "\n").encode()
    assert content.index(b"abc") > 1_000_000
    response = post(client, alice, "data.csv", "text/csv", content)
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["code"], body["column"]) == ("non_numeric", "c")
    assert "line 18000" in body["detail"] and "'abc'" in body["detail"]
    assert (count(Job), count(Upload)) == (0, 0) and leftovers(service_settings) == []


def test_a_large_upload_is_kept_under_the_sha256_of_the_bytes_sent(
    client: TestClient, alice: Account, service_settings: Settings
) -> None:
    """Written and hashed as it streams in (more than a flush of a megabyte), after a text field;
    the stored blob outlives the request's workspace."""
    rng = np.random.default_rng(2)
    rows = [
        ",".join(f"{value:.15f}" for value in row) + f",{i % 2}"
        for i, row in enumerate(rng.normal(size=(40_000, 4)))
    ]
    content = ("\n".join(["a,b,c,d,target", *rows]) + "\n").encode()
    assert len(content) > 2 * (1 << 20)
    params = {key: str(value) for key, value in TINY_GBDT.items()}
    response = client.post(
        "/gbdtclassification",
        params=params,
        data={"note": "a text field before the file"},
        files={"file": ("data.csv", content, "text/csv")},
        headers=alice.headers,
    )
    assert response.status_code == 202, response.text
    with session_scope() as session:
        job = session.get(Job, response.json()["id"])
        assert job is not None and job.dataset_sha256 == hashlib.sha256(content).hexdigest()
        upload = session.get(Upload, job.dataset_sha256)
        assert upload is not None and (upload.n_rows, upload.n_columns) == (40_000, 4)
        stored = upload_content(session, upload.sha256)
    assert stored[:4] == b"PAR1" and len(stored) == upload.size_bytes
    assert leftovers(service_settings) == []
