"""The training schema of a kept model, and a raw table turned into the model's matrix by it.

A raw table is what the ingest readers produce (`shared.ml.ingest.canonical.read_table`): numeric features
as float64 (or text that reads as numbers), categorical features as text, a missing value as NaN or None.
Columns are taken by name in training order; every other column (target, id, training_index) is ignored.
A category becomes its training code (`shared.ml.ingest.canonical`: the index in the sorted categories); a
category the training rows never held becomes the code just past them, which each model treats as its
encoder or library treats an unseen category (`OneHotModel`: all zeros; LightGBM, xgboost: not in any
split's category set; CatBoost: a new category value), and is counted per column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.ml.errors import DataError
from shared.ml.ingest.columns import feature_numbers, is_missing, number_texts
from shared.ml.ingest.dataset import Dataset
from shared.ml.spec import Task

CATEGORY = "category"
NUMBER = "float64"


@dataclass(frozen=True)
class FeatureSchema:
    """A feature as the model was trained on it: its column name, dtype, and categories in code order."""

    name: str
    dtype: str  # NUMBER or CATEGORY
    categories: tuple[str, ...] | None = None

    def as_json(self) -> dict[str, object]:
        found: dict[str, object] = {"name": self.name, "dtype": self.dtype}
        if self.categories is not None:
            found["categories"] = list(self.categories)
        return found


@dataclass(frozen=True)
class TargetSchema:
    """The target column: its classes (classification, in code order) or its training range (regression)."""

    name: str
    classes: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None

    def as_json(self) -> dict[str, object]:
        if self.classes is not None:
            return {"name": self.name, "classes": list(self.classes)}
        return {"name": self.name, "min": self.min, "max": self.max}


def features_of(dataset: Dataset) -> list[FeatureSchema]:
    return [
        FeatureSchema(name, CATEGORY, tuple(dataset.categories[position]))
        if position in dataset.categories
        else FeatureSchema(name, NUMBER)
        for position, name in enumerate(dataset.feature_names)
    ]


def target_of(dataset: Dataset, name: str, task: Task) -> TargetSchema:
    if task == "classification":
        assert dataset.class_labels is not None
        return TargetSchema(name, classes=tuple(dataset.class_labels))
    return TargetSchema(name, min=float(np.min(dataset.y_train)), max=float(np.max(dataset.y_train)))


def raw_matrix(features: list[FeatureSchema], frame: pd.DataFrame) -> tuple[np.ndarray, dict[str, int]]:
    """The features of `frame` as the model's float64 matrix (before imputation), and how many values of
    each categorical column were categories the training rows never held (columns with none left out)."""
    absent = [feature.name for feature in features if feature.name not in frame.columns]
    if absent:
        raise DataError(
            "missing_feature",
            f"The table has no column '{absent[0]}', a feature the model was trained on "
            f"(it needs {', '.join(feature.name for feature in features)}).",
            column=absent[0],
        )
    X = np.empty((len(frame), len(features)), dtype=np.float64)
    unseen: dict[str, int] = {}
    for position, feature in enumerate(features):
        column = frame[feature.name]
        if feature.categories is None:
            X[:, position] = _numbers(column, feature.name)
            continue
        X[:, position], count = _codes(column, feature.categories)
        if count:
            unseen[feature.name] = count
    return X, unseen


def _numbers(column: pd.Series, name: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        return np.asarray(column.to_numpy(dtype=np.float64, na_value=np.nan))
    text = column.astype(object).where(column.notna(), "")
    return np.asarray(feature_numbers(text, name).to_numpy(), dtype=np.float64)


def _codes(column: pd.Series, categories: tuple[str, ...]) -> tuple[np.ndarray, int]:
    """Training codes of a categorical column (NaN for a missing value), and how many were unseen."""
    if pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(column.dtype):
        numbers = column.to_numpy(dtype=np.float64, na_value=np.nan)
        present = ~np.isnan(numbers)
        text = pd.Series(np.full(len(column), "", dtype=object), index=column.index)
        text[present] = number_texts(numbers[present])
    else:
        text = column.astype(object).where(column.notna(), "").map(lambda value: str(value).strip())
        present = ~is_missing(text).to_numpy()
    lookup = pd.Index(categories)
    codes = lookup.get_indexer(pd.Index(text.to_numpy(dtype=object))).astype(np.float64)
    is_unseen = present & (codes < 0)
    codes[is_unseen] = len(categories)
    codes[~present] = np.nan
    return codes, int(is_unseen.sum())
