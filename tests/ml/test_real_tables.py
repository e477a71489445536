"""Real-shaped tables (tests/data/tables): ids, missing values, text columns, a bool, a target named
otherwise with text labels. Every endpoint's model family either succeeds, with explanations per original
column that add up to the output, or refuses with a DataError naming the column and the parameter that
would make it work; and the test rows join back to the uploaded rows."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, softmax

from shared.ml.errors import DataError
from shared.ml.pipeline import run
from shared.ml.spec import JobSpec, Limits, ModelSpec
from tests.canonical import canonical
from tests.contract import explanation
from tests.ml.conftest import DATA_DIR

TABLES = DATA_DIR / "tables"
CUSTOMERS = {"target": "churned", "id_column": "customer_id"}  # target text labels "no"/"yes"
HOUSES = {"target": "price", "id_column": "house_id"}
FAMILIES = {  # every model family of the four endpoints, small enough to run in a second or two
    "ml-nnetsauce": {"family": "ml", "n_hidden_features": 3},
    "ml-bare": {"family": "ml", "n_hidden_features": 0},
    **{
        f"gbdt-{kind}": {"family": "gbdt", "model_type": kind, "n_estimators": 20}
        for kind in ("lightgbm", "xgboost", "catboost", "gradientboosting")
    },
}
NATIVE_MISSING = {"gbdt-lightgbm", "gbdt-xgboost", "gbdt-catboost"}


def table(name: str) -> bytes:
    return (TABLES / name).read_bytes()


def spec_for(task: str, family: str, roles: dict[str, str], **extra: Any) -> JobSpec:
    model = ModelSpec(task=task, **FAMILIES[family])  # type: ignore[arg-type]
    if "impute" in extra:
        model = replace(model, impute=extra.pop("impute"))
    return JobSpec(model=model, interpretability=("permutation", "shap"), **roles, **extra)


def assert_shap_adds_up(result: dict[str, Any]) -> None:
    shap = explanation(result, "shap")
    values, base = np.asarray(shap["values"], float), np.asarray(shap["base_values"], float)
    total = values.sum(axis=1) + base
    if shap["output_space"] == "raw":
        np.testing.assert_allclose(total, result["y_pred"], rtol=1e-6, atol=1e-6 * np.abs(total).max())
        return
    proba = np.asarray(result["proba"])
    if shap["output_space"] == "log-odds":
        total = expit(total[:, -1:]) if proba.shape[1] == 2 else softmax(total, axis=1)
        proba = proba[:, -1:] if proba.shape[1] == 2 else proba
    np.testing.assert_allclose(total, proba, atol=1e-6)


def assert_rows_join_back(result: dict[str, Any], frame: pd.DataFrame, target: str, id_column: str) -> None:
    """`test_ids` joined to the uploaded rows, and `test_rows` indexing them, give `y_true` row for row."""
    by_id = frame.set_index(id_column)[target]
    joined = [by_id.loc[identifier] for identifier in result["test_ids"]]
    by_row = frame[target].iloc[result["test_rows"]].tolist()
    assert len(result["test_ids"]) == len(result["test_rows"]) == len(result["y_true"]) > 0
    for expected in (joined, by_row):
        if isinstance(result["y_true"][0], str):
            assert [str(value) for value in expected] == result["y_true"]
        else:
            np.testing.assert_allclose(np.asarray(expected, float), result["y_true"])


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize(
    ("name", "task", "roles"),
    [("customers_numeric.csv", "classification", CUSTOMERS), ("houses_numeric.csv", "regression", HOUSES)],
)
def test_a_numeric_table_with_ids_and_missing_values_succeeds_or_names_impute(
    name: str, task: str, roles: dict[str, str], family: str
) -> None:
    upload = canonical(table(name))
    frame = pd.read_csv(TABLES / name)
    if family not in NATIVE_MISSING:
        with pytest.raises(DataError) as refused:
            run(upload, spec_for(task, family, roles), Limits())
        assert refused.value.code == "missing_value"
        assert refused.value.column in ("age", "area_m2")
        assert "impute=median" in refused.value.message
    spec = spec_for(task, family, roles, **({} if family in NATIVE_MISSING else {"impute": "median"}))
    result = run(upload, spec, Limits())
    features = [column for column in frame.columns if column not in roles.values()]
    for method in ("permutation", "shap"):
        assert explanation(result, method)["feature_names"] == features  # the id is never a feature
    assert_shap_adds_up(result)
    assert_rows_join_back(result, frame, roles["target"], roles["id_column"])


def test_a_text_label_target_named_otherwise_keeps_its_labels() -> None:
    upload = canonical(table("customers_numeric.csv"))
    result = run(upload, spec_for("classification", "gbdt-lightgbm", CUSTOMERS), Limits())
    assert set(result["y_true"]) == {"no", "yes"} and set(result) >= {"no", "yes", "test_rows", "test_ids"}


def test_without_an_id_column_the_result_has_test_rows_only(iris: bytes) -> None:
    frame = pd.read_csv(DATA_DIR / "iris_dataset2.csv")
    result = run(iris, JobSpec(ModelSpec("classification", "gbdt", n_estimators=5)), Limits())
    assert "test_ids" not in result
    assert result["test_rows"] == frame.index[frame["training_index"] == 0].tolist()
    assert frame["target"].iloc[result["test_rows"]].tolist() == result["y_true"]


@pytest.mark.parametrize(
    ("roles", "code", "column", "words"),
    [
        ({"target": "churn"}, "missing_target", "churn", ["'churn'"]),
        ({"id_column": "customer"}, "missing_id_column", "customer", ["id_column"]),
        ({}, "missing_target", "target", ["target="]),
    ],
)
def test_a_column_named_by_the_request_must_exist(
    roles: dict[str, str], code: str, column: str, words: list[str]
) -> None:
    roles = {"target": "churned", **roles} if "target" not in roles and roles else roles
    with pytest.raises(DataError) as refused:
        run(
            canonical(table("customers_numeric.csv")),
            spec_for("classification", "gbdt-lightgbm", roles),
            Limits(),
        )
    assert (refused.value.code, refused.value.column) == (code, column)
    for word in words:
        assert word in refused.value.message


def test_a_missing_target_value_names_its_row() -> None:
    frame = pd.read_csv(TABLES / "houses_numeric.csv")
    frame.loc[6, "price"] = np.nan
    with pytest.raises(DataError) as refused:
        run(
            canonical(frame.to_csv(index=False).encode()),
            spec_for("regression", "gbdt-lightgbm", HOUSES),
            Limits(),
        )
    assert (refused.value.code, refused.value.column) == ("missing_value", "price")
    assert "line 8" in refused.value.message


def upload_as(frame: pd.DataFrame, kind: str, tmp_path: Path) -> bytes:
    """The table as a CSV, or as Parquet / Arrow with its text columns as pandas categories (Arrow
    dictionaries)."""
    if kind == "csv":
        return canonical(frame.to_csv(index=False).encode())
    from tests.ml.test_ingest import ingest_as

    text = {name: "category" for name in frame.columns if frame[name].dtype == object}
    return ingest_as(frame.astype(text), b"", kind, tmp_path).read_bytes()


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize(
    ("name", "task", "roles"),
    [("customers.csv", "classification", CUSTOMERS), ("houses.csv", "regression", HOUSES)],
)
def test_text_columns_are_categorical_features(
    name: str, task: str, roles: dict[str, str], family: str, tmp_path: Path
) -> None:
    assert_categorical_features_work(name, task, roles, family, "csv", tmp_path)


@pytest.mark.parametrize("kind", ["parquet", "arrow"])
def test_pandas_category_and_arrow_dictionary_columns_are_categorical_features(
    kind: str, tmp_path: Path
) -> None:
    """Read as text like a CSV's (the CSV cases above cover every model family)."""
    family = "gbdt-lightgbm"
    assert_categorical_features_work("customers.csv", "classification", CUSTOMERS, family, kind, tmp_path)


