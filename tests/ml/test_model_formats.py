"""The onnx, mlflow and bundle downloads of a kept model, in this environment: each predicts the job's test
rows as the job did (ONNX within float32's precision, MLflow and the bundle exactly, the bundle's SHAP
values exactly), and a model a format cannot carry is refused with the reason."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shared.ml.model import export
from shared.ml.model.kept import KeptModel, kept_from
from shared.ml.pipeline import PreparedJob, explain, prepare
from shared.ml.spec import JobSpec, Limits, ModelSpec
from tests.canonical import canonical
from tests.ml.conftest import DATA_DIR

GBDT = {"family": "gbdt", "n_estimators": 12}
CUSTOMERS = {"target": "churned", "id_column": "customer_id"}
CASES: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "xgboost": ("iris_dataset2.csv", "classification", {**GBDT, "model_type": "xgboost"}, {}),
    "lightgbm": ("iris_dataset2.csv", "classification", {**GBDT, "model_type": "lightgbm"}, {}),
    "catboost": ("iris_dataset2.csv", "classification", {**GBDT, "model_type": "catboost"}, {}),
    "gradientboosting": (
        "diabetes_dataset2.csv",
        "regression",
        {**GBDT, "model_type": "gradientboosting"},
        {},
    ),
    "elasticnet": ("diabetes_dataset2.csv", "regression", {"family": "ml", "n_hidden_features": 0}, {}),
    "nnetsauce": ("iris_dataset2.csv", "classification", {"family": "ml", "n_hidden_features": 3}, {}),
    "nnetsauce-categorical": (
        "tables/customers.csv",
        "classification",
        {"family": "ml", "n_hidden_features": 3, "impute": "median"},
        CUSTOMERS,
    ),
    "xgboost-categorical": (
        "tables/customers.csv",
        "classification",
        {**GBDT, "model_type": "xgboost"},
        CUSTOMERS,
    ),
}
ONNX = ["xgboost", "lightgbm", "catboost", "gradientboosting", "elasticnet"]
MLFLOW = ["xgboost", "lightgbm", "catboost", "gradientboosting", "nnetsauce", "nnetsauce-categorical"]


def fitted(case: str, interpretability: tuple[str, ...] = ()) -> tuple[PreparedJob, KeptModel]:
    name, task, model, roles = CASES[case]
    spec = JobSpec(model=ModelSpec(task=task, **model), interpretability=interpretability, **roles)  # type: ignore[arg-type]
    prepared = prepare(canonical((DATA_DIR / name).read_bytes()), spec, Limits(), n_threads=1)
    return prepared, kept_from(prepared)


def unzipped(body: bytes, folder: Path) -> Path:
    zipfile.ZipFile(io.BytesIO(body)).extractall(folder)
    return folder


def onnx_output(body: bytes, X: np.ndarray, classifier: bool) -> np.ndarray:
    """Probabilities (classifiers) or values from onnxruntime, at the input precision the graph declares."""
    import onnxruntime

    session = onnxruntime.InferenceSession(body, providers=["CPUExecutionProvider"])
    declared = session.get_inputs()[0]
    dtype = np.float64 if declared.type == "tensor(double)" else np.float32
    outputs = session.run(None, {declared.name: X.astype(dtype)})
    if not classifier:
        return np.asarray(outputs[0], dtype=np.float64).ravel()
    proba = outputs[1]
    if isinstance(proba, list):  # CatBoost's graph gives one {class: probability} map per row
        proba = [[row[key] for key in sorted(row)] for row in proba]
    return np.asarray(proba, dtype=np.float64)


def onnx_misses(found: np.ndarray, expected: np.ndarray, classifier: bool) -> int:
    """Rows beyond float32's tolerance: 1e-5 on probabilities, 1e-5 relative on values."""
    if classifier:
        return int((np.abs(found - expected).max(axis=1) > 1e-5).sum())
    return int((np.abs(found - expected) > 1e-5 * np.maximum(np.abs(expected), 1e-12)).sum())


@pytest.mark.parametrize("case", ONNX)
def test_onnx_predicts_the_test_rows_within_float32_precision(case: str) -> None:
    prepared, kept = fitted(case)
    assert "onnx" in export.formats_for(kept)
    exported = export.export(kept, "onnx")
    classifier = kept.class_labels is not None
    X = prepared.dataset.X_test
    expected = kept.predict_proba(X) if classifier else kept.predict(X)
    misses = onnx_misses(onnx_output(exported.body, X, classifier), expected, classifier)
    assert misses <= 0.001 * len(X), f"{misses} of {len(X)} rows differ more than 1e-5"


def test_onnx_takes_a_linear_model_in_double_precision() -> None:
    prepared, kept = fitted("elasticnet")
    found = onnx_output(export.export(kept, "onnx").body, prepared.dataset.X_test, classifier=False)
    np.testing.assert_allclose(found, kept.predict(prepared.dataset.X_test), rtol=1e-12)


@pytest.mark.parametrize(
    ("case", "reason"),
    [("nnetsauce", "nnetsauce's CustomClassifier"), ("xgboost-categorical", "categorical features")],
)
def test_onnx_refuses_what_no_converter_takes_and_says_why(case: str, reason: str) -> None:
    _, kept = fitted(case)
    assert "onnx" not in export.formats_for(kept)
    with pytest.raises(export.FormatNotApplicable, match=reason):
        export.export(kept, "onnx")


