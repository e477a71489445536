"""Binary results through the real stack: a worker's SHAP job downloaded as Parquet and NPZ equals its JSON,
by raw HTTP and through the Python SDK."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fitexplain_client import Client as SDKClient
from shared.results import formats as results
from tests.contract import explanation
from tests.stack import Client, Stack

pytestmark = pytest.mark.service


def test_parquet_and_npz_of_a_worker_result_hold_its_json(
    stack: Stack, alice: Client, tmp_path: Path
) -> None:
    response = alice.submit(
        "gbdtclassification",
        "breast_cancer_dataset2.csv",
        interpretability="permutation,shap",
        n_estimators=20,
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert alice.wait(job_id)["status"] == "succeeded"
    as_json = alice.result(job_id)

    parquet = alice.http.get(f"/jobs/{job_id}/result", headers={"Accept": "application/vnd.apache.parquet"})
    assert parquet.status_code == 200 and parquet.headers["content-type"] == "application/vnd.apache.parquet"
    with_features = alice.http.get(f"/jobs/{job_id}/result", params={"include": "X_test"}).json()
    assert {key: value for key, value in with_features.items() if key != "X_test"} == as_json
    assert results.to_result(parquet.content, "parquet") == with_features  # the binary forms hold X_test
    frame = pd.read_parquet(io.BytesIO(parquet.content))
    shap = explanation(as_json, "shap")
    values = np.asarray(shap["values"], dtype=np.float64)
    for f, name in enumerate(shap["feature_names"]):
        assert np.array_equal(frame[f"shap_{name}_1"].to_numpy(), values[:, f, 1])
    assert frame["y_pred"].tolist() == as_json["y_pred"]

    with SDKClient(stack.url, stack.token("alice")) as sdk:
        job = sdk.job(job_id)
        found = job.result_frame()
        assert np.array_equal(found.frame[found.shap_columns("1")].to_numpy(), values[:, :, 1])
        assert found.metadata["interpretability"][0] == explanation(as_json, "permutation")
        job.download("npz", tmp_path / "result.npz")
        assert job.result().json == as_json  # the JSON path is unchanged
    with np.load(tmp_path / "result.npz", allow_pickle=False) as arrays:
        assert np.array_equal(arrays["shap_values"], values)
        assert (
            arrays["permutation_importances_mean"].tolist()
            == explanation(as_json, "permutation")["importances_mean"]
        )
