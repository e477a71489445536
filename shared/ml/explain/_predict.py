"""A fitted model's outputs in the space its explanation lives in.

Explainers need the model as a plain function of an (m, p) array: class probabilities for a classifier,
predictions for a regressor, or a tree booster's margins (log-odds). One place says how each library
exposes them, so the explainers and the additivity checks agree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from shared.ml.spec import Task

OutputSpace = Literal["raw", "probability", "log-odds"]
PredictFn = Callable[[np.ndarray], np.ndarray]


def library_of(model: Any) -> str:
    """The top-level package a model class comes from ("sklearn", "xgboost", "nnetsauce", ...), or the
    library a wrapper of ours stands for (its `library`: a CatBoost model taking category codes)."""
    wrapped = getattr(type(model), "library", None)
    return wrapped if isinstance(wrapped, str) else type(model).__module__.split(".")[0]


def predict_fn_for(model: Any, task: Task) -> PredictFn:
    """(m, p) -> (m, k) class probabilities for classification, (m,) predictions for regression."""
    if task == "classification":
        return lambda rows: np.asarray(model.predict_proba(rows), dtype=float)
    return lambda rows: np.asarray(model.predict(rows), dtype=float).reshape(rows.shape[0])


def tree_margin(model: Any, X: np.ndarray) -> np.ndarray:
    """A booster's raw score before its link: (n,) for regression and binary, (n, k) for multiclass."""
    library = library_of(model)
    if library == "xgboost":
        margin = model.predict(X, output_margin=True)
    elif library == "lightgbm":
        margin = model.predict(X, raw_score=True)
    elif library == "catboost":
        margin = model.predict(X, prediction_type="RawFormulaVal")
    elif hasattr(model, "decision_function"):
        margin = model.decision_function(X)
    else:
        margin = model.predict(X)
    return np.asarray(margin, dtype=float)


def model_output(model: Any, X: np.ndarray, *, task: Task, output_space: OutputSpace) -> np.ndarray:
    """What an explanation in `output_space` must add up to: (n,) for regression, (n, k) otherwise.

    For a binary margin model the log-odds of class 0 is the negated margin, so class 0's column is
    `-margin` and class 1's is `margin`.
    """
    if output_space == "probability":
        return np.asarray(model.predict_proba(X), dtype=float)
    if task == "regression":
        return np.asarray(model.predict(X), dtype=float).reshape(X.shape[0])
    margin = tree_margin(model, X)
    if margin.ndim == 1 or margin.shape[1] == 1:
        margin = margin.reshape(X.shape[0])
        return np.stack([-margin, margin], axis=1)
    return margin