def assert_categorical_features_work(
    name: str, task: str, roles: dict[str, str], family: str, kind: str, tmp_path: Path
) -> None:
    frame = pd.read_csv(TABLES / name)
    upload = upload_as(frame, kind, tmp_path)
    impute = {} if family in NATIVE_MISSING else {"impute": "most_frequent"}
    result = run(upload, spec_for(task, family, roles, **impute), Limits())
    features = [column for column in frame.columns if column not in roles.values()]
    for method in ("permutation", "shap"):
        assert explanation(result, method)["feature_names"] == features  # one value per original column
    categorical = "plan" if "plan" in features else "neighbourhood"  # each moves the target
    shap_values = np.asarray(explanation(result, "shap")["values"], float)
    assert np.abs(shap_values[:, features.index(categorical)]).max() > 0
    assert_shap_adds_up(result)
    assert_rows_join_back(result, frame, roles["target"], roles["id_column"])


def test_histogram_boosting_takes_missing_values_natively_unless_nnetsauce_comes_first() -> None:
    upload = canonical(table("customers_numeric.csv"))
    bare = ModelSpec("classification", "ml", base_model="HistGradientBoostingClassifier", n_hidden_features=0)
    result = run(upload, JobSpec(bare, interpretability=("shap",), **CUSTOMERS), Limits())
    assert explanation(result, "shap")["explainer"] == "tree"
    assert_shap_adds_up(result)
    with pytest.raises(DataError, match="impute="):
        run(upload, JobSpec(replace(bare, n_hidden_features=3), **CUSTOMERS), Limits())
