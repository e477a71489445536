"""Our batched permutation importance must give scikit-learn's numbers, for any model and feature span."""

from __future__ import annotations

from pathlib import Path

import nnetsauce as ns
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.inspection import permutation_importance as sklearn_permutation_importance
from sklearn.linear_model import ElasticNet

from shared.ml.errors import ParameterError
from shared.ml.explain.permutation import permutation_importance

DATA = Path(__file__).resolve().parents[1] / "data"


def load(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA / f"{name}.csv")
    train = frame.pop("training_index").to_numpy() == 1
    y = frame.pop("target").to_numpy()
    X = frame.to_numpy(dtype=float)
    return X[train], y[train], X[~train], y[~train]


def assert_same_as_sklearn(ours: dict, theirs, span: slice = slice(None)) -> None:
    np.testing.assert_allclose(ours["importances"], theirs.importances[span], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["importances_mean"], theirs.importances_mean[span], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["importances_std"], theirs.importances_std[span], rtol=0, atol=1e-12)


def test_random_forest_classifier_equals_sklearn():
    X_train, y_train, X_test, y_test = load("iris_dataset2")
    model = RandomForestClassifier(n_estimators=20, random_state=0).fit(X_train, y_train)
    ours = permutation_importance(model, X_test, y_test, task="classification", n_repeats=5, random_state=7)
    theirs = sklearn_permutation_importance(
        model, X_test, y_test, scoring="accuracy", n_repeats=5, random_state=7
    )
    assert_same_as_sklearn(ours, theirs)
    assert ours["scoring"] == "accuracy"
    assert np.abs(ours["importances"]).sum() > 0  # the comparison is not between two arrays of zeros


def test_nnetsauce_classifier_equals_sklearn_in_few_predict_calls():
    X_train, y_train, X_test, y_test = load("breast_cancer_dataset2")
    model = ns.CustomClassifier(
        obj=RandomForestClassifier(n_estimators=30, random_state=123), n_hidden_features=5, seed=123
    ).fit(X_train, y_train)
    ours = permutation_importance(model, X_test, y_test, task="classification", n_repeats=3, random_state=123)
    theirs = sklearn_permutation_importance(
        model, X_test, y_test, scoring="accuracy", n_repeats=3, random_state=123
    )
    assert_same_as_sklearn(ours, theirs)
    assert ours["n_predict_calls"] == 1
    assert ours["n_model_evals"] == X_test.shape[0] * (1 + 30 * 3)


def test_regression_equals_sklearn_with_small_batches():
    X_train, y_train, X_test, y_test = load("diabetes_dataset2")
    model = ElasticNet(alpha=0.01, random_state=123).fit(X_train, y_train)
    # A batch smaller than one block forces the row-split path as well as the block grouping.
    ours = permutation_importance(
        model, X_test, y_test, task="regression", n_repeats=4, random_state=3, max_batch_cells=50 * 10
    )
    theirs = sklearn_permutation_importance(model, X_test, y_test, scoring="r2", n_repeats=4, random_state=3)
    assert_same_as_sklearn(ours, theirs)
    assert ours["scoring"] == "r2"
    assert ours["n_predict_calls"] > 1 + 10 * 4


def test_feature_span_equals_the_same_columns_of_the_whole():
    X_train, y_train, X_test, y_test = load("boston_dataset2")
    model = ElasticNet(alpha=0.1, random_state=123).fit(X_train, y_train)
    theirs = sklearn_permutation_importance(model, X_test, y_test, scoring="r2", n_repeats=3, random_state=11)
    parts = [
        permutation_importance(
            model, X_test, y_test, task="regression", n_repeats=3, random_state=11, features=span
        )
        for span in [(0, 5), (5, 6), (6, 13)]
    ]
    assert_same_as_sklearn(parts[0], theirs, slice(0, 5))
    assert_same_as_sklearn(parts[2], theirs, slice(6, 13))
    stitched = np.concatenate([part["importances"] for part in parts])
    np.testing.assert_allclose(stitched, theirs.importances, rtol=0, atol=1e-12)
    assert parts[2]["importances"].shape == (7, 3)


def test_rejects_an_empty_or_out_of_range_span():
    X = np.zeros((4, 3))
    model = ElasticNet().fit(X, np.arange(4.0))
    with pytest.raises(ParameterError):
        permutation_importance(model, X, np.arange(4.0), task="regression", random_state=0, features=(2, 5))
    with pytest.raises(ParameterError):
        permutation_importance(model, X, np.arange(4.0), task="regression", random_state=0, features=(1, 1))
