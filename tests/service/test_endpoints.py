"""The four endpoints end to end through the real stack: API, Postgres, Redis and a Celery worker."""

from __future__ import annotations

import itertools
import re
import time

import numpy as np
import pytest
from sklearn.inspection import permutation_importance

from api.endpoint_params import PARAMS_BY_ENDPOINT, job_spec
from shared.ml.pipeline import prepare
from shared.ml.spec import Limits
from tests.canonical import canonical
from tests.contract import explanation
from tests.stack import DATA, Client

pytestmark = [pytest.mark.service]

DATASET = {
    "mlclassification": "breast_cancer_dataset2.csv",
    "gbdtclassification": "breast_cancer_dataset2.csv",
    "mlregression": "boston_dataset2.csv",
    "gbdtregression": "boston_dataset2.csv",
}
METHODS = ("none", "permutation", "shap")
CASES = list(itertools.product(DATASET, METHODS))
REPORT_KEYS = {"accuracy", "macro avg", "weighted avg", "y_true", "y_pred", "proba"}
SCORE_KEYS = {
    "R² Score",
    "MAE (Mean Absolute Error)",
    "MSE (Mean Squared Error)",
    "RMSE (Root Mean Squared Error)",
    "MAPE (Mean Absolute Percentage Error)",
    "Max Error",
    "support",
}


@pytest.fixture(scope="module")
def results(alice: Client) -> dict[tuple[str, str], dict]:
    """Submit every case at once (the worker runs two at a time), then collect the results."""
    job_ids = {}
    for endpoint, method in CASES:
        response = alice.submit(endpoint, DATASET[endpoint], interpretability=method)
        assert response.status_code == 202, response.text
        assert response.headers["location"] == f"/jobs/{response.json()['id']}"
        assert response.json()["status"] == "queued"
        job_ids[endpoint, method] = response.json()["id"]
    out = {}
    for case, job_id in job_ids.items():
        job = alice.wait(job_id)
        assert job["status"] == "succeeded", job
        out[case] = alice.result(job_id)
    return out


def n_test_rows(name: str) -> int:
    import pandas as pd

    return int((pd.read_csv(DATA / name)["training_index"] == 0).sum())


@pytest.mark.parametrize(("endpoint", "method"), CASES)
def test_result_shape(results: dict, endpoint: str, method: str) -> None:
    result = results[endpoint, method]
    n = n_test_rows(DATASET[endpoint])
    assert len(result["y_true"]) == len(result["y_pred"]) == n
    if endpoint.endswith("classification"):
        assert set(result) >= REPORT_KEYS
        for label in ("0", "1"):
            assert set(result[label]) == {"precision", "recall", "f1-score", "support"}
        assert np.asarray(result["proba"]).shape == (n, 2)
        np.testing.assert_allclose(np.asarray(result["proba"]).sum(axis=1), 1.0, atol=1e-9)
    else:
        assert set(result["Score"]) == SCORE_KEYS
        assert result["Score"]["support"] == n
    if method == "none":
        assert "interpretability" not in result
    else:
        flat = result["interpretability"]  # techtonique's shape: one flat object for one method
        assert isinstance(flat, dict) and flat["method"] == method
        assert "feature_names" in flat


@pytest.mark.parametrize("endpoint", list(DATASET))
def test_permutation_equals_scikit_learn(results: dict, endpoint: str) -> None:
    """Same model, same seed, same test rows: scikit-learn's permutation_importance gives the same numbers."""
    got = explanation(results[endpoint, "permutation"], "permutation")
    params = PARAMS_BY_ENDPOINT[endpoint](interpretability="permutation")
    stored = canonical((DATA / DATASET[endpoint]).read_bytes())
    prepared = prepare(stored, job_spec(endpoint, params), Limits())
    data = prepared.dataset
    scoring = "accuracy" if endpoint.endswith("classification") else "r2"
    expected = permutation_importance(
        prepared.model, data.X_test, data.y_test, scoring=scoring, n_repeats=10, random_state=params.seed
    )
    np.testing.assert_allclose(got["importances_mean"], expected.importances_mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["importances_std"], expected.importances_std, rtol=0, atol=1e-12)
    assert got["feature_names"] == data.feature_names


@pytest.mark.parametrize("endpoint", list(DATASET))
def test_shap_adds_up_to_the_model_output(results: dict, endpoint: str) -> None:
    result = results[endpoint, "shap"]
    shap = explanation(result, "shap")
    values = np.asarray(shap["values"])
    base = np.asarray(shap["base_values"])
    n = len(result["y_true"])
    assert len(shap["feature_names"]) == values.shape[1]
    assert {"explainer", "exact", "output_space", "notes"} <= set(shap)
    if endpoint.endswith("regression"):
        assert values.shape[0] == n and shap["output_space"] == "raw"
        np.testing.assert_allclose(values.sum(axis=1) + base, result["y_pred"], rtol=1e-6, atol=1e-6)
        return
    assert values.shape == (n, values.shape[1], 2)
    totals = values.sum(axis=1) + base  # n x classes, in the stated output space
    proba = np.asarray(result["proba"])
    if shap["output_space"] == "probability":
        np.testing.assert_allclose(totals, proba, rtol=1e-6, atol=1e-6)
    else:
        assert shap["output_space"] == "log-odds"
        p1 = np.clip(proba[:, 1], 1e-12, 1 - 1e-12)
        np.testing.assert_allclose(totals[:, 1], np.log(p1 / (1 - p1)), rtol=1e-6, atol=1e-5)
    if endpoint.startswith("gbdt"):
        assert shap["explainer"] == "tree" and shap["exact"] is True


