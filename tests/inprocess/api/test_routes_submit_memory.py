"""A job over one worker's memory bound: refused (422 `over_memory`, the bound named) without a Dask
cluster, accepted for the cluster when FITEXPLAIN_DASK_SCHEDULER names one and the job is one it runs;
the worker then sends it there (`worker.cluster`), by the same rule. The API never imports Dask."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from shared.db import session_scope
from shared.ml.spec import JobSpec
from shared.settings import get_settings
from shared.store.jobstore import claim
from shared.tables import Upload
from tests.inprocess.api.test_routes_submit import job_count, post
from tests.inprocess.factories import Account, load_job

# 6,000 rows x 4 features: about 1.7 MB by the estimate (rows x (features + 2) x 8 bytes x 6 copies)
ROWS = 6_000
BOUND_MB = 1
XGBOOST = {"model_type": "xgboost", "n_estimators": 5, "interpretability": "shap"}


def wide_csv() -> bytes:
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(size=(ROWS, 4)), 3)
    lines = ["a,b,c,d,target"] + [f"{a},{b},{c},{d},{a + b:.3f}" for a, b, c, d in values]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def bounded(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Workers bounded to 1 MB of a job's data (the package's settings again after the test)."""
    monkeypatch.setenv("FITEXPLAIN_WORKER_MAX_MEMORY_MB", str(BOUND_MB))
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.delenv("FITEXPLAIN_WORKER_MAX_MEMORY_MB")
    monkeypatch.delenv("FITEXPLAIN_DASK_SCHEDULER", raising=False)
    get_settings.cache_clear()


def with_cluster(bounded: pytest.MonkeyPatch) -> None:
    bounded.setenv("FITEXPLAIN_DASK_SCHEDULER", "tcp://127.0.0.1:1")  # the API never connects to it
    get_settings.cache_clear()


def test_without_a_cluster_a_job_over_the_bound_is_refused_naming_it(
    client: TestClient, alice: Account, bounded: pytest.MonkeyPatch
) -> None:
    response = post(client, "gbdtregression", alice, wide_csv(), **XGBOOST)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "over_memory"
    assert f"{BOUND_MB} MB (worker_max_memory_mb)" in body["detail"] and body["limit"] == BOUND_MB
    assert job_count() == 0


def test_with_a_cluster_an_xgboost_job_over_the_bound_is_accepted_and_sent_there(
    client: TestClient, alice: Account, bounded: pytest.MonkeyPatch
) -> None:
    from worker.cluster import cluster_source

    with_cluster(bounded)
    response = post(client, "gbdtregression", alice, wide_csv(), **XGBOOST)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    with session_scope() as session:
        claimed = claim(session, job_id, worker="w", stale_after=60, max_attempts=3)
        assert claimed.job is not None
        upload = session.get(Upload, claimed.job.dataset_sha256)
        source = cluster_source(upload, JobSpec.from_json(claimed.job.spec), get_settings())
    assert upload is not None and source is not None
    assert source.url.startswith("file://") and source.url.endswith(upload.blob_key)


def test_a_cluster_that_does_not_answer_fails_the_job_naming_it(
    client: TestClient, alice: Account, bounded: pytest.MonkeyPatch
) -> None:
    from worker import cluster
    from worker.tasks import compute_job

    with_cluster(bounded)  # nothing listens on its port
    bounded.setattr(cluster, "CONNECT_SECONDS", 0.5)
    response = post(client, "gbdtregression", alice, wide_csv(), **XGBOOST)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    with session_scope() as session:
        claimed = claim(session, job_id, worker="w", stale_after=60, max_attempts=3)
        assert claimed.job is not None
        spec, attempt = JobSpec.from_json(claimed.job.spec), claimed.job.attempts
        source = cluster.cluster_source(session.get(Upload, claimed.job.dataset_sha256), spec, get_settings())
    assert source is not None
    assert compute_job(job_id, "w", attempt, source, spec, "small", lambda *_: None) == "failed"
    job = load_job(job_id)
    assert job is not None and job.error_code == "cluster_unavailable"
    assert "FITEXPLAIN_DASK_SCHEDULER" in (job.error_message or "")


def test_with_a_cluster_a_job_it_does_not_run_is_refused_with_the_reason(
    client: TestClient, alice: Account, bounded: pytest.MonkeyPatch
) -> None:
    with_cluster(bounded)
    response = post(client, "gbdtregression", alice, wide_csv(), model_type="lightgbm")
    assert response.status_code == 422, response.text
    # refused while the upload is read: a job the cluster does not take is bounded by one worker
    assert response.json()["code"] == "over_memory"
    assert f"{BOUND_MB} MB (worker_max_memory_mb)" in response.json()["detail"]
    assert job_count() == 0


def test_a_job_within_the_bound_stays_on_its_worker_with_a_cluster(
    client: TestClient, alice: Account, bounded: pytest.MonkeyPatch
) -> None:
    from worker.cluster import cluster_source

    with_cluster(bounded)
    response = post(client, "gbdtregression", alice, **XGBOOST)  # iris: a few KB
    assert response.status_code == 202, response.text
    with session_scope() as session:
        job = load_job(response.json()["id"])
        assert job is not None
        upload = session.get(Upload, job.dataset_sha256)
        assert cluster_source(upload, JobSpec.from_json(job.spec), get_settings()) is None


@pytest.mark.process
def test_the_api_imports_neither_dask_nor_the_model_libraries() -> None:
    """An API process starts without the model libraries (scikit-learn alone is a second of CPU): they
    load where a job is fitted, or in the API at its first request that needs them."""
    libraries = ("dask", "distributed", "sklearn", "scipy", "xgboost", "lightgbm", "catboost", "shap")
    code = f"import sys, api.main; print(sorted(m for m in sys.modules if m.split('.')[0] in {libraries!r}))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"
