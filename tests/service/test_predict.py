"""Predict over real HTTP with a real worker, through the Python SDK and the `fitexplain` command: an xgboost
job on a table with categories scores new rows exactly as its downloaded native model does, its SHAP is
xgboost's own `pred_contribs` and adds up, its reasons are the top |contribution| features, its ids follow
id_column; a default nnetsauce regression predicts as its skops file does; another user gets 404, a
cancelled or failed job 409; a file off the schema, an unseen category with strict=true and an empty file
are refused and store nothing; a threshold no row crosses is a clear answer."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import skops.io as sio

from fitexplain_client import (
    AsyncClient,
    Client,
    ConflictError,
    JobFailedError,
    NotFoundError,
    UnprocessableEntityError,
)
from tests.faults.conftest import slow_csv, slow_params
from tests.service.test_client_cli import env, fitexplain  # noqa: F401 - `env` is a fixture
from tests.service.test_dashboard import negated
from tests.service.test_kept_models import model_matrix
from tests.stack import DATA, Stack

pytestmark = pytest.mark.service

CUSTOMERS = DATA / "tables" / "customers.csv"
XGBOOST: dict[str, Any] = {
    "target": "churned",
    "id_column": "customer_id",
    "model_type": "xgboost",
    "n_estimators": 20,
}
CONTRACT = {
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


@pytest.fixture(scope="module")
def client(stack: Stack) -> Client:
    return Client(stack.url, stack.token("predict-user"))


@pytest.fixture(scope="module")
def xgboost_job(client: Client) -> Any:
    job = client.gbdtclassification(CUSTOMERS, **XGBOOST)
    job.wait(timeout=300)
    return job


def new_rows() -> pd.DataFrame:
    """The customers as next week's rows: no target, new ids, a column the model never saw, and two
    regions never seen in training."""
    frame = pd.read_csv(CUSTOMERS).drop(columns=["churned"])
    frame["customer_id"] = [f"N{i}" for i in range(len(frame))]
    frame["note"] = "fresh"
    frame.loc[[3, 7], "region"] = "mars"
    return frame


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def stored(client: Client) -> tuple[int, int]:
    """The caller's jobs and upload bytes: what a refused request must leave as it was."""
    jobs = len(client.jobs(limit=100))
    return jobs, int(client.request("GET", "/account/usage").json()["uploads_bytes"])


def test_xgboost_predictions_and_shap_are_the_native_models_own(
    client: Client, xgboost_job: Any, tmp_path: Path
) -> None:
    import xgboost

    rows = new_rows()
    job = client.predict(
        xgboost_job, csv_bytes(rows), interpretability="shap", top_n=2, threshold=0.5, id_column="customer_id"
    )
    result = job.wait(timeout=300)
    assert set(result.json) == CONTRACT
    assert result.json["extra_columns"] == ["note"]
    assert result.json["unseen_categories"] == {"region": 2}
    assert result.json["ids"] == rows["customer_id"].tolist()

    card = xgboost_job.model()
    native = xgboost_job.download_model(tmp_path, format="native")
    booster = xgboost.XGBClassifier()
    booster.load_model(native)
    columns = {name: [None if pd.isna(v) else v for v in rows[name]] for name in rows.columns}
    known = {feature.name: feature.categories for feature in card.features}
    for name, categories in known.items():  # an unseen category goes in as the encoder treats it: missing
        if categories is not None:
            columns[name] = [value if value in categories else None for value in columns[name]]
    X = model_matrix(card, columns)
    proba = booster.predict_proba(X)
    assert result.json["class_labels"] == ["no", "yes"]
    np.testing.assert_array_equal(np.asarray(result.json["proba"], dtype=np.float64), proba)
    assert result.json["y_pred"] == [["no", "yes"][code] for code in proba.argmax(axis=1)]

    explained = [row for row in range(len(rows)) if proba[row, 1] >= 0.5]
    assert 0 < len(explained) < len(rows) and result.json["explained_rows"] == explained
    shap = result.json["interpretability"]
    assert shap["exact"] and shap["feature_names"] == [feature.name for feature in card.features]
    categorical = any(feature.categories is not None for feature in card.features)
    matrix = xgboost.DMatrix(
        X[explained],
        feature_types=booster.feature_types if categorical else None,
        enable_categorical=categorical,
    )
    contribs = booster.get_booster().predict(matrix, pred_contribs=True)
    values = np.asarray(shap["values"], dtype=np.float64)
    positive = values[..., 1] if values.ndim == 3 else values
    np.testing.assert_allclose(positive, contribs[:, :-1], atol=1e-6)
    margin = booster.get_booster().predict(matrix, output_margin=True)
    base = np.asarray(shap["base_values"], dtype=np.float64)
    base = base[..., 1] if base.ndim == 2 else base
    np.testing.assert_allclose(positive.sum(axis=1) + base, margin, atol=1e-5)

    for reasons, row, contribution in zip(result.json["reasons"], explained, positive, strict=True):
        top = np.argsort(-np.abs(contribution), kind="stable")[:2]
        assert [reason["feature"] for reason in reasons] == [shap["feature_names"][i] for i in top]
        assert [reason["contribution"] for reason in reasons] == pytest.approx(contribution[top], abs=1e-6)
        for reason in reasons:  # the value as uploaded
            raw = rows.loc[row, reason["feature"]]
            assert reason["value"] == (None if pd.isna(raw) else raw)

    explanation = result.shap_explanation(class_label="yes")
    np.testing.assert_allclose(explanation.values, contribs[:, :-1], atol=1e-6)
    assert list(explanation.feature_names) == shap["feature_names"]

    frame = result.reasons_frame()
    assert len(frame) == len(rows) and frame["id"].tolist() == rows["customer_id"].tolist()
    first = explained[0]
    assert frame.loc[first, "feature_1"] == result.json["reasons"][0][0]["feature"]
    assert frame.loc[first, "contribution_2"] == pytest.approx(result.json["reasons"][0][1]["contribution"])
    assert pd.isna(frame.loc[next(row for row in range(len(rows)) if row not in explained), "feature_1"])


