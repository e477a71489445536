"""Categorical features: native TreeSHAP of xgboost and LightGBM equals the library's own contributions,
and a one-hot model's values are per original column, the sums of its one-hot columns'."""

from __future__ import annotations

import json

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Ridge

from shared.ml.categories import OneHotModel, with_categories
from shared.ml.explain.shap import explain_shap
from shared.ml.explain.tree import tree_shap


def categorical_data(n_rows: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A numeric column (with missing values) and a categorical one (codes 0..5, some missing) that
    moves the target by category, not by code order."""
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.normal(size=n_rows), rng.integers(0, 6, n_rows).astype(float)])
    y = X[:, 0] + 2.0 * np.isin(X[:, 1], [1, 4]) + rng.normal(scale=0.3, size=n_rows)
    X[::37, 0] = np.nan
    X[::41, 1] = np.nan
    return X, y


def test_xgboost_native_categorical_treeshap_is_its_pred_contribs() -> None:
    X, y = categorical_data()
    model = with_categories(xgboost.XGBRegressor(n_estimators=20, max_depth=3, n_jobs=1), [1], 2, 50)
    model.fit(X, y)
    matrix = xgboost.DMatrix(X, feature_types=["q", "c"], enable_categorical=True)
    native = model.get_booster().predict(matrix, pred_contribs=True)
    trees = model.get_booster().get_dump(dump_format="json")
    assert any('"split_condition": [' in tree for tree in trees)  # the trees split on category sets
    ours = tree_shap(model, X, task="regression")
    np.testing.assert_allclose(ours["values"], native[:, :-1], atol=1e-6)


def test_lightgbm_native_categorical_treeshap_is_its_pred_contrib() -> None:
    X, y = categorical_data()
    model = with_categories(lightgbm.LGBMRegressor(n_estimators=20, verbose=-1, n_jobs=1), [1], 2, 50)
    model.fit(X, y)
    assert '"=="' in json.dumps(model.booster_.dump_model())  # the trees split on category sets
    native = model.predict(X, pred_contrib=True)
    ours = tree_shap(model, X, task="regression")
    np.testing.assert_allclose(ours["values"], native[:, :-1], atol=1e-6)


@pytest.mark.parametrize("inner", ["tree", "linear"])
def test_a_one_hot_model_explains_each_original_column(inner: str) -> None:
    X, y = categorical_data()
    X = np.nan_to_num(X)  # these models take no missing values
    base = GradientBoostingRegressor(n_estimators=20, random_state=0) if inner == "tree" else Ridge()
    model = with_categories(base, [1], 2, 50)
    assert isinstance(model, OneHotModel)
    model.fit(X, y)
    assert model.encode(X).shape[1] == 1 + len(np.unique(X[:, 1]))
    result = explain_shap(model, X[:50], X[:20], task="regression", random_state=0)
    assert result["values"].shape == (20, 2)
    np.testing.assert_allclose(
        result["values"].sum(axis=1) + result["base_values"], model.predict(X[:20]), atol=1e-6
    )
    if inner == "tree":  # the inner model's TreeSHAP on the one-hot columns, summed per column
        encoded = tree_shap(base, model.encode(X[:20]), task="regression")["values"]
        np.testing.assert_allclose(result["values"][:, 1], encoded[:, 1:].sum(axis=1), atol=1e-9)


def test_catboost_native_categorical_treeshap_is_its_shap_values() -> None:
    import catboost

    X, y = categorical_data()
    model = with_categories(catboost.CatBoostRegressor(iterations=20, depth=3, verbose=0), [1], 2, 50)
    model.fit(X, y)
    assert model.model.get_cat_feature_indices() == [1]
    codes = np.where(np.isnan(X[:, 1]), -1, X[:, 1]).astype(int)
    frame = pd.DataFrame({0: X[:, 0], 1: codes})
    native = model.model.get_feature_importance(catboost.Pool(frame, cat_features=[1]), type="ShapValues")
    ours = tree_shap(model, X, task="regression")
    np.testing.assert_allclose(ours["values"], native[:, :-1], atol=1e-6)
    np.testing.assert_allclose(ours["values"].sum(axis=1) + ours["base_values"], model.predict(X), atol=1e-6)
