"""Exact TreeSHAP: equal to each library's own numbers, in the common shape, adding up to the model output."""

from __future__ import annotations

from pathlib import Path

import catboost
import lightgbm
import numpy as np
import pandas as pd
import pytest
import shap
import xgboost
from scipy.special import expit, softmax
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from shared.ml.errors import ParameterError
from shared.ml.explain.tree import supports, tree_shap

DATA = Path(__file__).resolve().parents[1] / "data"


def load(name: str, max_rows: int = 200) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA / f"{name}.csv").drop(columns="training_index").head(max_rows)
    y = frame.pop("target").to_numpy()
    return frame.to_numpy(dtype=float), y


DATASETS = {
    "binary": "breast_cancer_dataset2",
    "multiclass": "wine_dataset2",
    "regression": "diabetes_dataset2",
}

CLASSIFIERS = {
    "xgboost": lambda: xgboost.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1),
    "lightgbm": lambda: lightgbm.LGBMClassifier(n_estimators=10, max_depth=3, verbose=-1, n_jobs=1),
    "catboost": lambda: catboost.CatBoostClassifier(iterations=10, depth=3, verbose=0, thread_count=1),
    "gradientboosting": lambda: GradientBoostingClassifier(n_estimators=10, max_depth=3, random_state=0),
    "histgradientboosting": lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0),
    "randomforest": lambda: RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0),
    "extratrees": lambda: ExtraTreesClassifier(n_estimators=10, max_depth=4, random_state=0),
    "decisiontree": lambda: DecisionTreeClassifier(max_depth=4, random_state=0),
}
REGRESSORS = {
    "xgboost": lambda: xgboost.XGBRegressor(n_estimators=10, max_depth=3, n_jobs=1),
    "lightgbm": lambda: lightgbm.LGBMRegressor(n_estimators=10, max_depth=3, verbose=-1, n_jobs=1),
    "catboost": lambda: catboost.CatBoostRegressor(iterations=10, depth=3, verbose=0, thread_count=1),
    "gradientboosting": lambda: GradientBoostingRegressor(n_estimators=10, max_depth=3, random_state=0),
    "histgradientboosting": lambda: HistGradientBoostingRegressor(max_iter=10, random_state=0),
    "randomforest": lambda: RandomForestRegressor(n_estimators=10, max_depth=4, random_state=0),
    "extratrees": lambda: ExtraTreesRegressor(n_estimators=10, max_depth=4, random_state=0),
    "decisiontree": lambda: DecisionTreeRegressor(max_depth=4, random_state=0),
}
PROBABILITY_MODELS = {"randomforest", "extratrees", "decisiontree"}


def assert_adds_up(total: np.ndarray, expected: np.ndarray) -> None:
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(total, expected, rtol=1e-6, atol=1e-6 * scale)


@pytest.mark.parametrize("kind", sorted(CLASSIFIERS))
@pytest.mark.parametrize("labels", ["binary", "multiclass"])
def test_classifier_values_add_up_to_the_model_output(kind, labels):
    X, y = load(DATASETS[labels])
    model = CLASSIFIERS[kind]().fit(X, y)
    n_classes = len(np.unique(y))
    result = tree_shap(model, X, task="classification")

    assert result["values"].shape == (X.shape[0], X.shape[1], n_classes)
    assert result["base_values"].shape == (X.shape[0], n_classes)
    assert result["exact"] is True and result["error_estimate"] is None and result["explainer"] == "tree"
    total = result["values"].sum(axis=1) + result["base_values"]
    probabilities = model.predict_proba(X)
    if kind in PROBABILITY_MODELS:
        assert result["output_space"] == "probability"
        assert_adds_up(total, probabilities)
    elif labels == "binary":
        assert result["output_space"] == "log-odds"
        np.testing.assert_array_equal(result["values"][..., 0], -result["values"][..., 1])
        assert_adds_up(total[:, 0], -total[:, 1])
        assert_adds_up(expit(total[:, 1]), probabilities[:, 1])
        assert "negation" in result["notes"]
    else:
        assert result["output_space"] == "log-odds" and "margin" in result["notes"]
        assert_adds_up(softmax(total, axis=1), probabilities)
    assert np.abs(result["values"]).max() > 0