def test_a_default_nnetsauce_regression_predicts_and_explains_as_its_skops_file(
    client: Client, tmp_path: Path
) -> None:
    table = pd.read_csv(DATA / "boston_dataset2.csv").drop(columns=["training_index"])
    fit = client.mlregression(csv_bytes(table.iloc[:200]), interpretability="none")
    fit.wait(timeout=600)
    rows = table.iloc[200:230].drop(columns=["target"])
    result = client.predict(fit, csv_bytes(rows), top_n=3).wait(timeout=600)
    assert set(result.json) == {
        "y_pred",
        "interpretability",
        "explained_rows",
        "reasons",
        "unseen_categories",
        "extra_columns",
    }
    path = fit.download_model(tmp_path, format="skops")
    model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    X = model_matrix(fit.model(), {name: rows[name].tolist() for name in rows.columns})
    y_pred = np.asarray(result.json["y_pred"], dtype=np.float64)
    np.testing.assert_array_equal(y_pred, model.predict(X))
    shap = result.json["interpretability"]
    values = np.asarray(shap["values"], dtype=np.float64)
    assert values.shape == (len(rows), rows.shape[1]) and result.json["explained_rows"] == list(
        range(len(rows))
    )
    np.testing.assert_allclose(values.sum(axis=1) + np.asarray(shap["base_values"]), y_pred, atol=1e-6)
    for reasons, contribution in zip(result.json["reasons"], values, strict=True):
        top = np.argsort(-np.abs(contribution), kind="stable")[:3]
        assert [reason["feature"] for reason in reasons] == [shap["feature_names"][i] for i in top]


def test_another_user_gets_404_and_a_cancelled_or_failed_job_409(
    stack: Stack, client: Client, xgboost_job: Any
) -> None:
    other = Client(stack.url, stack.token("predict-other"))
    with pytest.raises(NotFoundError):
        other.predict(xgboost_job.id, csv_bytes(new_rows()))
    slow = other.gbdtclassification(slow_csv(), **slow_params())
    slow.cancel()
    with pytest.raises(JobFailedError):
        slow.wait(timeout=120, progress=False)
    with pytest.raises(ConflictError) as refused:
        other.predict(slow.id, csv_bytes(new_rows()))
    assert refused.value.code == "job_cancelled"
    failing = other.mlclassification(  # MultinomialNB refuses negative features: the fit fails in the worker
        negated((DATA / "iris_dataset2.csv").read_bytes()), base_model="MultinomialNB", n_hidden_features=0
    )
    with pytest.raises(JobFailedError) as failed:
        failing.wait(timeout=300, progress=False)
    assert failed.value.status == "failed"
    with pytest.raises(ConflictError) as refused:
        other.predict(failing.id, csv_bytes(new_rows()))
    assert refused.value.code == "job_failed"


