"""Missing feature values filled as the request asks (`impute=`), before the model sees them.

The imputer is fitted on the training rows only and fills the test rows with what it learned there, so
the test rows say nothing about the model. It runs before nnetsauce's hidden layer (which cannot take
NaN) and before any explanation: the explanations are those of the model on the imputed values, one per
original column (imputation keeps the columns). The fitted imputers are kept (`Imputation`), so new rows
scored by a kept model are filled exactly as the test rows were.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from shared.ml.ingest.dataset import Dataset
from shared.ml.spec import ModelSpec


@dataclass
class Imputation:
    """The imputers fitted on the training rows: (column positions, fitted SimpleImputer) pairs."""

    parts: list[tuple[list[int], Any]]

    def fill(self, X: np.ndarray) -> np.ndarray:
        """`X` with its missing values filled (a copy); `X` itself when nothing is missing."""
        if not np.isnan(X).any():
            return X
        X = X.copy()
        for columns, imputer in self.parts:
            X[:, columns] = imputer.transform(X[:, columns])
        return X


def fit_imputation(dataset: Dataset, model: ModelSpec) -> Imputation | None:
    """The imputers of `model.impute` ("median" or "most_frequent"; a categorical column's most frequent
    category either way) fitted on the training rows, or None ("none")."""
    if model.impute == "none":
        return None
    from sklearn.impute import SimpleImputer

    categorical = sorted(dataset.categories)
    numeric = [position for position in range(dataset.X_train.shape[1]) if position not in dataset.categories]
    parts: list[tuple[list[int], Any]] = []
    # A category's code has no median: categorical columns always take their most frequent category.
    for columns, strategy in ((numeric, model.impute), (categorical, "most_frequent")):
        if columns:
            imputer = SimpleImputer(strategy=strategy, keep_empty_features=True)
            parts.append((columns, imputer.fit(dataset.X_train[:, columns])))
    return Imputation(parts)


def impute_missing(dataset: Dataset, model: ModelSpec) -> tuple[Dataset, Imputation | None]:
    """The dataset with its missing feature values filled (or as it is: "none", or nothing missing), and
    the fitted imputers that filled it (None with "none")."""
    imputation = fit_imputation(dataset, model)
    if imputation is None:
        return dataset, None
    X_train, X_test = imputation.fill(dataset.X_train), imputation.fill(dataset.X_test)
    if X_train is dataset.X_train and X_test is dataset.X_test:
        return dataset, imputation
    return replace(dataset, X_train=X_train, X_test=X_test), imputation
