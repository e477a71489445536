"""explain_shap sends each model kind to the intended explainer and returns the contract's keys."""

from __future__ import annotations

from pathlib import Path

import lightgbm
import nnetsauce as ns
import numpy as np
import pandas as pd
import xgboost
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import ElasticNet, LogisticRegression

from shared.ml.explain.shap import choose_explainer, explain_shap

DATA = Path(__file__).resolve().parents[1] / "data"
CONTRACT_KEYS = {
    "values",
    "base_values",
    "explainer",
    "exact",
    "output_space",
    "n_model_evals",
    "error_estimate",
    "notes",
}


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA / f"{name}.csv").drop(columns="training_index")
    y = frame.pop("target").to_numpy()
    return frame.to_numpy(dtype=float), y


def test_boosters_go_to_exact_treeshap():
    X, y = load("iris_dataset2")
    booster = lightgbm.LGBMClassifier(n_estimators=10, max_depth=3, verbose=-1, n_jobs=1).fit(X, y)
    result = explain_shap(booster, X[:10], X, task="classification", random_state=0)
    assert result.keys() >= CONTRACT_KEYS
    assert result["explainer"] == "tree" and result["exact"] is True
    assert result["values"].shape == (X.shape[0], X.shape[1], 3)

    X, y = load("diabetes_dataset2")
    regressor = xgboost.XGBRegressor(n_estimators=10, max_depth=3, n_jobs=1).fit(X, y)
    result = explain_shap(regressor, X[:10], X[:30], task="regression", random_state=0)
    assert result["explainer"] == "tree" and result["output_space"] == "raw"
    total = result["values"].sum(axis=1) + result["base_values"]
    np.testing.assert_allclose(total, regressor.predict(X[:30]), rtol=1e-6)


def small_nnetsauce_forest() -> tuple[ns.CustomClassifier, np.ndarray]:
    X, y = load("iris_dataset2")
    model = ns.CustomClassifier(
        obj=RandomForestClassifier(n_estimators=10, random_state=123), n_hidden_features=5, seed=123
    ).fit(X, y)
    return model, X


def test_nnetsauce_over_trees_goes_to_nnetsauce_tree():
    model, X = small_nnetsauce_forest()
    assert choose_explainer(model) == "nnetsauce-tree"
    result = explain_shap(
        model, X[:20], X[:5], task="classification", random_state=9, row_ids=np.arange(40, 45)
    )
    assert result["explainer"] == "nnetsauce-tree"
    assert result["values"].shape == (5, X.shape[1], 3)
    total = result["values"].sum(axis=1) + result["base_values"]
    np.testing.assert_allclose(total, model.predict_proba(X[:5]), rtol=1e-6, atol=1e-9)


def test_nnetsauce_over_a_non_tree_model_goes_to_agnostic():
    X, y = load("iris_dataset2")
    model = ns.CustomClassifier(obj=LogisticRegression(max_iter=500), n_hidden_features=5, seed=123).fit(X, y)
    assert choose_explainer(model) == "agnostic"


def test_black_box_classifier_goes_to_agnostic_in_probability_space():
    X, y = load("iris_dataset2")
    model = LogisticRegression(max_iter=500).fit(X, y)
    assert choose_explainer(model) == "agnostic"
    result = explain_shap(model, X[:15], X[:4], task="classification", random_state=0)
    assert result.keys() >= CONTRACT_KEYS
    assert result["output_space"] == "probability"
    assert result["values"].shape == (4, X.shape[1], 3)
    total = result["values"].sum(axis=1) + result["base_values"]
    np.testing.assert_allclose(total, model.predict_proba(X[:4]), rtol=1e-6, atol=1e-9)


def test_nnetsauce_regressor_goes_to_agnostic_in_raw_space():
    X, y = load("diabetes_dataset2")
    model = ns.CustomRegressor(obj=ElasticNet(random_state=123), n_hidden_features=5, seed=123).fit(X, y)
    result = explain_shap(model, X[:10], X[:3], task="regression", random_state=0)
    assert result["output_space"] == "raw" and result["values"].shape == (3, X.shape[1])
    total = result["values"].sum(axis=1) + result["base_values"]
    np.testing.assert_allclose(total, model.predict(X[:3]), rtol=1e-6)


def test_nnetsauce_forest_regressor_goes_to_agnostic():
    """Per-pair TreeSHAP over a regression forest's deep trees costs far more than sampling."""
    from sklearn.ensemble import RandomForestRegressor

    X, y = load("boston_dataset2")
    model = ns.CustomRegressor(RandomForestRegressor(n_estimators=5, random_state=0), seed=123).fit(X, y)
    assert choose_explainer(model) == "agnostic"
