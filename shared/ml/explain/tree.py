"""Exact TreeSHAP for tree models, from each library's own implementation, in one common shape.

Boosters (xgboost, lightgbm, catboost) compute path-dependent TreeSHAP natively in C++; xgboost's and
lightgbm's trees go through this package's tabulated kernel instead when it covers them
(`_tabulated_treeshap`: the same values, several times faster); scikit-learn trees go through
`shap.TreeExplainer`. The results are
reshaped to the service's convention: (n, p) for regression, (n, p, k) for classification, also when a
binary booster has a single margin.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.ml.categories import CatBoostCategories, OneHotModel, categorical_features
from shared.ml.errors import ParameterError
from shared.ml.explain._predict import library_of
from shared.ml.spec import Task

if TYPE_CHECKING:  # the kernel imports numba (2 s): only a process that explains loads it
    from shared.ml.explain._tabulated_treeshap import CompiledTrees

ProgressFn = Callable[[int, int], None]

#: Rows per native call: bounds memory (p x k floats per row, p^2 x k with interactions) and paces progress.
CHUNK_ROWS = 5_000  # about 5 s of single-threaded TreeSHAP at 100 features: progress every few seconds

SKLEARN_TREE_MODELS = frozenset(
    {
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
        "HistGradientBoostingClassifier",
        "HistGradientBoostingRegressor",
    }
)
#: scikit-learn models whose trees add up to class probabilities rather than to a margin.
SKLEARN_PROBABILITY_MODELS = frozenset(
    {"DecisionTreeClassifier", "RandomForestClassifier", "ExtraTreesClassifier"}
)


def supports(model: Any) -> bool:
    """Whether `tree_shap` can explain this model exactly (a tree model, or one on one-hot columns)."""
    if isinstance(model, OneHotModel):
        return supports(model.model)
    library = library_of(model)
    if library in {"xgboost", "lightgbm", "catboost"}:
        return hasattr(model, "predict")
    return library == "sklearn" and type(model).__name__ in SKLEARN_TREE_MODELS


def tree_shap(
    model: Any,
    X_explain: np.ndarray,
    *,
    task: Task,
    interactions: bool = False,
    progress: ProgressFn | None = None,
) -> dict[str, Any]:
    """Exact SHAP values of a tree model; with `interactions`, also "interaction_values" (xgboost, sklearn).

    Values are path-dependent TreeSHAP (the trees' own cover stands in for the background data), so no
    background sample is needed and there is no sampling error.
    """
    if not supports(model):
        name = type(model).__name__
        raise ParameterError("unsupported_tree_model", f"{name} is not a supported tree model.")
    if isinstance(model, OneHotModel):
        return _summed_per_column(model, X_explain, task, interactions, progress)
    X_explain = np.asarray(X_explain, dtype=float)
    n_rows = X_explain.shape[0]
    compiled = None if interactions else _compiled(model)
    pieces = []
    for start in range(0, n_rows, CHUNK_ROWS):
        chunk = X_explain[start : start + CHUNK_ROWS]
        pieces.append(_contributions(model, chunk, task, interactions, compiled))
        if progress is not None:
            progress(min(n_rows, start + CHUNK_ROWS), n_rows)
    if not pieces:
        pieces.append(_contributions(model, X_explain[:0], task, interactions, compiled))
    result: dict[str, Any] = {
        key: np.concatenate([piece[key] for piece in pieces]) for key in pieces[0] if key != "space"
    }
    result.update(exact_description(pieces[0]["space"]))
    return result


def exact_description(space: tuple[str, str]) -> dict[str, Any]:
    """How an exact TreeSHAP result was made, from `from_native`'s "space" (the output space, the notes):
    a SHAP result's fields besides its values."""
    output_space, notes = space
    return {
        "explainer": "tree",
        "exact": True,
        "output_space": output_space,
        "n_model_evals": 0,
        "error_estimate": None,
        "notes": notes,
    }


def _summed_per_column(
    model: OneHotModel, X: np.ndarray, task: Task, interactions: bool, progress: ProgressFn | None
) -> dict[str, Any]:
    """TreeSHAP of the inner model on the one-hot columns, each original column's values the sum of its
    one-hot columns' (the total, and so additivity, unchanged)."""
    result = tree_shap(model.model, model.encode(X), task=task, interactions=interactions, progress=progress)
    result["values"] = model.sum_groups(result["values"])
    if "interaction_values" in result:
        result["interaction_values"] = model.sum_groups(result["interaction_values"], axes=(1, 2))
    result["notes"] += " The categorical columns were one-hot encoded: each one's values are summed."
    return result


def _contributions(
    model: Any, X: np.ndarray, task: Task, interactions: bool, compiled: CompiledTrees | None = None
) -> dict[str, Any]:
    """values / base_values (and interaction_values) in the common shape, plus ("space", notes)."""
    library = library_of(model)
    if library == "xgboost":
        raw = _xgboost(model, X, interactions, compiled)
    elif library == "lightgbm":
        _refuse_interactions(interactions, "lightgbm")
        raw = _lightgbm(model, X, compiled)
    elif library == "catboost":
        _refuse_interactions(interactions, "catboost")
        raw = {"values": _catboost(model, X)}
    else:
        return _sklearn(model, X, task, interactions)
    return from_native(raw, task, library)


def _refuse_interactions(interactions: bool, library: str) -> None:
    if interactions:
        raise ParameterError(
            "interactions_unsupported", f"SHAP interaction values are not available for {library} models."
        )


def _compiled(model: Any) -> CompiledTrees | None:
    """The booster's trees tabulated (`_tabulated_treeshap`), or None: the library's own contributions."""
    from shared.ml.explain._tabulated_treeshap import compile_lightgbm, compile_xgboost

    library = library_of(model)
    if categorical_features(model):  # category sets in the splits: the library's own TreeSHAP
        return None
    if library == "xgboost":
        if not np.isnan(getattr(model, "missing", np.nan)):  # a custom missing value: xgboost's own rule
            return None
        return compile_xgboost(model.get_booster(), _xgboost_iteration_range(model))
    if library == "lightgbm":
        return compile_lightgbm(model.booster_, getattr(model, "best_iteration_", None))
    return None


TABULATED_SOURCE = (
    "{library}'s trees, each leaf's Shapley values tabulated once per model (the values of {library}'s "
    "own TreeSHAP, computed in float64)"
)


def _tabulated(compiled: CompiledTrees, model: Any, X: np.ndarray) -> np.ndarray:
    """The kernel's contributions (n, [k,] p + 1), a single output's axis dropped; the bias still zero."""
    from shared.ml.explain._tabulated_treeshap import contributions

    found = contributions(compiled, X, _threads(model))
    return found[:, 0] if compiled.n_outputs == 1 else found


def set_bias(contributions: np.ndarray, margin: np.ndarray) -> None:
    """The bias column takes the margin minus the values, so each row adds up to the model's margin in
    float64 (absorbing xgboost's float32 sums, or the kernel's order of additions)."""
    contributions[..., -1] = margin - contributions[..., :-1].sum(axis=-1)


def _threads(model: Any) -> int:
    """The threads the model was built to use (its n_jobs; None or negative: every core)."""
    n_jobs = getattr(model, "n_jobs", None)
    return n_jobs if isinstance(n_jobs, int) and n_jobs > 0 else os.cpu_count() or 1


def _xgboost(
    model: Any, X: np.ndarray, interactions: bool, compiled: CompiledTrees | None = None
) -> dict[str, Any]:
    """xgboost's contributions: (n, [k,] p + 1) with the bias last; interactions (n, [k,] p+1, p+1).

    From the tabulated kernel when `compiled` is given (the margin then from `inplace_predict`, without
    copying X into a DMatrix: the same float32 margins), else from xgboost's `pred_contribs`."""
    import xgboost

    booster = model.get_booster()
    missing = getattr(model, "missing", np.nan)
    iteration_range = _xgboost_iteration_range(model)
    if compiled is not None:
        contributions = _tabulated(compiled, model, X)
        margin = booster.inplace_predict(
            X, predict_type="margin", iteration_range=iteration_range, missing=missing
        )
        set_bias(contributions, margin)
        return {"values": contributions, "source": TABULATED_SOURCE.format(library="xgboost")}
    categorical = categorical_features(model)
    matrix = xgboost.DMatrix(
        X,
        missing=missing,
        feature_types=model.feature_types if categorical else None,
        enable_categorical=categorical,
    )
    contributions = booster.predict(matrix, pred_contribs=True, iteration_range=iteration_range).astype(float)
    set_bias(contributions, booster.predict(matrix, output_margin=True, iteration_range=iteration_range))
    raw: dict[str, Any] = {"values": contributions}
    if interactions:
        raw["interaction_values"] = booster.predict(
            matrix, pred_interactions=True, iteration_range=iteration_range
        )
    return raw


def _xgboost_iteration_range(model: Any) -> tuple[int, int]:
    """The trees the sklearn wrapper's predict uses: up to the best iteration after early stopping."""
    try:
        return 0, int(model.best_iteration) + 1
    except AttributeError:
        return 0, 0


def _lightgbm(model: Any, X: np.ndarray, compiled: CompiledTrees | None = None) -> dict[str, Any]:
    """lightgbm's contributions (n, [k,] p + 1), the bias last: from the tabulated kernel when `compiled`
    is given (the bias then the raw score minus the values), else from its `pred_contrib` (multiclass
    blocks (n, k * (p + 1)) reshaped to (n, k, p + 1))."""
    if compiled is not None:
        contributions = _tabulated(compiled, model, X)
        set_bias(contributions, model.predict(X, raw_score=True))
        return {"values": contributions, "source": TABULATED_SOURCE.format(library="lightgbm")}
    contributions = np.asarray(model.predict(X, pred_contrib=True), dtype=float)
    width = X.shape[1] + 1
    if contributions.shape[1] > width:
        contributions = contributions.reshape(X.shape[0], -1, width)
    return {"values": contributions}


def _catboost(model: Any, X: np.ndarray) -> np.ndarray:
    import catboost

    pool = model.pool(X) if isinstance(model, CatBoostCategories) else catboost.Pool(X)
    return np.asarray(model.get_feature_importance(pool, type="ShapValues"), dtype=float)


def from_native(raw: dict[str, Any], task: Task, library: str) -> dict[str, Any]:
    """Split the bias column off native contributions and move the class axis last."""
    source = raw.get("source", f"{library}'s native contributions")
    contributions = np.asarray(raw["values"], dtype=float)
    values, base = contributions[..., :-1], contributions[..., -1]
    result: dict[str, Any] = {"values": values, "base_values": base}
    if "interaction_values" in raw:
        result["interaction_values"] = np.asarray(raw["interaction_values"], dtype=float)[..., :-1, :-1]
    if task == "regression":
        result["space"] = ("raw", f"Exact TreeSHAP from {source}, on the prediction.")
        return result
    if values.ndim == 2:
        result = _binary_margin_as_two_classes(result)
        notes = (
            f"Exact TreeSHAP from {source} on the log-odds margin; "
            "class 1 is the margin's contributions and class 0 their negation."
        )
        result["space"] = ("log-odds", notes)
        return result
    result["values"] = np.moveaxis(values, 1, -1)
    result["base_values"] = base[:, :, 0] if base.ndim == 3 else base
    if "interaction_values" in result:
        result["interaction_values"] = np.moveaxis(result["interaction_values"], 1, -1)
    notes = (
        f"Exact TreeSHAP from {source} on each class's margin "
        "(the softmax input, log-odds up to a per-row constant)."
    )
    result["space"] = ("log-odds", notes)
    return result


def _binary_margin_as_two_classes(result: dict[str, Any]) -> dict[str, Any]:
    """One margin m explains class 1 (log-odds m) and, negated, class 0 (log-odds -m)."""
    return {key: np.stack([-array, array], axis=-1) for key, array in result.items()}


def _sklearn(model: Any, X: np.ndarray, task: Task, interactions: bool) -> dict[str, Any]:
    """scikit-learn trees through shap.TreeExplainer, on the inputs' precision the trees compare in.

    Classic sklearn trees split float32 inputs; histogram boosting keeps float64 thresholds.
    """
    name = type(model).__name__
    if not name.startswith("HistGradientBoosting"):
        X = X.astype(np.float32).astype(float)
    if name == "GradientBoostingClassifier" and model.n_classes_ > 2:
        result = _multiclass_gradient_boosting(model, X, interactions)
    else:
        result = _shap_tree_explainer(model, X, interactions)
    if task == "regression":
        result["space"] = ("raw", "Exact TreeSHAP (shap.TreeExplainer, path-dependent) on the prediction.")
        return result
    if name in SKLEARN_PROBABILITY_MODELS:
        notes = "Exact TreeSHAP (shap.TreeExplainer, path-dependent) on class probabilities."
        result["space"] = ("probability", notes)
        return result
    if result["values"].ndim == 2:
        result = _binary_margin_as_two_classes(result)
        notes = (
            "Exact TreeSHAP (shap.TreeExplainer) on the log-odds margin; "
            "class 1 is the margin's contributions and class 0 their negation."
        )
    else:
        notes = "Exact TreeSHAP (shap.TreeExplainer) on each class's margin (the softmax input)."
    result["space"] = ("log-odds", notes)
    return result


def _shap_tree_explainer(model: Any, X: np.ndarray, interactions: bool) -> dict[str, Any]:
    import shap

    explainer = shap.TreeExplainer(model, model_output="raw")
    values = np.asarray(explainer.shap_values(X, check_additivity=False), dtype=float)
    result = {"values": values, "base_values": _broadcast_base(explainer.expected_value, values)}
    if interactions:
        result["interaction_values"] = np.asarray(explainer.shap_interaction_values(X), dtype=float)
    return result


def _multiclass_gradient_boosting(model: Any, X: np.ndarray, interactions: bool) -> dict[str, Any]:
    """shap refuses multiclass GradientBoostingClassifier: explain each class's tree sum separately.

    Class k's margin is init_k + learning_rate * sum of its regression trees; each sum is an ordinary
    tree ensemble for shap, and the (constant) init score joins the base value.
    """
    from shap.explainers._tree import SingleTree

    init = np.asarray(model._raw_predict_init(X[:1]), dtype=float)[0]
    per_class = []
    for k in range(model.n_classes_):
        trees = [SingleTree(tree.tree_, scaling=model.learning_rate) for tree in model.estimators_[:, k]]
        class_result = _shap_tree_explainer(trees, X, interactions)
        class_result["base_values"] = class_result["base_values"] + init[k]
        per_class.append(class_result)
    return {key: np.stack([part[key] for part in per_class], axis=-1) for key in per_class[0]}


def _broadcast_base(expected_value: Any, values: np.ndarray) -> np.ndarray:
    """shap's expected value (scalar, (1,) or (k,)) as one base value per row: (n,) or (n, k)."""
    base = np.ravel(np.asarray(expected_value, dtype=float))
    if values.ndim == 2:
        return np.full(values.shape[0], base[0])
    return np.tile(base, (values.shape[0], 1))
