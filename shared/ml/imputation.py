"""Missing feature values filled as the request asks (`impute=`), before the model sees them.

The imputer is fitted on the training rows only and fills the test rows with what it learned there, so
the test rows say nothing about the model. It runs before nnetsauce's hidden layer (which cannot take
NaN) and before any explanation: the explanations are those of the model on the imputed values, one per
original column (imputation keeps the columns).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from shared.ml.ingest.dataset import Dataset
from shared.ml.spec import ModelSpec


def impute_missing(dataset: Dataset, model: ModelSpec) -> Dataset:
    """The dataset with its missing feature values filled (`model.impute`: "median" or "most_frequent";
    a categorical column's most frequent category either way), or as it is ("none", or nothing
    missing)."""
    if model.impute == "none":
        return dataset
    missing_train, missing_test = np.isnan(dataset.X_train), np.isnan(dataset.X_test)
    if not (missing_train.any() or missing_test.any()):
        return dataset
    from sklearn.impute import SimpleImputer

    X_train, X_test = dataset.X_train.copy(), dataset.X_test.copy()
    categorical = sorted(dataset.categories)
    numeric = [position for position in range(X_train.shape[1]) if position not in dataset.categories]
    # A category's code has no median: categorical columns always take their most frequent category.
    for columns, strategy in ((numeric, model.impute), (categorical, "most_frequent")):
        if columns:
            imputer = SimpleImputer(strategy=strategy, keep_empty_features=True)
            X_train[:, columns] = imputer.fit_transform(X_train[:, columns])
            X_test[:, columns] = imputer.transform(X_test[:, columns])
    return replace(dataset, X_train=X_train, X_test=X_test)
