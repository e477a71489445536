"""A predict job's result of many rows, computed by the worker's own function in batches of 40 rows and
kept only as its Parquet form (one row group a batch), served in every format from that form: the JSON
written from it is byte for byte the one-batch result's, Arrow, Parquet and NPZ hold the same numbers,
the rows a threshold leaves unexplained are null, `wait=` answers with it, and deleting the job deletes
its blob. A result of fewer rows keeps its stored JSON, and its Arrow form comes from its Parquet form."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from shared.blobs.store import current_store, scratch_directory
from shared.db import session_scope
from shared.dispatch.queue import RUN_JOB_TASK
from shared.ml.model.kept import KeptModel
from shared.ml.model.predict.scoring import read_batches, score
from shared.ml.model.predict.spec import PredictSpec
from shared.results.formats import to_result
from shared.settings import get_settings
from shared.store.jobstore import claim
from shared.store.uploads import upload_path
from shared.tables import Job, JobResult
from tests.canonical import canonical
from tests.inprocess.api.test_routes_predict import fitted, new_rows, post  # noqa: F401
from tests.inprocess.factories import Account
from tests.inprocess.recorder import PublishRecorder

BATCH_ROWS, STREAMED_FROM = 40, 100  # iris's 150 new rows: 4 batches, kept only as Parquet


@pytest.fixture(autouse=True)
def small_batches() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FITEXPLAIN_PREDICT_BATCH_ROWS", str(BATCH_ROWS))
        patch.setenv("FITEXPLAIN_RESULT_PARQUET_MIN_ROWS", str(STREAMED_FROM))
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()  # later tests read the package's settings again


def compute(job_id: str) -> str:
    """The worker's computation of a predict job, in this process (which has this test's settings)."""
    from worker.tasks import compute_predict

    with session_scope() as session:
        claimed = claim(session, job_id, worker="w", stale_after=60, max_attempts=3)
        assert claimed.job is not None
        spec = PredictSpec.from_json(claimed.job.spec)
        path = upload_path(session, claimed.job.dataset_sha256)
    assert path is not None
    with scratch_directory(get_settings().home, "job-") as scratch:
        return compute_predict(job_id, "w", 1, path, spec, scratch, lambda *_: None)


def one_batch_json(kept: KeptModel, body: bytes, job_id: str) -> bytes:
    """The job's result scored in one batch, as the worker stores a result's JSON."""
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        spec = PredictSpec.from_json(job.spec)
    result = score(
        kept,
        read_batches(canonical(body), batch_rows=10_000),
        spec.options,
        extra_columns=spec.extra_columns,
        arrays=True,
    )
    return orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)


def result_row(job_id: str) -> JobResult:
    with session_scope() as session:
        row = session.get(JobResult, job_id)
        assert row is not None
        session.expunge(row)
        return row


def download(client: TestClient, account: Account, job_id: str, fmt: str, **headers: str) -> Any:
    answer = client.get(
        f"/jobs/{job_id}/result", params={"format": fmt}, headers={**account.headers, **headers}
    )
    assert answer.status_code == 200, answer.text
    return answer


SHAP = {"interpretability": "shap", "top_n": 2, "threshold": 0.5, "id_column": "row"}


def test_a_result_of_many_rows_is_kept_as_parquet_and_sent_in_every_format(
    client: TestClient,
    alice: Account,
    fitted: tuple[str, KeptModel],  # noqa: F811
) -> None:
    source, kept = fitted
    body = new_rows(row=[f"r{i}" for i in range(150)])
    answer = post(client, alice, source, body, **SHAP)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    assert compute(job_id) == "succeeded"

    row = result_row(job_id)
    assert not row.json_stored and row.blob_key == row.parquet_key and row.sha256 is None
    assert row.stored_bytes == row.parquet_bytes == current_store().size(row.parquet_key)
    expected = one_batch_json(kept, body, job_id)
    result = orjson.loads(expected)
    assert 0 < len(result["explained_rows"]) < 150

    sent = download(client, alice, job_id, "json", **{"Accept-Encoding": "gzip"})
    assert sent.headers["content-type"] == "application/json" and "content-encoding" not in sent.headers
    assert sent.content == expected
    parquet = download(client, alice, job_id, "parquet")
    assert parquet.headers["content-disposition"] == f'attachment; filename="{job_id}.parquet"'
    assert pq.ParquetFile(io.BytesIO(parquet.content)).metadata.num_row_groups == 4
    assert to_result(parquet.content, "parquet") == result
    for fmt in ("arrow", "arrow-file", "npz"):
        assert to_result(download(client, alice, job_id, fmt).content, fmt) == result, fmt

    table = pq.read_table(io.BytesIO(parquet.content))
    explained = table.column("explained").to_numpy(zero_copy_only=False)
    assert np.flatnonzero(explained).tolist() == result["explained_rows"]
    for name in table.column_names:
        if name.startswith(("shap_", "base_value", "reason_")):
            nulls = table.column(name).is_null().to_numpy(zero_copy_only=False)
            assert nulls.tolist() == (~explained).tolist(), name  # null where not explained, never 0

    assert client.delete(f"/jobs/{job_id}", headers=alice.headers).status_code == 204
    assert not current_store().exists(row.parquet_key)


def test_wait_answers_with_the_json_written_from_the_parquet_form(
    client: TestClient,
    alice: Account,
    fitted: tuple[str, KeptModel],  # noqa: F811
    published: PublishRecorder,
) -> None:
    source, kept = fitted
    published.deliver[RUN_JOB_TASK] = compute
    body = new_rows(row=[f"r{i}" for i in range(150)])
    answer = post(client, alice, source, body, wait=30, **SHAP)
    assert answer.status_code == 200, answer.text
    (job_id,) = published.job_ids()
    assert answer.content == one_batch_json(kept, body, job_id)


def test_a_result_of_few_rows_keeps_its_json_and_its_arrow_form_is_its_parquet_forms(
    client: TestClient,
    alice: Account,
    fitted: tuple[str, KeptModel],  # noqa: F811
) -> None:
    source, kept = fitted
    body = new_rows().split(b"\n")
    few = b"\n".join(body[:61]) + b"\n"  # 60 rows: 2 batches
    answer = post(client, alice, source, few, interpretability="shap", threshold=0.5)
    job_id = answer.json()["id"]
    assert compute(job_id) == "succeeded"
    row = result_row(job_id)
    assert row.json_stored and row.parquet_key is not None and row.blob_key != row.parquet_key
    expected = one_batch_json(kept, few, job_id)
    assert download(client, alice, job_id, "json", **{"Accept-Encoding": "identity"}).content == expected
    result = orjson.loads(expected)
    parquet = download(client, alice, job_id, "parquet").content
    arrow = download(client, alice, job_id, "arrow").content
    assert to_result(parquet, "parquet") == to_result(arrow, "arrow") == result
    reader = pq.read_schema(io.BytesIO(parquet))
    assert reader.names[:4] == ["y_pred", "proba_0", "proba_1", "proba_2"]
    assert orjson.loads(reader.metadata[b"fitexplain"])["layout"] == "fitexplain-predict"


def test_the_dashboard_lists_the_reasons_of_a_result_kept_only_as_parquet(
    client: TestClient,
    alice: Account,
    fitted: tuple[str, KeptModel],  # noqa: F811
) -> None:
    source, _ = fitted
    answer = post(client, alice, source, new_rows(), interpretability="shap", threshold=0.5)
    job_id = answer.json()["id"]
    assert compute(job_id) == "succeeded"
    assert client.post("/dashboard/sign-in", data={"token": alice.token}).status_code in (200, 303)
    page = client.get(f"/dashboard/jobs/{job_id}")
    assert page.status_code == 200 and "<h2>Reasons</h2>" in page.text
    first = orjson.loads(download(client, alice, job_id, "json").content)["reasons"][0][0]
    assert f"{first['feature']} = {first['value']}" in page.text


def test_the_worker_task_leaves_no_file_behind(
    alice: Account,
    client: TestClient,
    fitted: tuple[str, KeptModel],  # noqa: F811
    run_job: Callable[[str], str],
) -> None:
    """The Celery task runs the computation in its killable child, in a directory the task removes."""
    source, _ = fitted
    answer = post(client, alice, source, new_rows(), interpretability="shap")
    assert run_job(answer.json()["id"]) == "succeeded"
    assert list((get_settings().home / "tmp").glob("job-*")) == []
