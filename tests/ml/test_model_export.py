"""The download formats of a kept model: each file loads in its library alone (no fitexplain class
inside) and predicts the job's test rows exactly as the job did; a format that does not apply says why."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.ml.model import export
from shared.ml.model.kept import KeptModel, kept_from
from shared.ml.pipeline import PreparedJob, prepare
from shared.ml.spec import JobSpec, Limits, ModelSpec
from tests.canonical import canonical
from tests.ml.conftest import DATA_DIR

TABLES = DATA_DIR / "tables"
CUSTOMERS = {"target": "churned", "id_column": "customer_id"}
HOUSES = {"target": "price", "id_column": "house_id"}
GBDT = {"family": "gbdt", "n_estimators": 12}
MODELS: dict[str, tuple[str, str, dict[str, str], dict[str, Any]]] = {
    "xgboost": ("customers.csv", "classification", CUSTOMERS, {**GBDT, "model_type": "xgboost"}),
    "lightgbm": ("customers.csv", "classification", CUSTOMERS, {**GBDT, "model_type": "lightgbm"}),
    "catboost": ("customers.csv", "classification", CUSTOMERS, {**GBDT, "model_type": "catboost"}),
    "xgboost-regression": ("houses.csv", "regression", HOUSES, {**GBDT, "model_type": "xgboost"}),
    "lightgbm-regression": ("houses.csv", "regression", HOUSES, {**GBDT, "model_type": "lightgbm"}),
    "catboost-regression": ("houses.csv", "regression", HOUSES, {**GBDT, "model_type": "catboost"}),
    "gradientboosting": (
        "customers.csv",
        "classification",
        CUSTOMERS,
        {**GBDT, "model_type": "gradientboosting", "impute": "median"},
    ),
    "nnetsauce": (
        "customers.csv",
        "classification",
        CUSTOMERS,
        {"family": "ml", "n_hidden_features": 3, "impute": "median"},
    ),
    "nnetsauce-regression": (
        "houses.csv",
        "regression",
        HOUSES,
        {"family": "ml", "n_hidden_features": 3, "impute": "median"},
    ),
}
NATIVE = [name for name in MODELS if name.split("-")[0] in ("xgboost", "lightgbm", "catboost")]


def fitted(case: str) -> tuple[PreparedJob, KeptModel]:
    name, task, roles, model = MODELS[case]
    spec = JobSpec(model=ModelSpec(task=task, **model), **roles)  # type: ignore[arg-type]
    prepared = prepare(canonical((TABLES / name).read_bytes()), spec, Limits(), n_threads=1)
    return prepared, kept_from(prepared)


def job_output(prepared: PreparedJob) -> np.ndarray:
    """The job's proba (classifiers) or y_pred (regression), as floats."""
    key = "proba" if prepared.spec.task == "classification" else "y_pred"
    return np.asarray(prepared.result[key], dtype=np.float64)


def catboost_frame(X: np.ndarray, categorical: list[int]) -> Any:
    """The matrix as CatBoost takes categorical codes: integers, a missing one as -1."""
    import catboost
    import pandas as pd

    frame = pd.DataFrame(X)
    for position in categorical:
        frame[position] = np.where(np.isnan(X[:, position]), -1, X[:, position]).astype(np.int64)
    return catboost.Pool(frame, cat_features=categorical)


def predicted_from_native(path: Path, kept: KeptModel, X: np.ndarray) -> np.ndarray:
    classifier = kept.spec.task == "classification"
    if path.suffix == ".ubj":
        import xgboost

        model = xgboost.XGBClassifier() if classifier else xgboost.XGBRegressor()
        model.load_model(path)
        return np.asarray(model.predict_proba(X) if classifier else model.predict(X), dtype=np.float64)
    if path.suffix == ".txt":
        import lightgbm

        booster = lightgbm.Booster(model_file=str(path))
        raw = np.asarray(booster.predict(X), dtype=np.float64)
        return np.column_stack([1.0 - raw, raw]) if classifier and raw.ndim == 1 else raw
    import catboost

    model = catboost.CatBoostClassifier() if classifier else catboost.CatBoostRegressor()
    model.load_model(str(path), format="cbm")
    pool = catboost_frame(X, sorted(kept.categories))
    return np.asarray(model.predict_proba(pool) if classifier else model.predict(pool), dtype=np.float64)


@pytest.mark.parametrize("case", NATIVE)
def test_a_native_file_loads_in_its_library_and_predicts_as_the_job(case: str) -> None:
    prepared, kept = fitted(case)
    assert "native" in export.formats_for(kept)
    exported = export.export(kept, "native")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / exported.filename
        path.write_bytes(exported.body)
        predicted = predicted_from_native(path, kept, prepared.dataset.X_test)
    assert np.array_equal(predicted, job_output(prepared))


@pytest.mark.parametrize("case", sorted(MODELS))
def test_a_skops_file_loads_with_its_listed_types_and_predicts_as_the_job(case: str) -> None:
    import skops.io as sio

    prepared, kept = fitted(case)
    exported = export.export(kept, "skops")
    untrusted = exported.headers["X-Skops-Untrusted-Types"].split(",")
    assert not any(name.startswith(("shared.", "api.", "worker.")) for name in untrusted)
    with pytest.raises(sio.exceptions.UntrustedTypesFoundException):
        sio.loads(exported.body)
    model = sio.loads(exported.body, trusted=untrusted)
    X = prepared.dataset.X_test
    if case.startswith("catboost"):
        X = catboost_frame(X, sorted(kept.categories))
    classifier = kept.spec.task == "classification"
    predicted = np.asarray(model.predict_proba(X) if classifier else model.predict(X), dtype=np.float64)
    assert np.array_equal(predicted.ravel() if not classifier else predicted, job_output(prepared))


@pytest.mark.parametrize("case", ["gradientboosting", "nnetsauce"])
def test_native_is_refused_for_models_without_a_format_of_their_own(case: str) -> None:
    _, kept = fitted(case)
    assert "native" not in export.formats_for(kept) and "skops" in export.formats_for(kept)
    with pytest.raises(export.FormatNotApplicable) as caught:
        export.export(kept, "native")
    assert caught.value.code == "format_not_applicable" and "skops" in str(caught.value)


def test_an_unknown_format_names_the_known_ones() -> None:
    _, kept = fitted("xgboost")
    with pytest.raises(export.UnknownFormat) as caught:
        export.export(kept, "pmml")
    assert "native" in str(caught.value) and "skops" in str(caught.value)
