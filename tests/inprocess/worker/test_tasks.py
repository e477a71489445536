"""`run_job` (worker/tasks.py) called in this process on a job in the database, with tiny data: the
worker's side of the job store, without Celery or a worker process."""

from __future__ import annotations

import logging
from collections.abc import Callable

import httpx
import pytest
from fastapi.testclient import TestClient

from shared.db import session_scope
from shared.dispatch.queue import RUN_JOB_TASK
from shared.store.jobstore import cancel, result_body
from tests.inprocess.factories import (
    TINY_GBDT,
    Account,
    events,
    load_job,
    make_job,
    stored_result,
    webhook_outbox,
)
from tests.inprocess.recorder import PublishRecorder
from tests.stack import DATA

IRIS_FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
PERMUTATION = {**TINY_GBDT, "interpretability": "permutation"}


def test_a_job_runs_to_a_stored_result(alice: Account, run_job: Callable[[str], str]) -> None:
    job_id = make_job(alice.id, params=PERMUTATION)
    assert run_job(job_id) == "succeeded"
    job = load_job(job_id)
    assert job is not None
    assert (job.status, job.progress, job.attempts, job.error_code) == ("succeeded", 1.0, 1, None)
    assert events(job_id) == ["submitted", "started", "succeeded"]
    result = stored_result(job_id)
    assert 0.8 <= result["accuracy"] <= 1.0
    interpretability = result["interpretability"]
    assert interpretability["method"] == "permutation"
    assert interpretability["feature_names"] == IRIS_FEATURES
    assert len(interpretability["importances_mean"]) == len(IRIS_FEATURES)


def test_a_bad_file_fails_with_its_code_and_column(alice: Account, run_job: Callable[[str], str]) -> None:
    """A file the upload's checks accept but its task cannot use: text targets for a regression."""
    bad = (DATA / "malformed" / "regression_text_target.csv").read_bytes()
    job_id = make_job(alice.id, endpoint="gbdtregression", csv=bad)
    assert run_job(job_id) == "failed"
    job = load_job(job_id)
    assert job is not None
    assert (job.status, job.error_code) == ("failed", "non_numeric")
    assert "Column 'target'" in (job.error_message or "") and "line 2" in (job.error_message or "")
    assert events(job_id)[-1] == "failed"


def test_a_redelivered_message_never_runs_a_finished_job_again(
    alice: Account, run_job: Callable[[str], str]
) -> None:
    job_id = make_job(alice.id)
    assert run_job(job_id) == "succeeded"
    first = stored_result(job_id)
    assert run_job(job_id) == "already succeeded"
    assert stored_result(job_id) == first
    assert events(job_id).count("started") == 1


def test_a_job_cancelled_before_its_turn_is_not_run(alice: Account, run_job: Callable[[str], str]) -> None:
    job_id = make_job(alice.id)
    with session_scope() as session:
        cancel(session, job_id)
    assert run_job(job_id) == "already cancelled"
    job = load_job(job_id)
    assert job is not None and (job.status, job.attempts) == ("cancelled", 0)


def test_a_finished_job_with_a_webhook_writes_its_delivery(
    alice: Account, run_job: Callable[[str], str]
) -> None:
    job_id = make_job(alice.id, params={**TINY_GBDT, "webhook_url": "https://example.com/hook"})
    assert run_job(job_id) == "succeeded"
    assert webhook_outbox(job_id) == ["job.succeeded"]


