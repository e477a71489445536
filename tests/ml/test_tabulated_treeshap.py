"""The tabulated TreeSHAP kernel: the values of xgboost's pred_contribs and lightgbm's pred_contrib, on
every kind of tree it accepts, and None (the library's own path) for the trees it does not."""

from __future__ import annotations

import itertools
import math

import lightgbm
import numpy as np
import pytest
import xgboost

from shared.ml.explain import _tabulated_treeshap as kernel
from shared.ml.explain.tree import tree_shap


def _data(seed: int, n: int = 600, p: int = 6, missing: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = X[:, 0] + X[:, 1] * X[:, 2] - np.abs(X[:, 3]) + 0.3 * rng.normal(size=n)
    if missing:
        X[rng.random(X.shape) < missing] = np.nan
    return X, y


def _native(booster: xgboost.Booster, X: np.ndarray, iteration_range: tuple[int, int] = (0, 0)) -> np.ndarray:
    return booster.predict(xgboost.DMatrix(X), pred_contribs=True, iteration_range=iteration_range)


def _ours(booster: xgboost.Booster, X: np.ndarray, iteration_range=(0, 0), n_threads: int = 1) -> np.ndarray:
    compiled = kernel.compile_xgboost(booster, iteration_range)
    assert compiled is not None
    return _run(compiled, X, n_threads)


def _run(compiled: kernel.CompiledTrees, X: np.ndarray, n_threads: int = 1) -> np.ndarray:
    found = kernel.contributions(compiled, X, n_threads)
    return found[:, 0] if compiled.n_outputs == 1 else found


def _lightgbm_native(model, X: np.ndarray) -> np.ndarray:
    found = model.predict(X, pred_contrib=True)
    width = X.shape[1] + 1
    return found.reshape(X.shape[0], -1, width) if found.shape[1] > width else found


def _lightgbm(**params):
    return lightgbm.LGBMRegressor(**{"n_estimators": 20, "verbose": -1, "n_jobs": 1, **params})


def _assert_same_values(ours: np.ndarray, native: np.ndarray) -> None:
    """Equal up to xgboost's float32 sums; the bias column differs by xgboost's base score only."""
    np.testing.assert_allclose(ours[..., :-1], native[..., :-1], rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("max_depth", [1, 3, 6])
def test_regression_equals_pred_contribs(max_depth):
    X, y = _data(0)
    booster = xgboost.XGBRegressor(n_estimators=30, max_depth=max_depth, n_jobs=1).fit(X, y).get_booster()
    _assert_same_values(_ours(booster, X), _native(booster, X))


def test_small_and_large_trees_take_their_own_tables(monkeypatch):
    """Depth 3 fits a per-tree table of every decision vector; without it, the per-leaf tables alone."""
    X, y = _data(1)
    booster = xgboost.XGBRegressor(n_estimators=20, max_depth=3, n_jobs=1).fit(X, y).get_booster()
    compiled = kernel.compile_xgboost(booster, (0, 0))
    assert (compiled.tree_table_start >= 0).all()
    monkeypatch.setattr(kernel, "MAX_TREE_SPLITS", 0)
    leaf_only = kernel.compile_xgboost(booster, (0, 0))
    assert (leaf_only.tree_table_start[compiled.split_start[1:] > compiled.split_start[:-1]] == -1).all()
    np.testing.assert_allclose(
        kernel.contributions(leaf_only, X), kernel.contributions(compiled, X), rtol=0, atol=1e-12
    )


def test_multiclass_with_missing_values_and_repeated_features():
    """Missing values follow each split's default direction; deep trees split the same feature twice."""
    X, y = _data(2, missing=0.1)
    labels = np.digitize(np.nan_to_num(y), [-0.5, 0.5])
    model = xgboost.XGBClassifier(n_estimators=15, max_depth=5, n_jobs=1).fit(X, labels)
    booster = model.get_booster()
    ours, native = _ours(booster, X), _native(booster, X)
    assert ours.shape == native.shape == (X.shape[0], 3, X.shape[1] + 1)
    _assert_same_values(ours, native)


def test_binary_logistic_and_several_threads():
    X, y = _data(3)
    booster = xgboost.XGBClassifier(n_estimators=25, max_depth=4, n_jobs=1).fit(X, y > 0).get_booster()
    native = _native(booster, X)
    _assert_same_values(_ours(booster, X), native)
    _assert_same_values(_ours(booster, X, n_threads=3), native)


def test_iteration_range_keeps_the_first_trees():
    X, y = _data(4)
    booster = xgboost.XGBRegressor(n_estimators=40, max_depth=3, n_jobs=1).fit(X, y).get_booster()
    _assert_same_values(_ours(booster, X, (0, 12)), _native(booster, X, (0, 12)))


def test_values_are_the_shapley_values_of_the_path_dependent_game():
    """Against the Shapley formula itself on a tiny booster (not against another implementation)."""
    X, y = _data(5, n=200, p=4)
    model = xgboost.XGBRegressor(n_estimators=3, max_depth=3, n_jobs=1).fit(X, y)
    trees = [tree for tree in _parsed_trees(model.get_booster())]
    x = X[7].astype(np.float32)

    def game(subset: frozenset[int]) -> float:
        return sum(_expected_given(tree, x, subset, 0) for tree in trees)

    players = range(X.shape[1])
    exact = np.zeros(X.shape[1])
    for i in players:
        others = [j for j in players if j != i]
        for size in range(len(others) + 1):
            weight = (
                math.factorial(size) * math.factorial(len(others) - size) / math.factorial(len(others) + 1)
            )
            for subset in itertools.combinations(others, size):
                exact[i] += weight * (game(frozenset(subset) | {i}) - game(frozenset(subset)))
    ours = _ours(model.get_booster(), X[7:8])[0, :-1]
    np.testing.assert_allclose(ours, exact, rtol=1e-9, atol=1e-12)


def test_trees_it_does_not_cover_keep_xgboost_s_own_path(monkeypatch):
    X, y = _data(6)
    dart = xgboost.XGBRegressor(booster="dart", n_estimators=5, max_depth=3, n_jobs=1).fit(X, y)
    assert kernel.compile_xgboost(dart.get_booster(), (0, 0)) is None
    deep = xgboost.XGBRegressor(n_estimators=5, max_depth=8, n_jobs=1).fit(X, y)
    monkeypatch.setattr(kernel, "MAX_PATH_FEATURES", 2)
    assert kernel.compile_xgboost(deep.get_booster(), (0, 0)) is None
    # ... and tree_shap still answers, from pred_contribs
    values = tree_shap(deep, X[:50], task="regression")["values"]
    native = _native(deep.get_booster(), X[:50])
    np.testing.assert_array_equal(values, native[:, :-1].astype(float))


def _parsed_trees(booster: xgboost.Booster) -> list[dict]:
    import json

    return json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]


def _expected_given(tree: dict, x: np.ndarray, known: frozenset[int], node: int) -> float:
    """E[tree(x) | x_known] as path-dependent TreeSHAP defines it: unknown splits follow cover shares."""
    left, right = tree["left_children"][node], tree["right_children"][node]
    if left == -1:
        return tree["split_conditions"][node]
    feature = tree["split_indices"][node]
    if feature in known:
        goes_left = x[feature] < np.float32(tree["split_conditions"][node])
        return _expected_given(tree, x, known, left if goes_left else right)
    cover = tree["sum_hessian"]
    return (
        cover[left] * _expected_given(tree, x, known, left)
        + cover[right] * _expected_given(tree, x, known, right)
    ) / cover[node]


def test_worker_warm_up_compiles_the_signatures_a_job_uses():
    """The worker compiles (or loads) the kernels at start: a job's call must not add a specialisation,
    which every fresh worker process would compile inside its first job."""
    kernel.warm_up()
    dispatchers = (kernel._leaf_tables, kernel._tree_tables, kernel._add_rows)
    warmed = {dispatcher: set(dispatcher.signatures) for dispatcher in dispatchers}
    X, y = _data(7)
    for model in (
        lightgbm.LGBMRegressor(n_estimators=5, max_depth=3, verbose=-1, n_jobs=2).fit(X, y),
        xgboost.XGBRegressor(n_estimators=5, max_depth=3, n_jobs=2).fit(X, y),
        xgboost.XGBClassifier(n_estimators=5, max_depth=6, n_jobs=1).fit(X, np.digitize(y, [-0.5, 0.5])),
    ):
        tree_shap(
            model, X, task="regression" if isinstance(model, xgboost.XGBRegressor) else "classification"
        )
    for dispatcher, signatures in warmed.items():
        assert set(dispatcher.signatures) == signatures


@pytest.mark.parametrize("max_depth", [2, 3, 5])
def test_lightgbm_regression_equals_pred_contrib(max_depth):
    X, y = _data(10)
    model = _lightgbm(max_depth=max_depth, num_leaves=2**max_depth).fit(X, y)
    compiled = kernel.compile_lightgbm(model.booster_, None)
    np.testing.assert_allclose(
        _run(compiled, X)[:, :-1], _lightgbm_native(model, X)[:, :-1], rtol=1e-10, atol=1e-13
    )


def test_lightgbm_missing_values_both_ways_and_multiclass():
    """Trained with missing values (missing type NaN: they follow the default branch), and trained
    without them but asked with them (missing type None: lightgbm reads them as 0.0)."""
    X, y = _data(11, missing=0.1)
    labels = np.digitize(np.nan_to_num(y), [-0.5, 0.5])
    model = lightgbm.LGBMClassifier(n_estimators=10, max_depth=4, verbose=-1, n_jobs=1).fit(X, labels)
    compiled = kernel.compile_lightgbm(model.booster_, None)
    ours, native = _run(compiled, X), _lightgbm_native(model, X)
    assert ours.shape == native.shape == (X.shape[0], 3, X.shape[1] + 1)
    np.testing.assert_allclose(ours[..., :-1], native[..., :-1], rtol=1e-10, atol=1e-13)

    clean, y_clean = _data(12)
    model = _lightgbm(max_depth=3).fit(clean, y_clean)
    holes = clean.copy()
    holes[::3, 0] = np.nan
    compiled = kernel.compile_lightgbm(model.booster_, None)
    np.testing.assert_allclose(
        _run(compiled, holes)[:, :-1], _lightgbm_native(model, holes)[:, :-1], rtol=1e-10, atol=1e-13
    )


def test_lightgbm_trees_it_does_not_cover_keep_lightgbm_s_own_path():
    X, y = _data(13)
    zero_missing = _lightgbm(max_depth=3, zero_as_missing=True).fit(np.where(X > 1, 0.0, X), y)
    assert kernel.compile_lightgbm(zero_missing.booster_, None) is None
    linear = _lightgbm(max_depth=3, linear_tree=True).fit(X, y)
    assert kernel.compile_lightgbm(linear.booster_, None) is None
    zeroed = np.where(X[:40] > 1, 0.0, X[:40])
    values = tree_shap(zero_missing, zeroed, task="regression")["values"]
    np.testing.assert_array_equal(values, _lightgbm_native(zero_missing, zeroed)[:, :-1])


def test_lightgbm_after_early_stopping_explains_the_trees_it_predicts_with():
    X, y = _data(14)
    model = _lightgbm(max_depth=3, n_estimators=200, learning_rate=0.3).fit(
        X[:400], y[:400], eval_set=[(X[400:], y[400:])], callbacks=[lightgbm.early_stopping(3, verbose=False)]
    )
    assert 0 < model.best_iteration_ < 200
    values = tree_shap(model, X, task="regression")
    np.testing.assert_allclose(values["values"], _lightgbm_native(model, X)[:, :-1], rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(
        values["values"].sum(axis=1) + values["base_values"], model.predict(X), atol=1e-12
    )
