"""Check a JobSpec against every declared bound and allowed name before anything is built or run.

The spec (shared/ml/spec.py) only declares values; the names it is checked against live above it, in
the base-model registry and the explanation-method table, which themselves read the spec's types.
"""

from __future__ import annotations

from typing import get_args

from shared.ml.explain.methods import explanation_names
from shared.ml.registry import resolve_estimator_class
from shared.ml.spec import (
    GBDT_MODEL_TYPES,
    IMPUTE_CHOICES,
    LEARNING_RATE,
    LEVEL,
    MAX_DEPTH,
    MAX_DEPTH_BY_MODEL_TYPE,
    N_ESTIMATORS,
    N_HIDDEN_FEATURES,
    PI_METHODS,
    SEED,
    Family,
    JobSpec,
    ModelSpec,
    Task,
    check_choice,
    check_columns,
    check_interactions,
)


def validate_model(model: ModelSpec) -> None:
    """ParameterError naming the first field outside its declared bound or list."""
    check_choice("task", model.task, get_args(Task))
    check_choice("family", model.family, get_args(Family))
    SEED.check(model.seed)
    check_choice("impute", model.impute, IMPUTE_CHOICES)
    if model.family == "ml":
        N_HIDDEN_FEATURES.check(model.n_hidden_features)
        if model.base_model is not None:
            resolve_estimator_class(model.base_model, model.task)
    else:
        check_choice("model_type", model.model_type, GBDT_MODEL_TYPES)
        N_ESTIMATORS.check(model.n_estimators)
        LEARNING_RATE.check(model.learning_rate)
        MAX_DEPTH_BY_MODEL_TYPE.get(model.model_type, MAX_DEPTH).check(model.max_depth)


def validate_job(spec: JobSpec) -> JobSpec:
    """Check every field against its declaration; returns the spec so callers can chain it."""
    validate_model(spec.model)
    LEVEL.check(spec.level)
    check_columns(spec.target, spec.id_column)
    check_choice("pi_method", spec.pi_method, PI_METHODS)
    for method in spec.interpretability:
        check_choice("interpretability", method, explanation_names())
    if spec.shap_interactions:
        check_interactions(spec.interpretability, spec.model)
    return spec