@pytest.mark.parametrize(
    ("path", "wait"), [("/gbdtclassification", {"wait": "30"}), ("/techtonique/gbdtclassification", {})]
)
def test_waiting_requests_answer_the_result_itself(
    client: TestClient,
    alice: Account,
    run_job: Callable[[str], str],
    published: PublishRecorder,
    path: str,
    wait: dict[str, str],
) -> None:
    """With an eager worker behind the recorder, `wait` and the /techtonique mount answer 200 with the
    result JSON, as techtonique.net does."""
    published.deliver[RUN_JOB_TASK] = run_job
    response = client.post(
        path,
        params={"model_type": "lightgbm", "n_estimators": "5", "interpretability": "permutation", **wait},
        files={"file": ("iris.csv", (DATA / "iris_dataset2.csv").read_bytes(), "text/csv")},
        headers=alice.headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["interpretability"]["feature_names"] == IRIS_FEATURES
    assert len(published.job_ids()) == 1


def submit_a_job_cancelled_at_once(
    client: TestClient, alice: Account, published: PublishRecorder, path: str, **params: object
) -> httpx.Response:
    """Submit iris to `path` with an eager worker that cancels the job instead of running it."""

    def cancelled_at_once(job_id: str) -> None:
        with session_scope() as session:
            cancel(session, job_id)

    published.deliver[RUN_JOB_TASK] = cancelled_at_once
    return client.post(
        path,
        params=params,
        files={"file": ("iris.csv", (DATA / "iris_dataset2.csv").read_bytes(), "text/csv")},
        headers=alice.headers,
    )


def test_waiting_for_a_job_that_ends_without_a_result_answers_why(
    client: TestClient, alice: Account, published: PublishRecorder
) -> None:
    response = submit_a_job_cancelled_at_once(client, alice, published, "/techtonique/gbdtclassification")
    assert response.status_code == 409
    body = response.json()
    assert body["detail"] == "The job was cancelled." and body["code"] is None
    assert body["job_id"] == published.job_ids()[0]


def test_waiting_on_the_own_endpoint_answers_the_error_body_with_the_jobs_code(
    client: TestClient, alice: Account, published: PublishRecorder
) -> None:
    response = submit_a_job_cancelled_at_once(client, alice, published, "/gbdtclassification", wait=30)
    assert response.status_code == 409
    assert response.json() == {
        "code": "job_cancelled",
        "detail": "The job was cancelled.",
        "job_id": published.job_ids()[0],
    }


def test_a_computation_whose_job_is_cancelled_under_it_stops_without_an_error(
    alice: Account, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelling a running job releases its upload; a computation still about to read the file then
    fails, which is the cancel taking effect, not an error of the job."""
    from shared.ml.spec import JobSpec
    from shared.store.jobstore import claim
    from shared.store.uploads import upload_path
    from worker.tasks import compute_job

    job_id = make_job(alice.id)
    with session_scope() as session:
        claimed = claim(session, job_id, worker="w", stale_after=60, max_attempts=3)
        assert claimed.job is not None
        spec = JobSpec.from_json(claimed.job.spec)
        path = upload_path(session, claimed.job.dataset_sha256)
    assert path is not None and path.exists()
    with session_scope() as session:
        assert cancel(session, job_id)
    assert not path.exists()  # released with the cancel's commit
    with caplog.at_level(logging.INFO, logger="fitexplain.worker"):
        assert compute_job(job_id, "w", 1, path, spec, "small", lambda *_: None) == "superseded"
    assert f"job {job_id} stopped: no longer ours" in caplog.text  # what the fault tests wait for
    assert "crashed" not in caplog.text
    job = load_job(job_id)
    assert job is not None and (job.status, job.error_code) == ("cancelled", None)
    assert "failed" not in events(job_id)


@pytest.mark.parametrize(("min_rows", "kept"), [(45, True), (46, False)])
def test_the_worker_stores_the_parquet_form_of_results_with_enough_rows(
    alice: Account, monkeypatch: pytest.MonkeyPatch, min_rows: int, kept: bool
) -> None:
    """Iris has 45 test rows: its result gets a stored Parquet form from 45 rows on, equal to the one the
    API would convert from the stored JSON."""
    from shared.ml.ingest.dataset import with_test_features
    from shared.ml.spec import JobSpec
    from shared.results import formats as results
    from shared.settings import get_settings
    from shared.store.jobstore import claim, open_result_parquet
    from shared.store.uploads import upload_path
    from worker.tasks import compute_job

    monkeypatch.setenv("FITEXPLAIN_RESULT_PARQUET_MIN_ROWS", str(min_rows))
    get_settings.cache_clear()
    job_id = make_job(alice.id, params={**TINY_GBDT, "interpretability": "shap"})
    with session_scope() as session:
        claimed = claim(session, job_id, worker="w", stale_after=60, max_attempts=3)
        assert claimed.job is not None
        spec = JobSpec.from_json(claimed.job.spec)
        path = upload_path(session, claimed.job.dataset_sha256)
    assert path is not None
    stream = None
    try:
        assert compute_job(job_id, "w", 1, path, spec, "small", lambda *_: None) == "succeeded"
        with session_scope() as session:
            stream = open_result_parquet(session, job_id)
            body = result_body(session, job_id)
        stored = stream.read() if stream is not None else None
    finally:
        if stream is not None:
            stream.close()
        monkeypatch.delenv("FITEXPLAIN_RESULT_PARQUET_MIN_ROWS")
        get_settings.cache_clear()  # later tests read the package's settings again
    assert body is not None and (stored is not None) == kept
    if stored is not None:  # the result's form, with its test rows' feature values as uploaded
        with_features = with_test_features(results.load_stored(body), path, spec)
        assert "X_test" in with_features and stored == results.encode(with_features, "parquet")
