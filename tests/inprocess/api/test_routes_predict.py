"""`POST /jobs/{id}/predict` in process: new rows checked against the model card at submit, the predict
job run by the worker's own task, its result in the fit's names; refusals store nothing."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from shared.blobs.store import current_store
from shared.db import session_scope
from shared.ml.model import codec
from shared.ml.model.kept import KeptModel
from shared.results.formats import to_result
from shared.store.jobstore import cancel
from shared.tables import Job, JobModel, StoredModel, Upload
from tests.inprocess.factories import IRIS, Account, load_job, make_job, set_job, stored_result

XGB = {"model_type": "xgboost", "n_estimators": 10, "interpretability": "none"}
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def kept_model(job_id: str) -> KeptModel:
    """The model the job's worker kept, loaded from its blob (its sha256 checked)."""
    with session_scope() as session:
        card = session.get(JobModel, job_id)
        assert card is not None and card.model_sha256 is not None
        stored = session.get(StoredModel, card.model_sha256)
        assert stored is not None
    return codec.load(current_store().get_bytes(stored.blob_key), stored.sha256)


@pytest.fixture
def fitted(alice: Account, run_job: Callable[[str], str]) -> tuple[str, KeptModel]:
    job_id = make_job(alice.id, params=XGB)
    assert run_job(job_id) == "succeeded"
    return job_id, kept_model(job_id)


def new_rows(**changes: object) -> bytes:
    frame = pd.read_csv(io.BytesIO(IRIS)).drop(columns=["target", "training_index"])
    for column, value in changes.items():
        if value is None:
            frame = frame.drop(columns=[column])
        else:
            frame[column] = value
    return frame.to_csv(index=False).encode()


def post(client: TestClient, account: Account, job_id: str, body: bytes, **params: object):  # type: ignore[no-untyped-def]
    return client.post(
        f"/jobs/{job_id}/predict", params=params, files={"file": ("new.csv", body)}, headers=account.headers
    )


def count(table: type) -> int:
    with session_scope() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def test_predict_runs_as_a_job_and_returns_the_models_own_predictions_and_shap(
    client: TestClient, alice: Account, fitted: tuple[str, KeptModel], run_job: Callable[[str], str]
) -> None:
    source, kept = fitted
    answer = post(
        client,
        alice,
        source,
        new_rows(row=[f"r{i}" for i in range(150)]),
        interpretability="shap",
        top_n=2,
        id_column="row",
    )
    assert answer.status_code == 202, answer.text
    job = answer.json()
    assert job["endpoint"] == "predict" and job["status"] == "queued" and job["model"] == "xgboost"
    assert job["links"]["model"] == f"/jobs/{source}/model"
    assert job["params"]["job"] == source
    assert run_job(job["id"]) == "succeeded"
    result = stored_result(job["id"])
    assert set(result) == {
        "y_pred",
        "proba",
        "class_labels",
        "ids",
        "interpretability",
        "explained_rows",
        "reasons",
        "unseen_categories",
        "extra_columns",
    }
    X, _ = kept.matrix(pd.read_csv(io.BytesIO(new_rows())))
    assert result["class_labels"] == [0, 1, 2]
    assert result["y_pred"] == kept.predict(X).tolist()
    np.testing.assert_array_equal(np.asarray(result["proba"]), kept.predict_proba(X))
    assert result["ids"] == [f"r{i}" for i in range(150)]
    assert result["interpretability"]["feature_names"] == FEATURES
    assert all(len(reasons) == 2 for reasons in result["reasons"])
    parquet = client.get(f"/jobs/{job['id']}/result", params={"format": "parquet"}, headers=alice.headers)
    assert parquet.status_code == 200
    assert to_result(parquet.content, "parquet")["ids"] == result["ids"]
    listed = client.get("/jobs", headers=alice.headers).json()["items"]
    assert [item["endpoint"] for item in listed] == ["predict", "gbdtclassification"]
    assert client.post("/dashboard/sign-in", data={"token": alice.token}).status_code in (200, 303)
    page = client.get(f"/dashboard/jobs/{job['id']}")
    assert page.status_code == 200
    assert f'href="/dashboard/jobs/{source}"' in page.text and f'href="/jobs/{source}/model"' in page.text
    assert "<h2>Reasons</h2>" in page.text and result["reasons"][0][0]["feature"] in page.text


def test_a_file_off_the_schema_is_refused_naming_every_column_and_nothing_is_stored(
    client: TestClient, alice: Account, fitted: tuple[str, KeptModel]
) -> None:
    source, _ = fitted
    jobs, uploads = count(Job), count(Upload)
    body = new_rows(**{"sepal length (cm)": None, "petal width (cm)": None, "sepal width (cm)": "wide"})
    answer = post(client, alice, source, body)
    assert answer.status_code == 422
    error = answer.json()
    assert error["code"] == "schema_mismatch"
    assert [(p["column"], p["problem"]) for p in error["problems"]] == [
        ("sepal length (cm)", "missing_column"),
        ("sepal width (cm)", "wrong_dtype"),
        ("petal width (cm)", "missing_column"),
    ]
    assert (count(Job), count(Upload)) == (jobs, uploads)


def test_parameters_that_do_not_suit_the_model_are_refused(
    client: TestClient, alice: Account, fitted: tuple[str, KeptModel]
) -> None:
    source, _ = fitted
    for params, named in (
        ({"return_pi": "true"}, "return_pi"),
        ({"threshold": 0.5}, "threshold"),
        ({"top_n": 2}, "top_n"),
        ({"interpretability": "shap", "threshold": 2}, "threshold"),
    ):
        answer = post(client, alice, source, new_rows(), **params)
        assert answer.status_code == 422 and named in answer.text, answer.text


def test_another_users_job_is_not_found_and_an_unfinished_or_failed_one_conflicts(
    client: TestClient, alice: Account, bob: Account, fitted: tuple[str, KeptModel]
) -> None:
    source, _ = fitted
    assert post(client, bob, source, new_rows()).status_code == 404
    queued = make_job(alice.id, params=XGB)
    answer = post(client, alice, queued, new_rows())
    assert answer.status_code == 409 and answer.json()["code"] == "job_not_finished"
    with session_scope() as session:
        cancel(session, queued)
    answer = post(client, alice, queued, new_rows())
    assert answer.status_code == 409 and answer.json()["code"] == "job_cancelled"
    failed = make_job(alice.id, params=XGB)
    set_job(failed, status="failed", error_code="model_fit_failed", error_message="no")
    answer = post(client, alice, failed, new_rows())
    assert answer.status_code == 409 and answer.json()["code"] == "job_failed"
    assert answer.json()["error_code"] == "model_fit_failed"


def test_no_crossing_row_is_a_clear_answer(
    client: TestClient, alice: Account, fitted: tuple[str, KeptModel], run_job: Callable[[str], str]
) -> None:
    source, _ = fitted
    answer = post(client, alice, source, new_rows(), interpretability="shap", threshold=1.0, below=False)
    assert answer.status_code == 202
    job_id = answer.json()["id"]
    assert run_job(job_id) == "succeeded", load_job(job_id).error_message  # type: ignore[union-attr]
    result = stored_result(job_id)
    explained = [row for row, p in enumerate(np.asarray(result["proba"]).max(axis=1)) if p >= 1.0]
    assert result["explained_rows"] == explained
    if not explained:
        assert result["reasons"] == [] and "No row crossed" in result["interpretability"]["notes"]
    job = load_job(job_id)
    assert job is not None and job.status == "succeeded"
