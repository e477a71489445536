"""Which scored rows are explained (a threshold, as DataRobot's), and each explained row's top reasons."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from shared.ml.spec import Task


def crossing(
    task: Task, y_pred: np.ndarray, proba: np.ndarray | None, threshold: float | None, below: bool = False
) -> np.ndarray:
    """A boolean mask of the rows to explain: every row without `threshold`; else the rows whose score is
    >= threshold (<= with `below`), the score being a binary classifier's positive-class (the second
    class's) probability, a multiclass classifier's predicted-class probability, a regressor's prediction."""
    n_rows = len(y_pred)
    if threshold is None:
        return np.ones(n_rows, dtype=bool)
    if task == "classification":
        assert proba is not None
        score = proba[:, 1] if proba.shape[1] == 2 else proba.max(axis=1)
    else:
        score = np.asarray(y_pred, dtype=np.float64)
    return np.asarray(score <= threshold if below else score >= threshold, dtype=bool)


def top_reasons(
    values: np.ndarray,
    predicted: np.ndarray | None,
    feature_values: Sequence[Sequence[Any]],
    feature_names: Sequence[str],
    top_n: int,
) -> list[list[dict[str, Any]]]:
    """Per row, the `top_n` features with the largest |SHAP value| (of the predicted class for a
    classifier: `values` rows x features x classes, `predicted` the class codes), each
    {"feature", "value", "contribution"}, largest first; ties keep the training order.

    `feature_values[j][i]` is row i's value of feature j as uploaded (text for a category)."""
    if predicted is not None:
        values = np.take_along_axis(values, predicted[:, None, None].astype(np.intp), axis=2)[:, :, 0]
    n_rows, n_features = values.shape
    count = min(top_n, n_features)
    if count == 0:
        return [[] for _ in range(n_rows)]
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :count]
    return [
        [
            {
                "feature": feature_names[j],
                "value": feature_values[j][i],
                "contribution": _finite(values[i, j]),
            }
            for j in order[i].tolist()
        ]
        for i in range(n_rows)
    ]


def _finite(value: float) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None
