"""Kept models over real HTTP with a real worker, through the Python SDK and the `fitexplain` command: the
card of an xgboost job on a table with categories and of a default nnetsauce job; the native and skops
files load in this test's own environment and predict the job's test rows exactly as the job did, from the
rows as uploaded and the card's schema alone; the model counts in the quota and goes with its job; another
user gets 404; a cancelled job 409; a changed file is refused with its code. A fit writes only the native
file: skops and bundle files are made by a worker on their first download (202, then the file), which the
SDK, the command and the dashboard's links wait for."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import skops.io as sio

from fitexplain_client import Client, ConflictError, ModelCard, NotFoundError
from tests.faults.conftest import slow_csv, slow_params
from tests.service.test_client_cli import env, fitexplain  # noqa: F401 - `env` is a fixture
from tests.stack import DATA, Browser, Stack
from tests.waiting import wait_until

pytestmark = pytest.mark.service

CUSTOMERS = DATA / "tables" / "customers.csv"
XGBOOST = {"target": "churned", "id_column": "customer_id", "model_type": "xgboost", "n_estimators": 20}


@pytest.fixture(scope="module")
def client(stack: Stack) -> Client:
    return Client(stack.url, stack.token("model-user"))


@pytest.fixture(scope="module")
def xgboost_job(client: Client) -> Any:
    job = client.gbdtclassification(CUSTOMERS, **XGBOOST)
    job.wait(timeout=300)
    return job


def model_matrix(card: ModelCard, X_test: dict[str, list[Any]]) -> np.ndarray:
    """The test rows as uploaded, turned into the model's matrix by the card alone: each feature in
    training order, a category as its position in the card's categories, a missing value as NaN."""
    columns = []
    for feature in card.features:
        values = X_test[feature.name]
        if feature.categories is None:
            columns.append([np.nan if value is None else float(value) for value in values])
        else:
            columns.append([np.nan if value is None else feature.categories.index(value) for value in values])
    return np.column_stack(columns).astype(np.float64)


def test_an_xgboost_card_and_files_predict_the_test_rows_exactly(xgboost_job: Any, tmp_path: Path) -> None:
    import xgboost

    card = xgboost_job.model()
    assert card.job_id == xgboost_job.id and card.endpoint == "gbdtclassification"
    # Its categorical features: no ONNX converter takes them, nor MLflow's double columns for xgboost.
    assert card.estimator.name == "XGBClassifier" and card.kept
    assert card.formats == ["native", "skops", "bundle"]
    assert {"scikit-learn", "xgboost", "numpy", "python"} <= set(card.libraries)
    region = next(feature for feature in card.features if feature.name == "region")
    assert region.dtype == "category" and region.categories == sorted(region.categories or [])
    assert card.target == {"name": "churned", "classes": ["no", "yes"]}
    result = xgboost_job.result(include=["X_test"])
    X = model_matrix(card, result.X_test)
    proba = np.asarray(result.json["proba"], dtype=np.float64)

    native = xgboost_job.download_model(tmp_path, format="native")
    assert native.name == f"{xgboost_job.id}-model.ubj"
    booster = xgboost.XGBClassifier()
    booster.load_model(native)
    assert np.array_equal(booster.predict_proba(X), proba)

    skops_file = xgboost_job.download_model(tmp_path / "model.skops", format="skops")
    untrusted = sio.get_untrusted_types(file=skops_file)
    assert np.array_equal(sio.load(skops_file, trusted=untrusted).predict_proba(X), proba)


def test_a_bundle_is_made_by_a_worker_on_its_first_download(stack: Stack, tmp_path: Path) -> None:
    client = Client(stack.url, stack.token("model-convert"))
    job = client.gbdtclassification(CUSTOMERS, **{**XGBOOST, "n_estimators": 5})
    job.wait(timeout=300)
    card = job.model()
    assert "bundle" in card.formats
    store = stack.blob_store()
    made = sorted(blob.key.rsplit(".", 1)[1] for blob in store.list(f"models/{card.sha256}/"))
    assert made == ["native", "pickle"]  # only the booster's own file at fit time
    before = client.request("GET", "/account/usage").json()["models_bytes"]
    first = client.request("GET", f"/jobs/{job.id}/model/download", params={"format": "bundle"})
    assert first.status_code == 202 and first.json()["code"] == "model_converting"
    assert first.headers["retry-after"] == "2"
    path = job.download_model(tmp_path, format="bundle", timeout=300)  # follows the 202s
    assert path.name == f"{job.id}-model-bundle.zip"
    with zipfile.ZipFile(path) as bundle:
        assert "predict.py" in bundle.namelist()
    assert [blob.key for blob in store.list(f"models/{card.sha256}/") if blob.key.endswith(".bundle")]
    after = client.request("GET", "/account/usage").json()["models_bytes"]
    assert after == before + path.stat().st_size  # counted as the fit-time files are


def test_a_default_nnetsauce_model_downloads_as_skops(client: Client, tmp_path: Path) -> None:
    job = client.mlclassification(DATA / "breast_cancer_dataset2.csv", interpretability="shap")
    job.wait(timeout=600)
    card = job.model()
    assert card.estimator.library == "nnetsauce" and card.formats == ["skops", "mlflow", "bundle"]
    assert card.background is not None and card.background["rows"] > 0
    with pytest.raises(ConflictError) as refused:
        job.download_model(tmp_path, format="native")
    assert refused.value.code == "format_not_applicable"
    path = job.download_model(tmp_path, format="skops")
    model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    result = job.result(include=["X_test"])
    X = model_matrix(card, result.X_test)
    assert np.array_equal(model.predict_proba(X), np.asarray(result.json["proba"], dtype=np.float64))


