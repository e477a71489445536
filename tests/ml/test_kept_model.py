"""A kept model turns the upload's test rows, read back as a raw table, into the very matrix the job built,
and predicts them bit for bit as the job did; its bytes load only when their sha256 is the recorded one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shared.ml.ingest import canonical as canonical_file
from shared.ml.model import codec
from shared.ml.model.kept import KeptModel, kept_from
from shared.ml.pipeline import PreparedJob, prepare
from shared.ml.spec import JobSpec, Limits, ModelSpec
from tests.canonical import canonical
from tests.ml.conftest import DATA_DIR

TABLES = DATA_DIR / "tables"
CUSTOMERS = {"target": "churned", "id_column": "customer_id"}
HOUSES = {"target": "price", "id_column": "house_id"}
SMALL = {"n_estimators": 15}

CASES: dict[str, tuple[str, str, dict[str, str], dict[str, Any]]] = {
    "numeric-xgboost": ("customers_numeric.csv", "classification", CUSTOMERS, {"model_type": "xgboost"}),
    "categorical-xgboost": ("customers.csv", "classification", CUSTOMERS, {"model_type": "xgboost"}),
    "categorical-lightgbm": ("houses.csv", "regression", HOUSES, {"model_type": "lightgbm"}),
    "categorical-catboost": ("customers.csv", "classification", CUSTOMERS, {"model_type": "catboost"}),
    "categorical-nnetsauce-impute": (
        "houses.csv",
        "regression",
        HOUSES,
        {"family": "ml", "n_hidden_features": 3, "impute": "median"},
    ),
    "categorical-onehot-impute": (
        "customers.csv",
        "classification",
        CUSTOMERS,
        {"model_type": "gradientboosting", "impute": "most_frequent"},
    ),
}


def fitted(
    name: str, task: str, roles: dict[str, str], model: dict[str, Any], **extra: Any
) -> tuple[PreparedJob, bytes]:
    source = canonical((TABLES / name).read_bytes())
    options = {"family": "gbdt", **SMALL, **model}
    spec = JobSpec(model=ModelSpec(task=task, **options), **roles, **extra)  # type: ignore[arg-type]
    return prepare(source, spec, Limits(), n_threads=1), source


def rows_of_test(prepared: PreparedJob, source: bytes) -> pd.DataFrame:
    """The upload's test rows as a raw table, as the ingest readers give it (every column, any order)."""
    frame = canonical_file.read_table(source)
    assert prepared.dataset.test_rows is not None
    return frame.iloc[prepared.dataset.test_rows][list(reversed(frame.columns))]


def assert_predicts_as_the_job(kept: KeptModel, prepared: PreparedJob, X: np.ndarray) -> None:
    result = prepared.result
    if kept.spec.task == "classification":
        assert kept.predict_labels(X) == result["y_pred"]
        assert np.array_equal(kept.predict_proba(X), np.asarray(result["proba"], dtype=np.float64))
    else:
        assert np.array_equal(kept.predict(X), np.asarray(result["y_pred"], dtype=np.float64))


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_kept_model_rebuilds_the_test_matrix_and_predicts_bit_for_bit(case: str) -> None:
    prepared, source = fitted(*CASES[case])
    kept = codec.load(codec.dump(kept_from(prepared)), codec.sha256_of(codec.dump(kept_from(prepared))))
    X, unseen = kept.matrix(rows_of_test(prepared, source))
    assert unseen == {}
    assert np.array_equal(X, prepared.dataset.X_test, equal_nan=True)
    assert_predicts_as_the_job(kept, prepared, X)


def test_imputation_fills_new_rows_with_what_the_training_rows_taught() -> None:
    prepared, source = fitted(*CASES["categorical-nnetsauce-impute"])
    frame = canonical_file.read_table(source)
    assert prepared.dataset.test_rows is not None
    training = frame.drop(frame.index[prepared.dataset.test_rows])
    new = frame.iloc[prepared.dataset.test_rows[:3]].copy()
    new["area_m2"] = np.nan
    new.loc[new.index[0], "neighbourhood"] = None
    X, _ = kept_from(prepared).matrix(new)
    names = prepared.dataset.feature_names
    area, neighbourhood = names.index("area_m2"), names.index("neighbourhood")
    assert np.array_equal(X[:, area], np.full(3, np.nanmedian(training["area_m2"])))
    most_frequent = training["neighbourhood"].value_counts().idxmax()
    assert X[0, neighbourhood] == prepared.dataset.categories[neighbourhood].index(most_frequent)
    assert np.array_equal(
        np.delete(X, area, axis=1)[1:], np.delete(prepared.dataset.X_test[1:3], area, axis=1)
    )