def test_same_request_same_result_bit_for_bit(results: dict, alice: Client) -> None:
    again = alice.run("mlclassification", DATASET["mlclassification"], interpretability="none")
    assert again == results["mlclassification", "none"]


@pytest.mark.parametrize("encoding", ["gzip", "identity"])
def test_wait_returns_the_result_itself(alice: Client, encoding: str) -> None:
    """The stored result, whether the answer came from the job's notification (a small result) or was
    read back, gzip-encoded or not."""
    response = alice.http.post(
        "/gbdtregression",
        params={"wait": "60"},
        files={"file": ("boston.csv", (DATA / "boston_dataset2.csv").read_bytes(), "text/csv")},
        headers={"Accept-Encoding": encoding},
    )
    assert response.status_code == 200, response.text
    assert response.headers.get("content-encoding") == (encoding if encoding == "gzip" else None)
    assert "Score" in response.json()
    newest = alice.http.get("/jobs", params={"limit": 1}).json()["items"][0]
    assert response.json() == alice.result(newest["id"])


def test_techtonique_mount_answers_with_the_result(alice: Client) -> None:
    response = alice.http.post(
        "/techtonique/gbdtclassification",
        params={"model_type": "xgboost", "interpretability": "shap"},
        files={"file": ("iris.csv", (DATA / "iris_dataset2.csv").read_bytes(), "text/csv")},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert {"0", "1", "2", "accuracy"} <= set(body)
    values = np.asarray(explanation(body, "shap")["values"])
    assert values.shape[1:] == (4, 3)


def test_list_jobs_newest_first_and_paginated(alice: Client, results: dict) -> None:
    page = alice.http.get("/jobs", params={"limit": 5}).json()
    assert page["total"] >= len(results) and len(page["items"]) == 5
    created = [item["created_at"] for item in page["items"]]
    assert created == sorted(created, reverse=True)
    second = alice.http.get("/jobs", params={"limit": 5, "offset": 5}).json()
    assert not {i["id"] for i in page["items"]} & {i["id"] for i in second["items"]}


def test_job_status_has_timestamps_and_progress(alice: Client, results: dict) -> None:
    job = alice.http.get("/jobs", params={"limit": 1, "status": "succeeded"}).json()["items"][0]
    assert job["progress"] == 1.0 and job["started_at"] and job["finished_at"]
    assert job["error"] is None


def test_delete_cancels_then_deletes(alice: Client) -> None:
    job_id = alice.submit("mlclassification", "breast_cancer_dataset2.csv", interpretability="shap").json()[
        "id"
    ]
    first = alice.http.delete(f"/jobs/{job_id}")
    assert first.status_code in (200, 204)
    if first.status_code == 200:
        assert first.json()["status"] in ("cancelled", "succeeded")
        assert alice.wait(job_id)["status"] in ("cancelled", "succeeded")
    gone = alice.http.delete(f"/jobs/{job_id}")
    for _ in range(100):  # 409 while the worker is still stopping the cancelled computation
        if gone.status_code != 409:
            break
        time.sleep(0.2)
        gone = alice.http.delete(f"/jobs/{job_id}")
    assert gone.status_code in (204, 404), gone.text
    assert alice.http.get(f"/jobs/{job_id}").status_code == 404


def test_shap_interactions_for_xgboost(alice: Client) -> None:
    result = alice.run(
        "gbdtregression",
        "boston_dataset2.csv",
        model_type="xgboost",
        interpretability="shap",
        shap_interactions="true",
    )
    shap = explanation(result, "shap")
    interactions = np.asarray(shap["interaction_values"])
    values = np.asarray(shap["values"])
    assert interactions.shape == (*values.shape, values.shape[1])
    # xgboost sums in float32: rows of the interaction matrix give the SHAP values to float32 precision
    np.testing.assert_allclose(interactions.sum(axis=2), values, rtol=0, atol=1e-5)


def test_shap_interactions_refused_where_not_exact(alice: Client) -> None:
    response = alice.submit(
        "gbdtregression", "boston_dataset2.csv", interpretability="shap", shap_interactions="true"
    )
    assert response.status_code == 422
    assert "xgboost" in response.text


def test_progress_is_reported_during_long_work(alice: Client) -> None:
    """A SHAP job of a few seconds shows intermediate progress with a message, not just 0 and 1."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(600, 8)).round(3)
    y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(int)
    split = np.r_[np.ones(300, dtype=int), np.zeros(300, dtype=int)]
    header = ",".join([*(f"x{j}" for j in range(8)), "target", "training_index"])
    lines = [",".join([*map(str, row), str(t), str(s)]) for row, t, s in zip(X, y, split, strict=True)]
    response = alice.submit("mlclassification", "\n".join([header, *lines]).encode(), interpretability="shap")
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    seen: list[tuple[float, str]] = []
    while True:
        job = alice.http.get(f"/jobs/{job_id}").json()
        seen.append((job["progress"], job["progress_message"]))
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.25)
    assert job["status"] == "succeeded", job
    intermediate = [(p, m) for p, m in seen if 0 < p < 1 and m.startswith("SHAP")]
    assert intermediate, sorted(set(seen))
    assert all(re.fullmatch(r"SHAP \d+/300 rows", m) for _, m in intermediate), intermediate
