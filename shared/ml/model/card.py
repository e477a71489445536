"""The model card's fields that the ML core knows: the estimator and its hyperparameters, the library
versions, the training schema, the test metrics and the SHAP background (the service adds the job's
id, endpoint and parameters, the stored size, sha256 and download formats)."""

from __future__ import annotations

import math
from typing import Any

from shared.ml.categories import CatBoostCategories, OneHotModel, library_of
from shared.ml.model.kept import KeptModel

MAX_DEPTH = 3  # nested estimators (nnetsauce's base model) shown this deep


def estimator_of(model: Any) -> Any:
    """The library's estimator inside our wrappers (one-hot encoding, CatBoost's categories)."""
    return model.model if isinstance(model, OneHotModel | CatBoostCategories) else model


def describe_estimator(model: Any, depth: int = 0) -> dict[str, Any]:
    """{"name", "library", "hyperparameters"}: its constructor parameters as JSON (estimators nested)."""
    params = model.get_params(deep=False) if hasattr(model, "get_params") else {}
    return {
        "name": type(model).__name__,
        "library": library_of(model),
        "hyperparameters": {name: _json_value(value, depth) for name, value in sorted(params.items())},
    }


def _json_value(value: Any, depth: int) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "get_params") and depth < MAX_DEPTH:
        return describe_estimator(value, depth + 1)
    if isinstance(value, list | tuple):
        return [_json_value(item, depth) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item, depth) for key, item in value.items()}
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        return _json_value(value.item(), depth)
    return repr(value)


def background_of(kept: KeptModel) -> dict[str, Any] | None:
    """The background rows the model's SHAP explainer uses (the fit's, and a predict job's unless it sends
    its own), or None for TreeSHAP, which uses the trees' own cover instead of background rows: their
    shape, a description, and which rows they are (`shared.ml.explain.background`'s record: `source`,
    then `seed` or `sha256`)."""
    if kept.background is None:
        return None
    rows, features = kept.background.shape
    record = kept.background_used()
    if record["source"] == "upload":
        description = (
            f"{rows} rows of an uploaded background file (sha256 {record['sha256']}), in model space "
            "(category codes, imputed values)"
        )
    else:
        description = (
            f"{rows} training rows (all of them, or a sample drawn with the job's seed {kept.spec.seed}), "
            "in model space (category codes, imputed values)"
        )
    return {
        "rows": int(rows),
        "features": int(features),
        "description": description,
        **{key: value for key, value in record.items() if key != "rows"},
    }


def card_fields(kept: KeptModel) -> dict[str, Any]:
    """estimator, libraries, features, target, metrics and background, as the card shows them."""
    return {
        "estimator": describe_estimator(estimator_of(kept.model)),
        "libraries": dict(kept.libraries),
        "features": [feature.as_json() for feature in kept.features],
        "target": kept.target.as_json(),
        "metrics": kept.metrics,
        "background": background_of(kept),
    }
