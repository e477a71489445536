"""SHAP's background over real HTTP with a real worker: a fit sent with a background file (the Python SDK's
second file part) explains against exactly its rows, as the downloaded skops model shows, and records it in
its result and model card; a predict job (the `fitexplain predict --background sample:N` command) draws N of
those rows with the fit's seed and says so."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from fitexplain_client import Client
from tests.service.test_client_cli import env, fitexplain  # noqa: F401 - `env` is a fixture
from tests.stack import DATA

pytestmark = pytest.mark.service

IRIS = DATA / "iris_dataset2.csv"
FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


def test_a_fit_explains_against_its_background_file_and_a_predict_samples_it(
    env: dict[str, str],  # noqa: F811 - the fixture imported above
    tmp_path: Path,
) -> None:
    table = pd.read_csv(IRIS)
    rows = table.sample(n=24, random_state=3)[[*reversed(FEATURES), "target"]]  # any order, target ignored
    background = tmp_path / "background.csv"
    rows.to_csv(background, index=False)
    digest = hashlib.sha256(background.read_bytes()).hexdigest()

    client = Client(env["FITEXPLAIN_URL"], env["FITEXPLAIN_TOKEN"])
    fit = client.mlclassification(
        IRIS,
        base_model="LogisticRegression",
        n_hidden_features=0,
        interpretability="shap",
        background=background,
    )
    result = fit.wait(timeout=600, progress=False)
    shap = result.json["interpretability"]
    assert shap["background"] == {"source": "upload", "rows": 24, "sha256": digest}
    assert shap["explainer"] == "exact" and shap["output_space"] == "probability"
    # The explainer's base value is the model's mean probability over exactly the sent rows.
    path = fit.download_model(tmp_path, format="skops")
    model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    expected = model.predict_proba(rows[FEATURES].to_numpy(dtype=np.float64)).mean(axis=0)
    np.testing.assert_allclose(np.asarray(shap["base_values"]), np.tile(expected, (len(result.y_pred), 1)))
    values = np.asarray(shap["values"], dtype=np.float64)
    np.testing.assert_allclose(values.sum(axis=1) + np.asarray(shap["base_values"]), result.json["proba"])
    card = fit.model()
    assert card.background is not None
    assert {key: card.background[key] for key in ("source", "rows", "features", "sha256")} == {
        "source": "upload",
        "rows": 24,
        "features": 4,
        "sha256": digest,
    }

    new_rows = tmp_path / "new.csv"
    table[FEATURES].head(6).to_csv(new_rows, index=False)
    done = fitexplain(env, "predict", fit.id, str(new_rows), "--background", "sample:5", "--json")
    assert done.returncode == 0, done.stderr
    predicted = json.loads(done.stdout)
    assert predicted["interpretability"]["background"] == {
        "source": "sample",
        "rows": 5,
        "seed": 123,
        "drawn_from": {"source": "upload", "rows": 24, "sha256": digest},
    }
    shap = predicted["interpretability"]
    total = np.asarray(shap["values"]).sum(axis=1) + np.asarray(shap["base_values"])
    np.testing.assert_allclose(total, predicted["proba"])
    refused = fitexplain(env, "predict", fit.id, str(new_rows), "--background", "sample:501", "--json")
    assert refused.returncode == 2 and "max_background_rows = 500" in refused.stderr
