"""Build the unfitted estimator a ModelSpec asks for.

The heavy libraries (nnetsauce, xgboost, lightgbm, catboost) are imported inside the builders, so that
importing this module stays cheap and only the library a job uses gets loaded.
Every builder passes the spec's seed, so the same request on the same data fits the same model.
"""

from __future__ import annotations

from typing import Any

from shared.ml.errors import ParameterError
from shared.ml.registry import estimator_init_kwargs, resolve_estimator_class
from shared.ml.spec import ModelSpec

DEFAULT_BASE_MODEL = {"classification": "RandomForestClassifier", "regression": "ElasticNet"}
MAX_GBDT_DEPTH = 16  # CatBoost's own ceiling; deeper trees are never what a user meant
MAX_HIDDEN_FEATURES = 10_000


def build_model(spec: ModelSpec, n_threads: int | None = None) -> Any:
    """An unfitted estimator for `spec`; `n_threads` goes to the gradient-boosting libraries."""
    if spec.family == "ml":
        return _build_ml(spec)
    if spec.family == "gbdt":
        return _build_gbdt(spec, n_threads)
    raise ParameterError("unknown_family", f"Unknown model family {spec.family!r}: use 'ml' or 'gbdt'.")


def _build_ml(spec: ModelSpec) -> Any:
    if not 0 <= spec.n_hidden_features <= MAX_HIDDEN_FEATURES:
        raise ParameterError(
            "bad_parameter",
            f"n_hidden_features must be between 0 and {MAX_HIDDEN_FEATURES}; got {spec.n_hidden_features}.",
        )
    cls = resolve_estimator_class(spec.base_model or DEFAULT_BASE_MODEL[spec.task], spec.task)
    # No n_jobs here: scikit-learn's forests sum their trees' outputs in thread-completion order, so
    # n_jobs > 1 changes predictions in the last bits from one run to the next.
    base = cls(**estimator_init_kwargs(cls, spec.seed))
    if spec.n_hidden_features == 0:
        return base
    import nnetsauce as ns

    wrapper = ns.CustomClassifier if spec.task == "classification" else ns.CustomRegressor
    return wrapper(obj=base, n_hidden_features=spec.n_hidden_features, seed=spec.seed)


def _check_booster_parameters(spec: ModelSpec) -> None:
    if spec.n_estimators < 1:
        raise ParameterError("bad_parameter", f"n_estimators must be at least 1; got {spec.n_estimators}.")
    if not spec.learning_rate > 0:
        raise ParameterError("bad_parameter", f"learning_rate must be positive; got {spec.learning_rate}.")
    if not 1 <= spec.max_depth <= MAX_GBDT_DEPTH:
        raise ParameterError(
            "bad_parameter", f"max_depth must be between 1 and {MAX_GBDT_DEPTH}; got {spec.max_depth}."
        )


def _build_gbdt(spec: ModelSpec, n_threads: int | None) -> Any:
    _check_booster_parameters(spec)
    classify = spec.task == "classification"
    if spec.model_type == "lightgbm":
        import lightgbm as lgb

        cls = lgb.LGBMClassifier if classify else lgb.LGBMRegressor
        return cls(
            n_estimators=spec.n_estimators,
            learning_rate=spec.learning_rate,
            max_depth=spec.max_depth,
            random_state=spec.seed,
            n_jobs=n_threads if n_threads is not None else -1,
            deterministic=True,
            force_row_wise=True,
            verbose=-1,
        )
    if spec.model_type == "xgboost":
        import xgboost as xgb

        cls = xgb.XGBClassifier if classify else xgb.XGBRegressor
        return cls(
            n_estimators=spec.n_estimators,
            learning_rate=spec.learning_rate,
            max_depth=spec.max_depth,
            random_state=spec.seed,
            n_jobs=n_threads,
            tree_method="hist",
        )
    if spec.model_type == "catboost":
        import catboost as cb

        cls = cb.CatBoostClassifier if classify else cb.CatBoostRegressor
        return cls(
            iterations=spec.n_estimators,
            learning_rate=spec.learning_rate,
            depth=spec.max_depth,
            random_seed=spec.seed,
            thread_count=n_threads if n_threads is not None else -1,
            verbose=0,
            allow_writing_files=False,
        )
    if spec.model_type == "gradientboosting":
        from sklearn.ensemble import GradientBoostingClassifier, GradientBoostingRegressor

        cls = GradientBoostingClassifier if classify else GradientBoostingRegressor
        return cls(
            n_estimators=spec.n_estimators,
            learning_rate=spec.learning_rate,
            max_depth=spec.max_depth,
            random_state=spec.seed,
        )
    raise ParameterError(
        "unknown_model_type",
        f"Unknown model_type {spec.model_type!r}: use lightgbm, xgboost, catboost or gradientboosting.",
    )