def test_the_model_counts_in_the_quota_and_goes_with_its_job(stack: Stack) -> None:
    client = Client(stack.url, stack.token("model-quota"))
    job = client.gbdtclassification(CUSTOMERS, **XGBOOST)
    job.wait(timeout=300)
    usage = client.request("GET", "/account/usage").json()
    assert usage["models"] == 1 and usage["models_bytes"] > job.model().size_bytes
    assert usage["used_bytes"] == usage["uploads_bytes"] + usage["results_bytes"] + usage["models_bytes"]
    job.delete()
    usage = client.request("GET", "/account/usage").json()
    assert (usage["models"], usage["models_bytes"], usage["used_bytes"]) == (0, 0, 0)
    with pytest.raises(NotFoundError):
        client.model_card(job.id)


def test_another_user_gets_404_and_a_cancelled_job_409(stack: Stack, xgboost_job: Any) -> None:
    other = Client(stack.url, stack.token("model-other"))
    for call in (lambda: other.model_card(xgboost_job.id), lambda: other.download_model(xgboost_job.id)):
        with pytest.raises(NotFoundError):
            call()
    slow = other.gbdtclassification(slow_csv(), **slow_params())
    slow.cancel()
    with pytest.raises(ConflictError) as refused:
        other.model_card(slow.id)
    assert refused.value.code == "job_cancelled"


def test_a_changed_file_is_refused_with_its_code(stack: Stack, xgboost_job: Any, tmp_path: Path) -> None:
    client = Client(stack.url, stack.token("model-user"))
    job = client.gbdtclassification(CUSTOMERS, **{**XGBOOST, "n_estimators": 7})
    job.wait(timeout=300)
    store = stack.blob_store()
    sha256 = job.model().sha256
    [key] = [blob.key for blob in store.list(f"models/{sha256}/") if blob.key.endswith(".native")]
    store.put_bytes(key, b"changed")
    with pytest.raises(ConflictError) as refused:
        job.download_model(tmp_path, format="native")
    assert refused.value.code == "model_integrity"


def test_the_command_shows_the_card_and_downloads(
    env: dict[str, str],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    job = Client(env["FITEXPLAIN_URL"], env["FITEXPLAIN_TOKEN"]).gbdtclassification(CUSTOMERS, **XGBOOST)
    job.wait(timeout=300)
    job_id = job.id
    shown = fitexplain(env, "model", job_id[:8])
    assert shown.returncode == 0, shown.stderr
    assert "XGBClassifier (xgboost)" in shown.stdout and "native, skops" in shown.stdout
    as_json = json.loads(fitexplain(env, "model", job_id, "--json").stdout)
    assert as_json["job_id"] == job_id and as_json["formats"] == ["native", "skops", "bundle"]
    out = tmp_path / "m.ubj"
    downloaded = fitexplain(env, "model", "download", job_id, "--format", "native", "--out", str(out))
    assert downloaded.returncode == 0, downloaded.stderr
    assert out.read_bytes()[:1] == b"{" and str(out) in downloaded.stdout
    bundle = tmp_path / "m.zip"  # a format a worker writes on its first download: the command waits
    downloaded = fitexplain(env, "model", "download", job_id, "--format", "bundle", "--out", str(bundle))
    assert downloaded.returncode == 0, downloaded.stderr
    assert zipfile.is_zipfile(bundle)
    unknown = fitexplain(env, "model", "download", job_id, "--format", "pmml", "--out", str(tmp_path))
    assert unknown.returncode == 2 and "pmml" in unknown.stderr
    missing = fitexplain(env, "model", "0" * 32)
    assert missing.returncode == 4


def file_or_waiting_page(response: httpx.Response) -> httpx.Response | None:
    """The file; None for the page that asks again while a worker writes it."""
    if response.status_code == 202:
        assert 'http-equiv="refresh"' in response.text and response.headers["retry-after"] == "2"
        return None
    assert response.status_code == 200, response.text
    return response


def test_the_dashboard_job_page_shows_the_card_with_download_links(stack: Stack, xgboost_job: Any) -> None:
    browser = Browser(stack, stack.token("model-user"))
    page = browser.http.get(f"/dashboard/jobs/{xgboost_job.id}")
    assert page.status_code == 200
    card = xgboost_job.model()
    assert "<h2>Model</h2>" in page.text and card.sha256 in page.text and "XGBClassifier" in page.text
    for fmt in card.formats:
        link = f"/dashboard/jobs/{xgboost_job.id}/model/{fmt}"
        assert f'href="{link}"' in page.text
        downloaded = wait_until(
            lambda url=link: file_or_waiting_page(browser.http.get(url)), 300, f"the {fmt} file", every=1.0
        )
        assert (
            downloaded.content
            == Client(stack.url, stack.token("model-user"))
            .request("GET", f"/jobs/{xgboost_job.id}/model/download", params={"format": fmt})
            .content
        )
    other = Browser(stack, stack.token("model-stranger"))
    assert other.http.get(f"/dashboard/jobs/{xgboost_job.id}/model/native").status_code == 404