def test_files_that_cannot_be_scored_are_refused_and_nothing_is_stored(
    client: Client, xgboost_job: Any
) -> None:
    before = stored(client)
    off_schema = new_rows().drop(columns=["age", "plan"]).assign(income="lots")
    with pytest.raises(UnprocessableEntityError) as refused:
        client.predict(xgboost_job, csv_bytes(off_schema))
    assert refused.value.code == "schema_mismatch"
    problems = [(p["column"], p["problem"]) for p in refused.value.body["problems"]]
    assert problems == [("age", "missing_column"), ("income", "wrong_dtype"), ("plan", "missing_column")]
    with pytest.raises(UnprocessableEntityError) as refused:
        client.predict(xgboost_job, csv_bytes(new_rows()), strict=True)
    assert refused.value.code == "unseen_category" and "region" in refused.value.detail
    with pytest.raises(UnprocessableEntityError) as refused:
        client.predict(xgboost_job, csv_bytes(new_rows().iloc[:0]))
    assert refused.value.code == "no_rows"
    with pytest.raises(UnprocessableEntityError) as refused:
        client.predict(xgboost_job, b"")
    assert refused.value.code == "empty_file"
    assert stored(client) == before


def test_a_threshold_no_row_crosses_explains_none(client: Client, xgboost_job: Any) -> None:
    result = client.predict(xgboost_job, csv_bytes(new_rows()), threshold=1.0).wait(timeout=300)
    assert (np.asarray(result.json["proba"])[:, 1] < 1.0).all()  # no row can cross
    assert result.json["explained_rows"] == [] and result.json["reasons"] == []
    assert "No row crossed" in result.json["interpretability"]["notes"]
    frame = result.reasons_frame()
    assert list(frame.columns) == ["y_pred"] and len(frame) == len(new_rows())


def test_the_command_predicts_and_writes_the_result(
    env: dict[str, str],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    client = Client(env["FITEXPLAIN_URL"], env["FITEXPLAIN_TOKEN"])
    job = client.gbdtclassification(CUSTOMERS, **XGBOOST)
    job.wait(timeout=300)
    rows = tmp_path / "rows.csv"
    rows.write_bytes(csv_bytes(new_rows()))
    out = tmp_path / "scored.json"
    args = ["predict", job.id[:8], str(rows), "--top-n", "3", "--threshold", "0.5", "--out", str(out)]
    ran = fitexplain(env, *args, "--id-column", "customer_id")
    assert ran.returncode == 0, ran.stderr
    written = json.loads(out.read_text())
    assert set(written) == CONTRACT and len(written["y_pred"]) == len(new_rows())
    assert all(len(reasons) == 3 for reasons in written["reasons"])
    assert f"{len(new_rows())} rows scored, {len(written['explained_rows'])} explained" in ran.stdout
    parquet = tmp_path / "scored.parquet"
    ran = fitexplain(env, "predict", job.id, str(rows), "--no-shap", "--out", str(parquet))
    assert ran.returncode == 0, ran.stderr
    assert pq.read_table(parquet).num_rows > 0
    missing = fitexplain(env, "predict", "0" * 32, str(rows))
    assert missing.returncode == 4
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_bytes(new_rows().drop(columns=["age"])))
    refused = fitexplain(env, "predict", job.id, str(bad))
    assert refused.returncode == 2 and "age" in refused.stderr


def test_the_async_client_predicts_a_data_frame_as_the_sync_client_a_csv(
    stack: Stack, client: Client, xgboost_job: Any
) -> None:
    rows = new_rows()
    asked: dict[str, Any] = {"top_n": 2, "id_column": "customer_id"}
    expected = client.predict(xgboost_job, csv_bytes(rows), **asked).wait(timeout=300).json

    async def predict() -> tuple[dict[str, Any], str | None]:
        async with AsyncClient(stack.url, stack.token("predict-user")) as aclient:
            job = await aclient.predict(xgboost_job.id, rows, **asked)  # a DataFrame goes up as Parquet
            result = await job.wait(timeout=300)
            try:
                await aclient.predict(xgboost_job.id, rows.drop(columns=["tenure_months"]))
            except UnprocessableEntityError as refused:
                return result.json, refused.code
            return result.json, None

    got, refused = asyncio.run(predict())
    assert refused == "schema_mismatch"
    assert set(got) == CONTRACT and got["ids"] == expected["ids"]
    assert got["y_pred"] == expected["y_pred"] and got["proba"] == expected["proba"]
    assert got["reasons"] == expected["reasons"] and got["unseen_categories"] == {"region": 2}


def test_wait_answers_with_the_result_and_top_n_needs_shap(client: Client, xgboost_job: Any) -> None:
    path = f"/jobs/{xgboost_job.id}/predict"
    upload = {"file": ("rows.csv", csv_bytes(new_rows()))}
    waited = client.request("POST", path, params={"wait": 60}, files=upload)
    assert waited.status_code == 200, waited.text
    assert set(waited.json()) == {"y_pred", "proba", "class_labels", "unseen_categories", "extra_columns"}
    with pytest.raises(UnprocessableEntityError) as refused:
        client.request("POST", path, params={"top_n": 2}, files=upload)
    assert refused.value.code == "bad_parameter" and "top_n" in refused.value.detail