@pytest.mark.parametrize("kind", sorted(REGRESSORS))
def test_regressor_values_add_up_to_the_prediction(kind):
    X, y = load(DATASETS["regression"])
    model = REGRESSORS[kind]().fit(X, y)
    result = tree_shap(model, X, task="regression")
    assert result["values"].shape == X.shape and result["base_values"].shape == (X.shape[0],)
    assert result["output_space"] == "raw"
    assert_adds_up(result["values"].sum(axis=1) + result["base_values"], model.predict(X))


def test_margin_models_add_up_to_the_library_margin():
    X, y = load(DATASETS["multiclass"])
    margins = {
        "xgboost": lambda m: m.predict(X, output_margin=True),
        "lightgbm": lambda m: m.predict(X, raw_score=True),
        "catboost": lambda m: m.predict(X, prediction_type="RawFormulaVal"),
        "gradientboosting": lambda m: m.decision_function(X),
        "histgradientboosting": lambda m: m.decision_function(X),
    }
    for kind, margin in margins.items():
        model = CLASSIFIERS[kind]().fit(X, y)
        result = tree_shap(model, X, task="classification")
        assert_adds_up(result["values"].sum(axis=1) + result["base_values"], margin(model))


def test_boosters_equal_their_native_contributions():
    X, y = load(DATASETS["binary"])
    booster = xgboost.XGBClassifier(n_estimators=10, max_depth=3, n_jobs=1).fit(X, y)
    native = booster.get_booster().predict(xgboost.DMatrix(X), pred_contribs=True)
    ours = tree_shap(booster, X, task="classification")
    # xgboost's trees go through the tabulated kernel, in float64: xgboost's own sums are float32
    np.testing.assert_allclose(ours["values"][..., 1], native[:, :-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours["base_values"][:, 1], native[:, -1], atol=1e-5)

    X, y = load(DATASETS["multiclass"])
    lgbm = lightgbm.LGBMClassifier(n_estimators=10, max_depth=3, verbose=-1, n_jobs=1).fit(X, y)
    native = lgbm.predict(X, pred_contrib=True).reshape(X.shape[0], 3, X.shape[1] + 1)
    ours = tree_shap(lgbm, X, task="classification")
    # also through the tabulated kernel, in float64 as lightgbm: equal up to the order of the sums
    np.testing.assert_allclose(ours["values"], np.moveaxis(native[..., :-1], 1, 2), rtol=1e-12, atol=1e-15)

    cat = catboost.CatBoostClassifier(iterations=10, depth=3, verbose=0, thread_count=1).fit(X, y)
    native = cat.get_feature_importance(catboost.Pool(X), type="ShapValues")
    ours = tree_shap(cat, X, task="classification")
    np.testing.assert_array_equal(ours["values"], np.moveaxis(native[..., :-1], 1, 2))
    np.testing.assert_array_equal(ours["base_values"], native[:, :, -1])


@pytest.mark.parametrize("kind", ["randomforest", "histgradientboosting", "gradientboosting"])
def test_sklearn_models_equal_shap_tree_explainer(kind):
    X, y = load(DATASETS["binary"])
    model = CLASSIFIERS[kind]().fit(X, y)
    explainer = shap.TreeExplainer(model, model_output="raw")
    reference = np.asarray(explainer.shap_values(X))
    ours = tree_shap(model, X, task="classification")["values"]
    if reference.ndim == 2:  # a single log-odds margin: ours holds it as class 1
        reference = np.stack([-reference, reference], axis=-1)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-12)


def test_xgboost_interactions_sum_to_the_values():
    X, y = load(DATASETS["multiclass"])
    model = CLASSIFIERS["xgboost"]().fit(X, y)
    result = tree_shap(model, X[:20], task="classification", interactions=True)
    assert result["interaction_values"].shape == (20, X.shape[1], X.shape[1], 3)
    np.testing.assert_allclose(result["interaction_values"].sum(axis=2), result["values"], atol=1e-5)


def test_progress_reaches_the_total_and_refusals_are_user_errors():
    X, y = load(DATASETS["regression"])
    calls = []
    tree_shap(
        REGRESSORS["lightgbm"]().fit(X, y), X, task="regression", progress=lambda d, t: calls.append((d, t))
    )
    assert calls[-1] == (X.shape[0], X.shape[0])
    with pytest.raises(ParameterError):
        tree_shap(REGRESSORS["lightgbm"]().fit(X, y), X, task="regression", interactions=True)
    linear = LogisticRegression(max_iter=200).fit(X, y > np.median(y))
    assert not supports(linear)
    with pytest.raises(ParameterError):
        tree_shap(linear, X, task="classification")
