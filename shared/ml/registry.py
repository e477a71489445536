"""Which scikit-learn estimators a user may name as `base_model`; the only way from a name to a class.

The allowlists come from scikit-learn's own registry, minus estimators that cannot serve a one-target
tabular fit-and-explain job with default settings: meta-estimators that need a sub-estimator, models
that are multi-output only or one-feature only, models whose memory or time grows as n² or n³ with the
rows, models that fail at predict time on ordinary data, and classifiers without class probabilities.
A user-supplied string is only ever looked up in these lists, never imported.
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from functools import cache
from typing import Any

from shared.ml.errors import ParameterError
from shared.ml.spec import Task

META_PARAMETERS = frozenset({"estimator", "estimators", "base_estimator", "regressor", "classifier"})
# Meta-estimators whose default sub-estimator is small and safe (a decision stump).
SAFE_WRAPPERS = frozenset({"AdaBoostClassifier", "AdaBoostRegressor"})
EXCLUDED = {
    "GaussianProcessClassifier": "time grows as rows³",
    "GaussianProcessRegressor": "time grows as rows³",
    "KernelRidge": "memory grows as rows²",
    "LabelPropagation": "semi-supervised; memory grows as rows²",
    "LabelSpreading": "semi-supervised; memory grows as rows²",
    "RadiusNeighborsClassifier": "fails when a test row has no neighbour within the radius",
    "RadiusNeighborsRegressor": "predicts NaN when a test row has no neighbour within the radius",
    "CategoricalNB": "fails on category values unseen in training",
    "IsotonicRegression": "takes a single feature",
    "CCA": "a multi-output decomposition",
    "PLSCanonical": "a multi-output decomposition",
    "MultiTaskElasticNet": "multi-output only",
    "MultiTaskElasticNetCV": "multi-output only",
    "MultiTaskLasso": "multi-output only",
    "MultiTaskLassoCV": "multi-output only",
}
SHOWN_SUGGESTIONS = 5


def classifier_names() -> list[str]:
    """Names a classification job may use as base_model, sorted."""
    return sorted(_allowlist("classification"))


def regressor_names() -> list[str]:
    """Names a regression job may use as base_model, sorted."""
    return sorted(_allowlist("regression"))


def estimator_init_kwargs(cls: type[Any], seed: int) -> dict[str, object]:
    """Constructor arguments we always set: the seed, and probabilities for SVC-like classifiers."""
    parameters = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, object] = {}
    if "random_state" in parameters:
        kwargs["random_state"] = seed
    if "probability" in parameters:
        kwargs["probability"] = True
    return kwargs


def resolve_estimator_class(name: str, task: Task) -> type:
    """The estimator class for an allowlisted `name`, or ParameterError("unknown_base_model")."""
    allowed = _allowlist(task)
    if name in allowed:
        return allowed[name]
    kind = "classifier" if task == "classification" else "regressor"
    suggestions = _close_matches(name, sorted(allowed))
    hint = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
    raise ParameterError(
        "unknown_base_model",
        f"base_model {name!r} is not a supported scikit-learn {kind}.{hint} The full list is "
        f"{kind}_names() in shared/ml/registry.py ({len(allowed)} names), also served by the API.",
    )


def _close_matches(name: str, names: list[str]) -> list[str]:
    lowered = name.lower()
    containing = [candidate for candidate in names if lowered and lowered in candidate.lower()]
    similar = difflib.get_close_matches(name, names, n=SHOWN_SUGGESTIONS, cutoff=0.5)
    return list(dict.fromkeys(containing + similar))[:SHOWN_SUGGESTIONS]


@cache
def _allowlist(task: Task) -> dict[str, type]:
    from sklearn.utils import all_estimators  # here: an API process loads scikit-learn at its first /ml* job

    type_filter = "classifier" if task == "classification" else "regressor"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        registry = all_estimators(type_filter=type_filter)
    return {name: cls for name, cls in registry if _is_allowed(name, cls, task)}


def _is_allowed(name: str, cls: type[Any], task: Task) -> bool:
    if name in EXCLUDED:
        return False
    parameters = inspect.signature(cls.__init__).parameters
    if name not in SAFE_WRAPPERS and META_PARAMETERS & set(parameters):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            instance = cls(**estimator_init_kwargs(cls, 0))
    except Exception:  # any failure to construct with defaults disqualifies the estimator
        return False
    return task == "regression" or hasattr(instance, "predict_proba")