@pytest.mark.parametrize("case", MLFLOW)
def test_mlflow_serves_the_job_predictions_exactly(case: str, tmp_path: Path) -> None:
    import mlflow

    prepared, kept = fitted(case)
    exported = export.export(kept, "mlflow")
    directory = unzipped(exported.body, tmp_path) / "model"
    X = prepared.dataset.X_test
    frame = pd.DataFrame(X, columns=kept.feature_names)
    predicted = np.asarray(mlflow.pyfunc.load_model(str(directory)).predict(frame)).ravel()
    np.testing.assert_array_equal(predicted, np.asarray(kept.model.predict(X)).ravel())
    if kept.class_labels is not None:
        flavor = mlflow.pyfunc.load_model(str(directory)).loader_module.split(".")[1]
        raw = getattr(mlflow, flavor).load_model(str(directory))
        np.testing.assert_array_equal(raw.predict_proba(frame), kept.predict_proba(X))
    described = (directory / "MLmodel").read_text()
    assert "signature:" in described and "saved_input_example_info" in described
    requirements = (directory / "requirements.txt").read_text()
    assert f"scikit-learn=={kept.libraries['scikit-learn']}" in requirements


def test_mlflow_refuses_a_booster_that_splits_on_categories_itself() -> None:
    _, kept = fitted("xgboost-categorical")
    with pytest.raises(export.FormatNotApplicable, match="categorical"):
        export.export(kept, "mlflow")


def test_a_format_whose_extra_is_not_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.ml.model.export import requirements

    _, kept = fitted("xgboost")
    real = requirements.util.find_spec
    monkeypatch.setattr(requirements.util, "find_spec", lambda name: None if name == "mlflow" else real(name))
    assert "mlflow" not in export.formats_for(kept)
    with pytest.raises(export.FormatNotApplicable, match=r"fitexplain\[mlflow\]"):
        export.export(kept, "mlflow")


def job_rows_csv(case: str, prepared: PreparedJob, path: Path) -> Path:
    """The job's test rows as they were uploaded (their text, in the result's order)."""
    uploaded = pd.read_csv(DATA_DIR / CASES[case][0], dtype=str, keep_default_na=False)
    assert prepared.dataset.test_rows is not None
    uploaded.iloc[prepared.dataset.test_rows].to_csv(path, index=False)
    return path


def run_bundle(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "predict.py", *args], cwd=folder, capture_output=True, text=True, timeout=240
    )


@pytest.mark.process
@pytest.mark.parametrize("case", ["nnetsauce", "xgboost-categorical"])
def test_the_bundle_scores_and_explains_the_test_rows_as_the_job_did(case: str, tmp_path: Path) -> None:
    prepared, kept = fitted(case, interpretability=("shap",))
    folder = unzipped(export.export(kept, "bundle").body, tmp_path / "bundle")
    rows = job_rows_csv(case, prepared, tmp_path / "rows.csv")
    done = run_bundle(folder, str(rows), "--explain", "--out", str(tmp_path / "out.parquet"))
    assert done.returncode == 0, done.stderr
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert [str(label) for label in out["y_pred"]] == [str(label) for label in prepared.result["y_pred"]]
    proba = out[[f"proba_{label}" for label in kept.class_labels or []]].to_numpy()
    np.testing.assert_array_equal(proba, np.asarray(prepared.result["proba"]))
    shap = explain(prepared, "shap", Limits())
    codes = kept.predict(prepared.dataset.X_test)
    expected = shap.values[np.arange(len(codes)), :, codes]
    np.testing.assert_array_equal(out[[f"shap_{name}" for name in kept.feature_names]].to_numpy(), expected)


def test_the_bundle_holds_its_card_schema_requirements_and_no_pickle(tmp_path: Path) -> None:
    _, kept = fitted("nnetsauce", interpretability=("shap",))
    folder = unzipped(export.export(kept, "bundle").body, tmp_path)
    card = json.loads((folder / "card.json").read_text())
    assert card["endpoint"] == "mlclassification"
    assert [feature["name"] for feature in card["features"]] == kept.feature_names
    assert json.loads((folder / "schema.json").read_text())["target"]["classes"] == kept.class_labels
    assert len(pd.read_parquet(folder / "background.parquet")) == len(kept.background)  # type: ignore[arg-type]
    requirements = (folder / "requirements.txt").read_text().split()
    assert f"nnetsauce=={kept.libraries['nnetsauce']}" in requirements
    assert (folder / "shared/ml/model/kept.py").is_file()
    assert not list(folder.rglob("*.pkl")) and not list(folder.rglob("*.pickle"))


@pytest.mark.process
def test_the_bundle_refuses_a_changed_model_file(tmp_path: Path) -> None:
    prepared, kept = fitted("xgboost")
    folder = unzipped(export.export(kept, "bundle").body, tmp_path / "bundle")
    model = folder / "model.skops"
    model.write_bytes(model.read_bytes() + b"\0")
    done = run_bundle(folder, str(job_rows_csv("xgboost", prepared, tmp_path / "rows.csv")))
    assert done.returncode != 0 and "sha256" in done.stderr