def test_the_training_schema_holds_categories_in_code_order_and_the_target() -> None:
    prepared, _ = fitted(*CASES["categorical-xgboost"])
    kept = kept_from(prepared)
    by_name = {feature.name: feature.as_json() for feature in kept.features}
    assert [feature.name for feature in kept.features] == prepared.dataset.feature_names
    region = prepared.dataset.feature_names.index("region")
    assert by_name["region"] == {
        "name": "region",
        "dtype": "category",
        "categories": prepared.dataset.categories[region],
    }
    assert by_name["region"]["categories"] == sorted(by_name["region"]["categories"])
    assert by_name["age"] == {"name": "age", "dtype": "float64"}
    assert kept.target.as_json() == {"name": "churned", "classes": ["no", "yes"]}
    regression, _ = fitted(*CASES["categorical-lightgbm"])
    target = kept_from(regression).target.as_json()
    assert target["name"] == "price"
    assert target["min"] == float(regression.dataset.y_train.min())
    assert target["max"] == float(regression.dataset.y_train.max())


def test_unseen_categories_are_counted_and_treated_as_the_encoder_treats_them() -> None:
    prepared, source = fitted(*CASES["categorical-onehot-impute"])
    kept = kept_from(prepared)
    raw = canonical_file.read_table(source).iloc[prepared.dataset.test_rows[:4]].copy()
    raw["region"] = ["atlantis", "atlantis", raw["region"].iloc[2], "mu"]
    X, unseen = kept.matrix(raw)
    assert unseen == {"region": 3}
    region = prepared.dataset.feature_names.index("region")
    assert X[0, region] == len(kept.categories[region])  # past every training code
    # OneHotEncoder(handle_unknown="ignore"): an unseen category encodes as all zeros.
    encoded = kept.model.encode(X)[:, kept.model.groups_[region]]
    assert not encoded[[0, 1, 3]].any() and encoded[2].sum() == 1
    kept.predict(X)  # the model scores the rows


def test_a_missing_feature_column_is_named() -> None:
    from shared.ml.errors import DataError

    prepared, source = fitted(*CASES["numeric-xgboost"])
    raw = canonical_file.read_table(source).drop(columns=["income"])
    with pytest.raises(DataError) as caught:
        kept_from(prepared).matrix(raw)
    assert caught.value.code == "missing_feature" and "income" in caught.value.message


@pytest.mark.parametrize("method", ["splitconformal", "localconformal"])
def test_a_return_pi_model_keeps_its_band(method: str) -> None:
    name, task, roles, model = CASES["categorical-lightgbm"]
    prepared, source = fitted(name, task, roles, model, return_pi=True, pi_method=method)
    kept = codec.load(body := codec.dump(kept_from(prepared)), codec.sha256_of(body))
    X, _ = kept.matrix(rows_of_test(prepared, source))
    assert np.array_equal(kept.predict(X), np.asarray(prepared.result["y_pred"]))
    lower, upper = kept.predict_interval(X)
    assert np.array_equal(lower, np.asarray(prepared.result["pi_lower"]))
    assert np.array_equal(upper, np.asarray(prepared.result["pi_upper"]))


def test_the_shap_background_is_kept_for_explainers_that_use_one() -> None:
    name, task, roles, model = CASES["categorical-nnetsauce-impute"]
    prepared, _ = fitted(name, task, roles, model, interpretability=("shap",))
    background = kept_from(prepared, Limits(max_background_rows=7)).background
    assert background is not None and background.shape == (7, len(prepared.dataset.feature_names))
    unexplained, _ = fitted(name, task, roles, model, interpretability=())  # a predict job may ask for SHAP
    assert kept_from(unexplained, Limits(max_background_rows=7)).background.shape == background.shape
    tree, _ = fitted(*CASES["numeric-xgboost"][:3], {"model_type": "xgboost"}, interpretability=("shap",))
    assert kept_from(tree).background is None  # path-dependent TreeSHAP uses the trees' cover instead


def test_tampered_bytes_are_refused_before_unpickling() -> None:
    prepared, _ = fitted(*CASES["numeric-xgboost"])
    body = codec.dump(kept_from(prepared))
    sha256 = codec.sha256_of(body)
    tampered = body[:-1] + bytes([body[-1] ^ 1])
    with pytest.raises(codec.ModelIntegrityError) as caught:
        codec.load(tampered, sha256)
    assert caught.value.code == "model_integrity" and caught.value.expected == sha256
    # Not a pickle at all: refused by its hash, never handed to pickle.
    with pytest.raises(codec.ModelIntegrityError):
        codec.load(b"cos\nsystem\n(S'echo owned'\ntR.", sha256)


def test_a_deterministic_refit_gives_the_same_bytes() -> None:
    first, _ = fitted(*CASES["categorical-xgboost"])
    second, _ = fitted(*CASES["categorical-xgboost"])
    assert codec.sha256_of(codec.dump(kept_from(first))) == codec.sha256_of(codec.dump(kept_from(second)))
