"""Categorical features, as each model takes them.

A categorical feature reaches the models as the codes of its categories (0, 1, ... in text order; NaN
when missing), one column per original column, so every explanation is per original column. LightGBM, xgboost
and CatBoost split on the categories natively (`categorical_feature`, `enable_categorical`, `cat_features`:
CatBoost through `CatBoostCategories`, which gives it the codes as the integers it asks for); every other
model is wrapped in `OneHotModel`, which one-hot encodes the categorical columns inside the model (before
nnetsauce's hidden layer on the /ml endpoints). The model-agnostic explainers and permutation importance
then mask or permute the original column; TreeSHAP of a wrapped tree model sums its one-hot columns'
values per original column, which keeps additivity.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.metaestimators import available_if

NATIVE_LIBRARIES = ("lightgbm", "xgboost", "catboost")


def library_of(model: Any) -> str:
    """The package an (unwrapped) model class comes from, as `shared.ml.explain._predict.library_of`."""
    return type(model).__module__.split(".")[0]


MISSING_CATEGORY = -1  # CatBoost takes no missing category: a missing value is a category of its own


def with_categories(model: Any, categorical: list[int], n_features: int, max_categories: int) -> Any:
    """The unfitted `model`, set up for the categorical features at `categorical` (positions)."""
    if not categorical:
        return model
    library = library_of(model)
    if library == "lightgbm":
        # A constructor parameter (LightGBM's alias of categorical_feature that it does not warn about),
        # not a fit argument: every fit, the intervals' included, then sees it.
        model.set_params(categorical_column=list(categorical))
        return model
    if library == "xgboost":
        types = ["c" if position in categorical else "q" for position in range(n_features)]
        model.set_params(enable_categorical=True, feature_types=types)
        return model
    if library == "catboost":
        return CatBoostCategories(model, tuple(categorical))
    return OneHotModel(model, tuple(categorical), max_categories)


def categorical_features(model: Any) -> bool:
    """Whether a fitted booster splits on categories natively (its trees hold category sets)."""
    if library_of(model) == "lightgbm":
        return bool(model.get_params().get("categorical_column"))
    if library_of(model) == "xgboost":
        return bool(getattr(model, "enable_categorical", False)) and "c" in (model.feature_types or [])
    return False


class OneHotModel(BaseEstimator):  # type: ignore[misc]
    """`model` fitted on the one-hot encoding of the categorical columns at `categorical` (each its own
    `OneHotEncoder(handle_unknown="ignore", max_categories=...)`; a missing code is a category of its own),
    taking and explaining the original columns."""

    def __init__(self, model: Any, categorical: tuple[int, ...] = (), max_categories: int = 50) -> None:
        self.model = model
        self.categorical = categorical
        self.max_categories = max_categories

    def fit(self, X: np.ndarray, y: np.ndarray) -> OneHotModel:
        from sklearn.preprocessing import OneHotEncoder

        X = np.asarray(X, dtype=np.float64)
        self.encoders_ = {
            position: OneHotEncoder(
                handle_unknown="ignore",
                max_categories=self.max_categories,
                sparse_output=False,
                dtype=np.float64,
            ).fit(X[:, [position]])
            for position in self.categorical
        }
        self.groups_ = self._groups(X.shape[1])
        self.model.fit(self.encode(X), y)
        if hasattr(self.model, "classes_"):
            self.classes_ = self.model.classes_
        return self

    def _groups(self, n_features: int) -> list[np.ndarray]:
        """Each original column's positions among the encoded columns."""
        groups, start = [], 0
        for position in range(n_features):
            encoder = self.encoders_.get(position)
            width = 1 if encoder is None else int(encoder.transform(np.zeros((1, 1))).shape[1])
            groups.append(np.arange(start, start + width))
            start += width
        return groups

    def encode(self, X: np.ndarray) -> np.ndarray:
        """The columns the inner model sees: each numeric column as it is, each categorical one one-hot."""
        X = np.asarray(X, dtype=np.float64)
        parts = [
            X[:, [position]]
            if position not in self.encoders_
            else self.encoders_[position].transform(X[:, [position]])
            for position in range(X.shape[1])
        ]
        return np.hstack(parts) if parts else X

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict(self.encode(X)))

    @available_if(lambda self: hasattr(self.model, "predict_proba"))  # type: ignore[untyped-decorator]
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(self.encode(X)))

    def sum_groups(self, values: np.ndarray, axes: tuple[int, ...] = (1,)) -> np.ndarray:
        """Values over the encoded columns (along `axes`) summed per original column."""
        for axis in axes:
            values = np.stack(
                [values.take(group, axis=axis).sum(axis=axis) for group in self.groups_], axis=axis
            )
        return values


class CatBoostCategories(BaseEstimator):  # type: ignore[misc]
    """A CatBoost model whose categorical columns (`categorical`) are category codes: CatBoost takes a
    categorical value only as an integer or text, so each call hands it the rows as a `Pool` with those
    columns as integers (a missing one as its own category). It stands for CatBoost (`library`) wherever
    the explainers ask the library: its TreeSHAP is CatBoost's `ShapValues` on the original columns."""

    library = "catboost"

    def __init__(self, model: Any, categorical: tuple[int, ...] = ()) -> None:
        self.model = model
        self.categorical = categorical

    def pool(self, X: np.ndarray, y: np.ndarray | None = None) -> Any:
        import catboost
        import pandas as pd

        frame = pd.DataFrame(np.asarray(X, dtype=np.float64))
        for position in self.categorical:
            codes = frame[position].to_numpy()
            frame[position] = np.where(np.isnan(codes), MISSING_CATEGORY, codes).astype(np.int64)
        return catboost.Pool(frame, label=y, cat_features=list(self.categorical))

    def fit(self, X: np.ndarray, y: np.ndarray) -> CatBoostCategories:
        self.model.fit(self.pool(X, y))
        if hasattr(self.model, "classes_"):
            self.classes_ = self.model.classes_
        return self

    def predict(self, X: np.ndarray, **options: Any) -> np.ndarray:
        return np.asarray(self.model.predict(self.pool(X), **options))

    @available_if(lambda self: hasattr(self.model, "predict_proba"))  # type: ignore[untyped-decorator]
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_proba(self.pool(X)))

    def get_feature_importance(self, data: Any, **options: Any) -> Any:
        return self.model.get_feature_importance(data, **options)
