"""Scoring and explaining new rows with a kept model: the predictions are the model's own, the SHAP
values the library's own contributions (and add up), threshold and top_n pick the right rows and
features, batches change nothing, and every bad upload is refused with its own answer."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import shap
import xgboost

from shared.ml.errors import DataError, LimitExceeded, ParameterError
from shared.ml.explain._predict import model_output
from shared.ml.explain.methods.shap import ShapValues
from shared.ml.ingest.canonical import ColumnFacts, read_labels
from shared.ml.model.kept import KeptModel, kept_from
from shared.ml.model.predict.checks import check_schema, refuse_unseen, unseen_categories
from shared.ml.model.predict.options import PredictOptions
from shared.ml.model.predict.scoring import check_predict_limits, read_batches, score
from shared.ml.pipeline import prepare
from shared.ml.spec import JobSpec, Limits, ModelSpec
from tests.canonical import canonical
from tests.ml.conftest import read_data

XGB_REGRESSION = ModelSpec(task="regression", family="gbdt", model_type="xgboost", n_estimators=30)
XGB_CLASSIFICATION = ModelSpec(task="classification", family="gbdt", model_type="xgboost", n_estimators=30)
CONTRACT_KEYS = {"y_pred", "unseen_categories", "extra_columns"}
SHAP_KEYS = {"interpretability", "explained_rows", "reasons"}


def kept_of(source: bytes, model: ModelSpec, **spec: object) -> KeptModel:
    return kept_from(prepare(source, JobSpec(model=model, **spec), Limits()))  # type: ignore[arg-type]


def new_rows(
    name: str,
    drop: tuple[str, ...] = ("target", "training_index"),
    rows: int | None = None,
    **extra: list[str],
) -> bytes:
    """A file of new rows: a sample table without its target (its first `rows` rows, with `extra`
    columns), as stored."""
    frame = pd.read_csv(io.BytesIO(read_data(name)), nrows=rows).drop(columns=list(drop), errors="ignore")
    for column, values in extra.items():
        frame[column] = values[: len(frame)]
    return canonical(frame.to_csv(index=False).encode())


def model_matrix(kept: KeptModel, source: bytes) -> np.ndarray:
    X, _ = kept.matrix(pq.read_table(io.BytesIO(source)).to_pandas())
    return X


@pytest.fixture(scope="module")
def boston_xgb(boston: bytes) -> KeptModel:
    return kept_of(boston, XGB_REGRESSION)


@pytest.fixture(scope="module")
def cancer_xgb(breast_cancer: bytes) -> KeptModel:
    return kept_of(breast_cancer, XGB_CLASSIFICATION)


def test_regression_predictions_and_shap_are_xgboosts_own(boston_xgb: KeptModel) -> None:
    source = new_rows("boston_dataset2.csv")
    result = score(boston_xgb, read_batches(source), PredictOptions(interpretability="shap", top_n=2))
    assert set(result) == CONTRACT_KEYS | SHAP_KEYS
    X = model_matrix(boston_xgb, source)
    booster = boston_xgb.model.get_booster()
    assert np.array_equal(np.asarray(result["y_pred"]), boston_xgb.model.predict(X).astype(float))
    contribs = booster.predict(xgboost.DMatrix(X), pred_contribs=True)
    explained = result["interpretability"]
    values = np.asarray(explained["values"])
    assert values.shape == (len(X), X.shape[1])
    # xgboost and shap's TreeExplainer sum the contributions in float32, ours in float64: equal within
    # 1e-6 of each value (float32 keeps 7 digits: a value near 10 differs in its sixth decimal)
    for reference in (contribs[:, :-1], shap.TreeExplainer(boston_xgb.model).shap_values(X)):
        np.testing.assert_allclose(values, reference, rtol=1e-6, atol=1e-6)
    total = values.sum(axis=1) + np.asarray(explained["base_values"])
    np.testing.assert_allclose(total, booster.predict(xgboost.DMatrix(X), output_margin=True), atol=1e-5)
    assert explained["explainer"] == "tree" and explained["exact"] is True
    assert result["explained_rows"] == list(range(len(X)))
    assert result["unseen_categories"] == {} and result["extra_columns"] == []


def test_classifier_result_has_the_fits_names_and_probabilities(cancer_xgb: KeptModel) -> None:
    source = new_rows("breast_cancer_dataset2.csv")
    result = score(cancer_xgb, read_batches(source), PredictOptions())
    assert set(result) == CONTRACT_KEYS | {"proba", "class_labels"}
    X = model_matrix(cancer_xgb, source)
    np.testing.assert_array_equal(np.asarray(result["proba"]), cancer_xgb.model.predict_proba(X))
    labels = result["class_labels"]
    assert result["y_pred"] == [labels[code] for code in cancer_xgb.model.predict(X)]


def test_threshold_explains_exactly_the_crossing_rows_with_their_top_features(cancer_xgb: KeptModel) -> None:
    source = new_rows("breast_cancer_dataset2.csv")
    X = model_matrix(cancer_xgb, source)
    positive = cancer_xgb.model.predict_proba(X)[:, 1]
    for below, expected in ((False, positive >= 0.7), (True, positive <= 0.7)):
        options = PredictOptions(interpretability="shap", top_n=3, threshold=0.7, below=below)
        result = score(cancer_xgb, read_batches(source, batch_rows=100), options)
        rows = np.flatnonzero(expected)
        assert result["explained_rows"] == rows.tolist()
        values = np.asarray(result["interpretability"]["values"])  # rows x features x classes
        assert values.shape[0] == len(rows) == len(result["reasons"])
        frame = pq.read_table(io.BytesIO(source)).to_pandas()
        predicted = cancer_xgb.model.predict(X[rows])
        for i, reasons in enumerate(result["reasons"]):
            own = values[i, :, predicted[i]]
            best = np.argsort(-np.abs(own), kind="stable")[:3]
            names = result["interpretability"]["feature_names"]
            assert [reason["feature"] for reason in reasons] == [names[j] for j in best]
            assert [reason["contribution"] for reason in reasons] == pytest.approx(own[best].tolist())
            assert [reason["value"] for reason in reasons] == [
                float(frame[names[j]].iloc[rows[i]]) for j in best
            ]


def test_multiclass_threshold_is_the_predicted_class_probability(iris: bytes) -> None:
    model = ModelSpec(task="classification", family="gbdt", model_type="lightgbm", n_estimators=20)
    kept = kept_of(iris, model)
    source = new_rows("iris_dataset2.csv")
    X = model_matrix(kept, source)
    confident = kept.model.predict_proba(X).max(axis=1) >= 0.9
    result = score(kept, read_batches(source), PredictOptions(interpretability="shap", threshold=0.9))
    assert result["explained_rows"] == np.flatnonzero(confident).tolist()
    values = np.asarray(result["interpretability"]["values"])
    total = values.sum(axis=1) + np.asarray(result["interpretability"]["base_values"])
    expected = model_output(kept.model, X[confident], task="classification", output_space="log-odds")
    np.testing.assert_allclose(total, expected, atol=1e-6)
    certain = kept.model.predict_proba(X).max(axis=1) >= 1.0
    nothing = score(kept, read_batches(source), PredictOptions(interpretability="shap", threshold=1.0))
    assert nothing["explained_rows"] == np.flatnonzero(certain).tolist() == []
    assert np.asarray(nothing["interpretability"]["values"]).size == 0
    assert nothing["interpretability"]["class_labels"] == ["0", "1", "2"]


def test_regression_threshold_and_no_crossing_row(boston_xgb: KeptModel) -> None:
    source = new_rows("boston_dataset2.csv")
    y = boston_xgb.model.predict(model_matrix(boston_xgb, source))
    result = score(boston_xgb, read_batches(source), PredictOptions(interpretability="shap", threshold=30))
    assert result["explained_rows"] == np.flatnonzero(y >= 30).tolist()
    nothing = score(boston_xgb, read_batches(source), PredictOptions(interpretability="shap", threshold=1e9))
    assert nothing["explained_rows"] == [] and nothing["reasons"] == []
    assert nothing["interpretability"]["values"] == []
    assert nothing["interpretability"]["notes"].startswith("No row crossed the threshold")
    assert len(nothing["y_pred"]) == len(y)


def test_batches_change_no_value(cancer_xgb: KeptModel) -> None:
    source = new_rows("breast_cancer_dataset2.csv")
    options = PredictOptions(interpretability="shap", threshold=0.5)
    whole = score(cancer_xgb, read_batches(source), options)
    split = score(cancer_xgb, read_batches(source, batch_rows=37), options)
    assert split == whole


def test_sklearn_trees_equal_shap_tree_explainer(boston: bytes) -> None:
    kept = kept_of(
        boston,
        ModelSpec(task="regression", family="ml", base_model="RandomForestRegressor", n_hidden_features=0),
    )
    # shap's TreeExplainer takes 4 ms a row of these full-depth trees
    source = new_rows("boston_dataset2.csv", rows=60)
    result = score(kept, read_batches(source), PredictOptions(interpretability="shap"))
    X = model_matrix(kept, source)
    expected = shap.TreeExplainer(kept.model).shap_values(X.astype(np.float32).astype(float))
    np.testing.assert_allclose(np.asarray(result["interpretability"]["values"]), expected, atol=1e-6)
    assert np.asarray(result["y_pred"]) == pytest.approx(kept.model.predict(X))


def test_ids_follow_the_id_column_and_extra_columns_are_listed(boston_xgb: KeptModel) -> None:
    n = 506
    source = new_rows(
        "boston_dataset2.csv", drop=("training_index",), row=[f"r{i}" for i in range(n)], note=["x"] * n
    )
    result = score(
        boston_xgb,
        read_batches(source, batch_rows=100),
        PredictOptions(id_column="row"),
        extra_columns=["note"],
    )
    assert result["ids"] == [f"r{i}" for i in range(n)]
    assert result["extra_columns"] == ["note"]


def facts_of(source: bytes, tmp_path: Path) -> dict[str, ColumnFacts]:
    path = tmp_path / "upload.parquet"
    path.write_bytes(source)
    labels = read_labels(path)
    return {name: labels.facts[name] for name in labels.feature_names}


def test_schema_names_every_missing_column_and_wrong_dtype_at_once(
    boston_xgb: KeptModel, tmp_path: Path
) -> None:
    frame = pd.read_csv(io.BytesIO(read_data("boston_dataset2.csv"))).drop(columns=["V0", "V3", "target"])
    frame["V5"] = "high"
    frame["extra"] = 1.0
    source = canonical(frame.to_csv(index=False).encode())
    with pytest.raises(DataError) as refused:
        check_schema(boston_xgb.features, facts_of(source, tmp_path))
    assert refused.value.code == "schema_mismatch" and refused.value.status == 422
    problems = refused.value.details["problems"]
    assert [(p["column"], p["problem"]) for p in problems] == [
        ("V0", "missing_column"),
        ("V3", "missing_column"),
        ("V5", "wrong_dtype"),
    ]
    assert all(name in refused.value.message for name in ("'V0'", "'V3'", "'V5'"))


def test_schema_lists_extra_columns_and_lets_the_target_be(boston_xgb: KeptModel, tmp_path: Path) -> None:
    source = new_rows("boston_dataset2.csv", drop=(), note=["x"] * 506)
    checked = check_schema(boston_xgb.features, facts_of(source, tmp_path), id_column=None)
    assert checked.extra_columns == ["note"]  # target and training_index are not features, nor extra


def test_missing_values_are_refused_unless_the_model_takes_them(tmp_path: Path) -> None:
    frame = pd.read_csv(io.BytesIO(read_data("boston_dataset2.csv"))).drop(columns=["target"])
    frame.loc[3, "V1"] = None
    facts = facts_of(canonical(frame.to_csv(index=False).encode()), tmp_path)
    features = [{"name": f"V{i}", "dtype": "float64"} for i in range(13)]
    with pytest.raises(DataError) as refused:
        check_schema(features, facts)
    assert refused.value.details["problems"][0]["problem"] == "missing_value"
    assert check_schema(features, facts, handles_missing=True).extra_columns == []


CUSTOMERS = ModelSpec(task="classification", family="gbdt", model_type="lightgbm", n_estimators=20)


def test_unseen_categories_are_counted_or_refused_with_strict(tmp_path: Path) -> None:
    table = read_data("tables/customers.csv")
    kept = kept_of(canonical(table), CUSTOMERS, target="churned", id_column="customer_id")
    frame = pd.read_csv(io.BytesIO(table)).drop(columns=["churned"])
    frame.loc[:4, "region"] = "atlantis"
    source = canonical(frame.to_csv(index=False).encode())
    result = score(
        kept, read_batches(source), PredictOptions(interpretability="shap", id_column="customer_id")
    )
    assert result["unseen_categories"] == {"region": 5}
    regions = [r["value"] for reasons in result["reasons"] for r in reasons if r["feature"] == "region"]
    assert "atlantis" in regions or regions == [] or all(isinstance(r, str) for r in regions)
    with pytest.raises(DataError) as refused:
        score(kept, read_batches(source), PredictOptions(strict=True))
    assert refused.value.code == "unseen_category" and "'region' (5 rows)" in refused.value.message
    table_of = pq.read_table(io.BytesIO(source))
    counts = unseen_categories(kept.features, table_of.column)  # what the submit counts
    assert counts["region"] == 5
    with pytest.raises(DataError, match="region"):
        refuse_unseen(counts)


def test_bad_options_and_limits_are_named() -> None:
    with pytest.raises(ParameterError, match="threshold"):
        PredictOptions(threshold=0.5).check("regression", fitted_pi=False, fitted_level=95)
    with pytest.raises(ParameterError, match="between 0 and 1"):
        PredictOptions(interpretability="shap", threshold=3).check(
            "classification", fitted_pi=False, fitted_level=95
        )
    with pytest.raises(ParameterError, match="return_pi"):
        PredictOptions(return_pi=True).check("regression", fitted_pi=False, fitted_level=95)
    with pytest.raises(ParameterError, match="level"):
        PredictOptions(return_pi=True, level=80).check("regression", fitted_pi=True, fitted_level=95)
    with pytest.raises(ParameterError, match="top_n"):
        PredictOptions(top_n=-1).check("regression", fitted_pi=False, fitted_level=95)
    with pytest.raises(LimitExceeded, match="max_predict_explain_rows"):
        check_predict_limits(11, 3, 1, Limits(max_predict_explain_rows=10))
    check_predict_limits(10, 3, 1, Limits(max_predict_explain_rows=10))


def test_intervals_are_the_fits(boston: bytes) -> None:
    kept = kept_of(boston, XGB_REGRESSION, return_pi=True)
    source = new_rows("boston_dataset2.csv")
    result = score(kept, read_batches(source), PredictOptions(return_pi=True))
    lower, upper = kept.predict_interval(model_matrix(kept, source))
    assert result["pi_lower"] == lower.tolist() and result["pi_upper"] == upper.tolist()
    assert all(lo <= y <= hi for lo, y, hi in zip(lower, result["y_pred"], upper, strict=True))


def test_an_empty_file_is_refused() -> None:
    with pytest.raises(DataError) as refused:
        score(None, iter(()), PredictOptions())  # type: ignore[arg-type]
    assert refused.value.code == "no_rows"


def test_new_rows_get_the_fits_own_shap_values(iris: bytes) -> None:
    """The test rows sent again, in order, are explained exactly as the fit explained them: the same
    explainer, background and per-row seeds (a nnetsauce classifier: the model-agnostic explainer)."""
    from shared.ml.explain.methods import explanation_method

    spec = JobSpec(model=ModelSpec(task="classification", family="ml"), interpretability=("shap",))
    prepared = prepare(iris, spec, Limits())
    fitted = explanation_method("shap").compute(prepared, Limits(), (0, len(prepared.dataset.y_test)), None)
    assert isinstance(fitted, ShapValues)
    kept = kept_from(prepared, Limits())
    rows = pq.read_table(io.BytesIO(iris)).take(prepared.dataset.test_rows).drop_columns(["target"])
    result = score(kept, [rows.to_pandas()], PredictOptions(interpretability="shap"))
    explained = result["interpretability"]
    assert explained["explainer"] == fitted.explainer
    np.testing.assert_array_equal(np.asarray(explained["values"]), fitted.values)
    np.testing.assert_array_equal(np.asarray(explained["base_values"]), fitted.base_values)
    assert result["proba"] == prepared.result["proba"]
