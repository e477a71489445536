"""Which scored rows are explained (a threshold, as DataRobot's), and each explained row's top reasons."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Reasons:
    """Each explained row's top features by |SHAP value|, largest first, as arrays of rows x reasons: the
    feature's position in training order, its contribution, and its value as uploaded: a number in
    `numbers` (NaN when missing, or for a categorical feature), a category's text in `texts` (None when
    missing, or for a numeric feature; no array when the model has no categorical feature)."""

    features: np.ndarray  # int64
    contributions: np.ndarray  # float64
    numbers: np.ndarray  # float64
    texts: np.ndarray | None  # object
    categorical: np.ndarray  # bool per feature: its value is in `texts`

    @property
    def n_reasons(self) -> int:
        return int(self.features.shape[1])

    def to_json(self, feature_names: Sequence[str]) -> list[list[dict[str, Any]]]:
        """Per row, [{"feature", "value", "contribution"}], a non-finite contribution as None."""
        names = list(feature_names)
        categorical = self.categorical.tolist()
        texts = self.texts.tolist() if self.texts is not None else None
        found: list[list[dict[str, Any]]] = []
        for i, (positions, contributions, numbers) in enumerate(
            zip(self.features.tolist(), self.contributions.tolist(), self.numbers.tolist(), strict=True)
        ):
            row = []
            for k, j in enumerate(positions):
                if categorical[j]:
                    assert texts is not None
                    value = texts[i][k]
                else:
                    number = numbers[k]
                    value = None if number != number else number
                contribution = contributions[k]
                if contribution - contribution != 0:  # NaN or infinite: JSON's null
                    contribution = None
                row.append({"feature": names[j], "value": value, "contribution": contribution})
            found.append(row)
        return found


def top_reasons(
    values: np.ndarray,
    predicted: np.ndarray | None,
    numbers: np.ndarray,
    texts: np.ndarray | None,
    categorical: np.ndarray,
    top_n: int,
) -> Reasons:
    """Per row, the `top_n` features with the largest |SHAP value| (of the predicted class for a
    classifier: `values` rows x features x classes, `predicted` the class codes), largest first; ties keep
    the training order.

    `numbers` (rows x features, float64) and `texts` (rows x features, object) are the rows' values as
    uploaded, as `Reasons` holds them; `categorical` says, per feature, which of the two holds it."""
    if predicted is not None:
        values = np.take_along_axis(values, predicted[:, None, None].astype(np.intp), axis=2)[:, :, 0]
    count = min(top_n, values.shape[1])
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :count].astype(np.int64)
    return Reasons(
        features=order,
        contributions=np.take_along_axis(values, order, axis=1).astype(np.float64),
        numbers=np.take_along_axis(numbers, order, axis=1),
        texts=np.take_along_axis(texts, order, axis=1) if texts is not None else None,
        categorical=np.asarray(categorical, dtype=bool),
    )
