"""The pipeline entry points on the four endpoint flavours (shared/ml/pipeline.py)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from shared.ml.errors import LimitExceeded, ParameterError
from shared.ml.pipeline import explain, merge_explanations, plan_chunks, prepare, run
from shared.ml.spec import JobSpec, Limits, ModelSpec
from tests.canonical import canonical
from tests.contract import explanation

SCORE_KEYS = {
    "R² Score",
    "MAE (Mean Absolute Error)",
    "MSE (Mean Squared Error)",
    "RMSE (Root Mean Squared Error)",
    "MAPE (Mean Absolute Percentage Error)",
    "Max Error",
    "support",
}
FAST_FOREST = ModelSpec(
    task="classification", family="ml", base_model="RandomForestClassifier", n_hidden_features=3
)


def assert_json_safe(result: dict) -> None:
    json.dumps(result, allow_nan=False)


def assert_classification_shape(result: dict, labels: list[str], n_test: int) -> None:
    for label in labels:
        assert set(result[label]) == {"precision", "recall", "f1-score", "support"}
    for average in ("macro avg", "weighted avg"):
        assert result[average]["support"] == n_test
    assert 0 <= result["accuracy"] <= 1
    assert len(result["y_true"]) == len(result["y_pred"]) == n_test
    assert np.asarray(result["proba"]).shape == (n_test, len(labels))
    np.testing.assert_allclose(np.sum(result["proba"], axis=1), 1.0, rtol=1e-6)
    assert_json_safe(result)


def assert_regression_shape(result: dict, n_test: int, with_pi: bool) -> None:
    assert set(result["Score"]) == SCORE_KEYS
    assert result["Score"]["support"] == n_test
    assert len(result["y_true"]) == len(result["y_pred"]) == n_test
    if with_pi:
        lower, upper = np.asarray(result["pi_lower"]), np.asarray(result["pi_upper"])
        assert np.all(lower <= np.asarray(result["y_pred"])) and np.all(np.asarray(result["y_pred"]) <= upper)
        assert 80 <= result["pi_coverage"] <= 100
    else:
        assert "pi_lower" not in result and "pi_coverage" not in result
    assert_json_safe(result)


def test_ml_classification_on_breast_cancer(breast_cancer: bytes) -> None:
    spec = JobSpec(model=FAST_FOREST, interpretability=("permutation",))
    result = run(breast_cancer, spec, Limits(), n_threads=1)
    assert_classification_shape(result, ["0", "1"], 171)
    assert result["accuracy"] > 0.9
    assert set(result["y_true"]) == {0, 1}
    permutation = explanation(result, "permutation")
    assert len(permutation["importances_mean"]) == len(permutation["feature_names"]) == 30
    assert permutation["feature_names"][0] == "mean radius"


def test_ml_regression_on_boston_with_default_model_and_intervals(boston: bytes) -> None:
    for pi_method in ("splitconformal", "localconformal"):
        spec = JobSpec(
            model=ModelSpec(task="regression", family="ml", base_model="ElasticNet"),
            return_pi=True,
            pi_method=pi_method,
        )
        assert_regression_shape(run(boston, spec, Limits()), 152, with_pi=True)


def test_intervals_come_from_the_model_that_is_explained(boston: bytes) -> None:
    spec = JobSpec(
        model=ModelSpec(task="regression", family="gbdt", model_type="xgboost", n_estimators=30),
        return_pi=True,
    )
    prepared = prepare(boston, spec, Limits(), n_threads=1)
    np.testing.assert_array_equal(prepared.model.predict(prepared.dataset.X_test), prepared.result["y_pred"])


def test_gbdt_classification_on_iris_with_labels(iris: bytes) -> None:
    spec = JobSpec(
        model=ModelSpec(task="classification", family="gbdt", model_type="lightgbm", n_estimators=30)
    )
    result = run(iris, spec, Limits(), n_threads=1)
    assert_classification_shape(result, ["0", "1", "2"], 45)
    assert result["accuracy"] > 0.8
    assert "interpretability" not in result


def test_gbdt_regression_on_boston_with_defaults(boston: bytes) -> None:
    for return_pi in (False, True):
        spec = JobSpec(model=ModelSpec(task="regression", family="gbdt"), return_pi=return_pi)
        result = run(boston, spec, Limits(), n_threads=1)
        assert_regression_shape(result, 152, with_pi=return_pi)
        assert result["Score"]["R² Score"] > 0.7


def test_string_labels_come_back_as_strings() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    rows = "".join(f"{value},{'dog' if value > 0 else 'cat'}\n" for value in x)
    spec = JobSpec(model=replace(FAST_FOREST, n_hidden_features=0))
    result = run(canonical(("x,target\n" + rows).encode()), spec, Limits())
    assert {"cat", "dog"} <= set(result) and set(result["y_pred"]) <= {"cat", "dog"}


def test_chunked_permutation_equals_one_piece_and_run_is_deterministic(breast_cancer: bytes) -> None:
    spec = JobSpec(
        model=ModelSpec(task="classification", family="gbdt", model_type="xgboost", n_estimators=20),
        interpretability=("permutation",),
    )
    prepared = prepare(breast_cancer, spec, Limits(), n_threads=1)
    chunks = plan_chunks(prepared, "permutation", 7)
    assert chunks[0] == (0, 7) and chunks[-1] == (28, 30) and len(chunks) == 5
    parts = [explain(prepared, "permutation", Limits(), span) for span in reversed(chunks)]
    merged = merge_explanations(prepared, "permutation", parts)
    whole = run(breast_cancer, spec, Limits(), n_threads=1)
    one_piece = explanation(whole, "permutation")
    costs = {"n_model_evals", "n_predict_calls"}  # each chunk rescores the unpermuted baseline
    assert {k: v for k, v in merged.items() if k not in costs} == {
        k: v for k, v in one_piece.items() if k not in costs
    }
    assert merged["n_predict_calls"] == len(chunks)
    assert whole == run(breast_cancer, spec, Limits(), n_threads=1)


def test_progress_reports_rise_to_one(breast_cancer: bytes) -> None:
    seen: list[tuple[float, str]] = []
    spec = JobSpec(
        model=ModelSpec(task="classification", family="gbdt", n_estimators=10),
        interpretability=("permutation",),
    )
    run(breast_cancer, spec, Limits(), progress=lambda fraction, message: seen.append((fraction, message)))
    fractions = [fraction for fraction, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any(message == "permutation 30/30 features" for _, message in seen)


def test_shap_beyond_limits_is_refused_before_any_work(breast_cancer: bytes) -> None:
    spec = JobSpec(
        model=ModelSpec(task="classification", family="gbdt", n_estimators=10), interpretability=("shap",)
    )
    with pytest.raises(LimitExceeded, match="max_shap_floats") as caught:
        run(breast_cancer, spec, Limits(max_shap_floats=171 * 30 * 2 - 1))
    assert caught.value.code == "too_many_shap_values"
    with pytest.raises(LimitExceeded, match="max_explain_rows"):
        run(breast_cancer, spec, Limits(max_explain_rows=100))


def test_model_that_rejects_the_data_gives_a_user_error() -> None:
    rows = "".join(f"{-i},{i % 2}\n" for i in range(20))
    spec = JobSpec(
        model=ModelSpec(task="classification", family="ml", base_model="MultinomialNB", n_hidden_features=0)
    )
    with pytest.raises(ParameterError) as caught:
        run(canonical(("x,target\n" + rows).encode()), spec, Limits())
    assert caught.value.code == "model_fit_failed" and "Negative values" in caught.value.message


@pytest.mark.parametrize(
    "model",
    [
        ModelSpec(task="classification", family="gbdt", model_type="lightgbm", n_estimators=20),
        replace(FAST_FOREST, n_hidden_features=2),
    ],
    ids=["lightgbm", "nnetsauce-forest"],
)
def test_shap_in_chunks_equals_shap_in_one_piece(model: ModelSpec, iris: bytes) -> None:
    spec = JobSpec(model=model, interpretability=("shap",))
    prepared = prepare(iris, spec, Limits(), n_threads=1)
    chunks = plan_chunks(prepared, "shap", 20)
    assert chunks == [(0, 20), (20, 40), (40, 45)]
    merged = merge_explanations(
        prepared, "shap", [explain(prepared, "shap", Limits(), span) for span in chunks]
    )
    whole = merge_explanations(prepared, "shap", [explain(prepared, "shap", Limits())])
    assert np.asarray(whole["values"]).shape == (45, 4, 3)
    assert np.asarray(whole["base_values"]).shape == (45, 3)
    assert whole["feature_names"][0] == "sepal length (cm)" and whole["class_labels"] == ["0", "1", "2"]
    assert merged["values"] == whole["values"] and merged["base_values"] == whole["base_values"]
    assert_json_safe(whole)


def test_run_with_both_methods_on_boston(boston: bytes) -> None:
    spec = JobSpec(
        model=ModelSpec(task="regression", family="gbdt", model_type="xgboost", n_estimators=30),
        return_pi=True,
        interpretability=("shap", "permutation"),
    )
    result = run(boston, spec, Limits(), n_threads=1)
    assert [item["method"] for item in result["interpretability"]] == ["shap", "permutation"]  # as asked
    shap_values = np.asarray(explanation(result, "shap")["values"])
    assert shap_values.shape == (152, 13)
    prediction = shap_values.sum(axis=1) + np.asarray(explanation(result, "shap")["base_values"])
    np.testing.assert_allclose(prediction, result["y_pred"], rtol=1e-4, atol=1e-3)
    assert_regression_shape(result, 152, with_pi=True)


# The public result shape: techtonique's keys, then ours beside them in the same flat object.
PERMUTATION_KEYS = {"method", "importances_mean", "importances_std", "importances", "feature_names"} | {
    "scoring",
    "n_repeats",
    "n_model_evals",
    "n_predict_calls",
    "baseline_score",
}
SHAP_KEYS = {"method", "values", "base_values", "feature_names"} | {
    "explainer",
    "exact",
    "output_space",
    "n_model_evals",
    "error_estimate",
    "notes",
    "class_labels",
    "row_span",
    "background",
}


@pytest.mark.parametrize(
    ("asked", "expected"),
    [
        (("permutation",), [PERMUTATION_KEYS]),
        (("shap",), [SHAP_KEYS]),
        (("permutation", "shap"), [PERMUTATION_KEYS, SHAP_KEYS]),
        (("shap", "permutation"), [SHAP_KEYS, PERMUTATION_KEYS]),
    ],
)
def test_interpretability_is_one_flat_object_or_a_list_in_the_order_asked(
    asked: tuple, expected: list[set[str]]
) -> None:
    iris = canonical((Path(__file__).resolve().parents[1] / "data" / "iris_dataset2.csv").read_bytes())
    model = ModelSpec(task="classification", family="gbdt", model_type="xgboost", n_estimators=10)
    result = run(iris, JobSpec(model=model, interpretability=asked), Limits(), n_threads=1)
    found = result["interpretability"]
    if len(asked) == 1:
        assert isinstance(found, dict)
        found = [found]
    else:
        assert isinstance(found, list)
    assert [item["method"] for item in found] == list(asked)
    assert [set(item) for item in found] == expected
    for item in found:
        assert item["feature_names"] == [
            "sepal length (cm)",
            "sepal width (cm)",
            "petal length (cm)",
            "petal width (cm)",
        ]


@pytest.mark.parametrize("pi_method", ["splitconformal", "localconformal"])
def test_intervals_say_how_many_rows_calibrated_them(boston: bytes, pi_method: str) -> None:
    """The notes and `calibration_rows` say what the model was fitted on: the root of a decision tree
    counts the rows it was fitted on."""
    spec = JobSpec(
        model=ModelSpec(
            task="regression", family="ml", base_model="DecisionTreeRegressor", n_hidden_features=0
        ),
        return_pi=True,
        pi_method=pi_method,
        level=90,
    )
    prepared = prepare(boston, spec, Limits())
    n_train = len(prepared.dataset.y_train)
    fitted_rows = int(prepared.model.tree_.n_node_samples[0])
    assert prepared.result["calibration_rows"] == n_train - fitted_rows > 0
    notes = prepared.result["notes"]
    assert f"fitted on {fitted_rows} of the {n_train} training rows" in notes and "90% intervals" in notes
    plain = prepare(boston, replace(spec, return_pi=False), Limits())
    assert "calibration_rows" not in plain.result and "notes" not in plain.result
    assert int(plain.model.tree_.n_node_samples[0]) == n_train
