"""A job's fitted model kept with everything needed to treat new rows exactly as its test rows were.

`KeptModel` holds the estimator as the job used it (with its `OneHotModel` / `CatBoostCategories`
wrapper, nnetsauce's hidden layer inside it), the training schema, the fitted imputers, the fitted
interval band of a `return_pi` job, the SHAP background and the library versions that fitted it.
`matrix` turns a raw table into the model-space matrix the fit built its test rows as; `predict`,
`predict_proba` and `predict_interval` then give what the job gave.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd

from shared.ml.imputation import Imputation
from shared.ml.intervals import IntervalBand
from shared.ml.metrics import original_labels
from shared.ml.model.schema import FeatureSchema, TargetSchema, features_of, raw_matrix, target_of
from shared.ml.prepared import PreparedJob
from shared.ml.spec import BackgroundSpec, JobSpec, Limits

#: The libraries whose versions a kept model records (the card's `libraries`; `python` is added).
LIBRARIES = ("scikit-learn", "xgboost", "lightgbm", "catboost", "nnetsauce", "numpy")


@dataclass
class KeptModel:
    """A fitted job's model and what scoring new rows needs besides (see the module docstring)."""

    spec: JobSpec
    model: Any
    features: list[FeatureSchema]
    target: TargetSchema
    class_labels: list[str] | None
    imputation: Imputation | None = None
    interval: IntervalBand | None = None
    background: np.ndarray | None = None  # model space, as the job's SHAP explainer used it
    libraries: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    #: The record of the background SHAP takes (`shared.ml.explain.background`); None for a model kept
    #: before backgrounds had records (see `background_used`).
    background_record: dict[str, Any] | None = None

    def background_used(self) -> dict[str, Any]:
        """The record of the background SHAP takes with this model: `background_record`, else (a model
        kept without one) a training sample when it holds rows, none (path-dependent TreeSHAP) when not."""
        from shared.ml.explain import background as backgrounds

        if self.background_record is not None:
            return self.background_record
        if self.background is not None:
            return backgrounds.legacy_record(self.background, self.spec.seed)
        return backgrounds.not_used(BackgroundSpec())

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    @property
    def categories(self) -> dict[int, list[str]]:
        """Categorical features as `Dataset.categories` holds them: position -> categories."""
        return {
            position: list(feature.categories)
            for position, feature in enumerate(self.features)
            if feature.categories is not None
        }

    def matrix(self, frame: pd.DataFrame) -> tuple[np.ndarray, dict[str, int]]:
        """The model-space matrix of a raw table's rows, as the fit built X_test (features by name in
        training order, categories as training codes, missing values imputed as the training rows
        taught), and the count of unseen categories per categorical column (only those with some)."""
        X, unseen = raw_matrix(self.features, frame)
        if self.imputation is not None:
            X = self.imputation.fill(X)
        return X, unseen

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The model's predictions: class codes (into `class_labels`) or values, as the job's y_pred."""
        if self.interval is not None:
            return np.asarray(self.interval.interval(X)[0], dtype=np.float64).ravel()
        predicted = np.asarray(self.model.predict(X)).ravel()
        if self.spec.task == "classification":
            return predicted.astype(np.int64)
        return predicted

    def predict_labels(self, X: np.ndarray) -> list[Any]:
        """Classifiers' predictions as the result's y_pred holds them (the labels as written)."""
        assert self.class_labels is not None, "a regression model has no labels"
        labels = original_labels(self.class_labels)
        return [labels[code] for code in self.predict(X)]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, one column per class in `class_labels` order (classifiers only)."""
        if self.spec.task != "classification":
            raise TypeError("predict_proba: a regression model has no class probabilities")
        return np.asarray(self.model.predict_proba(X))

    def predict_interval(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(lower, upper) of the job's conformal interval for each row (return_pi models only)."""
        if self.interval is None:
            raise TypeError("predict_interval: the job did not ask for return_pi")
        _, lower, upper = self.interval.interval(X)
        return np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)


def kept_from(prepared: PreparedJob, limits: Limits | None = None) -> KeptModel:
    """The KeptModel of a fitted job, with the background its explainer takes (`limits`: the job's, which
    bound a sample's size)."""
    from shared.ml.explain.background import for_fit

    spec, dataset = prepared.spec, prepared.dataset
    # Kept whether or not the fit asked for SHAP: a predict job may ask for it on new rows.
    background = for_fit(prepared, limits or Limits())
    return KeptModel(
        spec=spec,
        model=prepared.model,
        features=features_of(dataset),
        target=target_of(dataset, spec.target, spec.task),
        class_labels=None if dataset.class_labels is None else list(dataset.class_labels),
        imputation=prepared.imputation,
        interval=prepared.interval,
        background=None if background is None else np.array(background.rows),
        libraries=library_versions(),
        metrics=metrics_of(prepared.result),
        background_record=None if background is None else dict(background.record),
    )


def library_versions() -> dict[str, str]:
    """{name: version} of the ML libraries installed here, and Python's."""
    found = {}
    for name in LIBRARIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            try:  # xgboost installed as xgboost-cpu
                found[name] = metadata.version(f"{name}-cpu")
            except metadata.PackageNotFoundError:
                continue
    found["python"] = platform.python_version()
    return found


#: The result's keys that are per-row (predictions, intervals, row numbers), not metrics.
ROW_KEYS = frozenset(
    {"y_true", "y_pred", "proba", "pi_lower", "pi_upper", "test_rows", "test_ids", "notes", "X_test"}
)


def metrics_of(result: dict[str, Any]) -> dict[str, Any]:
    """The metrics on the test rows: the result without its per-row values."""
    return {key: value for key, value in result.items() if key not in ROW_KEYS and key != "interpretability"}
