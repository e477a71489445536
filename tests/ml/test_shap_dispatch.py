"""explain_shap sends each model kind to the intended explainer and returns the contract's keys."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import lightgbm
import nnetsauce as ns
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import ElasticNet, LogisticRegression

from shared.ml.explain.shap import choose_explainer, explain_shap

DATA = Path(__file__).resolve().parents[1] / "data"
CONTRACT_KEYS = {
    "method",
    "values",
    "base_values",
    "explainer",
    "exact",
    "output_space",
    "n_model_evals",
    "error_estimate",
    "notes",
}
NNETSAUCE_TREE = "shared.ml.explain.nnetsauce_tree"


def load(name: str) -> tuple[np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA / f"{name}.csv").drop(columns="training_index")
    y = frame.pop("target").to_numpy()
    return frame.to_numpy(dtype=float), y


def fake_nnetsauce_tree(monkeypatch, *, supported: bool) -> list:
    """Stand in for the nnetsauce_tree module (another engineer's); records the calls it receives."""
    calls = []
    module = ModuleType(NNETSAUCE_TREE)
    module.supports = lambda model: supported
    module.affordable = lambda model: True

    def explain_nnetsauce_tree(model, X_background, X_explain, *, task, random_state, row_ids, progress):
        calls.append({"task": task, "random_state": random_state, "row_ids": row_ids})
        return {
            "values": np.zeros((X_explain.shape[0], X_explain.shape[1], 2)),
            "explainer": "nnetsauce-tree",
        }

    module.explain_nnetsauce_tree = explain_nnetsauce_tree
    monkeypatch.setitem(sys.modules, NNETSAUCE_TREE, module)
    return calls


def test_boosters_go_to_exact_treeshap():
    X, y = load("iris_dataset2")
    booster = lightgbm.LGBMClassifier(n_estimators=10, max_depth=3, verbose=-1, n_jobs=1).fit(X, y)
    result = explain_shap(booster, X[:10], X, task="classification", random_state=0)
    assert result.keys() >= CONTRACT_KEYS
    assert result["explainer"] == "tree" and result["exact"] is True and result["method"] == "shap"
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


def test_nnetsauce_over_trees_goes_to_nnetsauce_tree_when_supported(monkeypatch):
    calls = fake_nnetsauce_tree(monkeypatch, supported=True)
    model, X = small_nnetsauce_forest()
    assert choose_explainer(model) == "nnetsauce-tree"
    result = explain_shap(
        model, X[:20], X[:5], task="classification", random_state=9, row_ids=np.arange(40, 45)
    )
    assert result["explainer"] == "nnetsauce-tree" and result["method"] == "shap"
    assert calls[0]["random_state"] == 9 and list(calls[0]["row_ids"]) == [40, 41, 42, 43, 44]


def test_nnetsauce_goes_to_agnostic_when_unsupported_or_absent(monkeypatch):
    fake_nnetsauce_tree(monkeypatch, supported=False)
    model, _ = small_nnetsauce_forest()
    assert choose_explainer(model) == "agnostic"
    monkeypatch.setitem(sys.modules, NNETSAUCE_TREE, None)  # as if the module did not exist
    assert choose_explainer(model) == "agnostic"


def test_black_box_classifier_goes_to_agnostic_in_probability_space():
    X, y = load("iris_dataset2")
    model = LogisticRegression(max_iter=500).fit(X, y)
    assert choose_explainer(model) == "agnostic"
    result = explain_shap(model, X[:15], X[:4], task="classification", random_state=0)
    assert result.keys() >= CONTRACT_KEYS
    assert result["output_space"] == "probability" and result["method"] == "shap"
    assert result["values"].shape == (4, X.shape[1], 3)
    total = result["values"].sum(axis=1) + result["base_values"]
    np.testing.assert_allclose(total, model.predict_proba(X[:4]), rtol=1e-6, atol=1e-9)


def test_nnetsauce_regressor_goes_to_agnostic_in_raw_space(monkeypatch):
    monkeypatch.setitem(sys.modules, NNETSAUCE_TREE, None)
    X, y = load("diabetes_dataset2")
    model = ns.CustomRegressor(obj=ElasticNet(random_state=123), n_hidden_features=5, seed=123).fit(X, y)
    result = explain_shap(model, X[:10], X[:3], task="regression", random_state=0)
    assert result["output_space"] == "raw" and result["values"].shape == (3, X.shape[1])
    total = result["values"].sum(axis=1) + result["base_values"]
    np.testing.assert_allclose(total, model.predict(X[:3]), rtol=1e-6)


def test_real_nnetsauce_tree_module_is_used_for_a_nnetsauce_forest():
    module = pytest.importorskip(NNETSAUCE_TREE)
    model, _ = small_nnetsauce_forest()
    if not module.supports(model):
        pytest.fail("nnetsauce_tree does not support the default /mlclassification model")
    assert choose_explainer(model) == "nnetsauce-tree"


def test_nnetsauce_forest_regressor_goes_to_agnostic():
    """Per-pair TreeSHAP over a regression forest's deep trees costs far more than sampling."""
    from sklearn.ensemble import RandomForestRegressor

    X, y = load("boston_dataset2")
    model = ns.CustomRegressor(RandomForestRegressor(n_estimators=5, random_state=0), seed=123).fit(X, y)
    assert choose_explainer(model) == "agnostic"
