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
    """The dataset with its missing feature values filled (`model.impute`: "median" or "most_frequent"),
    or as it is ("none", or nothing missing)."""
    if model.impute == "none":
        return dataset
    missing_train, missing_test = np.isnan(dataset.X_train), np.isnan(dataset.X_test)
    if not (missing_train.any() or missing_test.any()):
        return dataset
    from sklearn.impute import SimpleImputer

    imputer = SimpleImputer(strategy=model.impute, keep_empty_features=True)
    X_train = imputer.fit_transform(dataset.X_train)
    X_test = imputer.transform(dataset.X_test)
    return replace(dataset, X_train=np.asarray(X_train, np.float64), X_test=np.asarray(X_test, np.float64))
