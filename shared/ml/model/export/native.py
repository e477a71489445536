"""The booster's own portable file: xgboost's UBJSON (`save_model`), LightGBM's text model, CatBoost's cbm.

Each loads in its library alone and predicts the model-space matrix (`KeptModel.matrix`) as the job did;
a categorical feature's values are its category codes (CatBoost takes them as integers, a missing one as
-1: `shared.ml.categories.CatBoostCategories`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from shared.ml.categories import CatBoostCategories, library_of
from shared.ml.model.export import Exported
from shared.ml.model.kept import KeptModel

LIBRARIES = ("xgboost", "lightgbm", "catboost")


def _booster(kept: KeptModel) -> Any:
    model = kept.model
    return model.model if isinstance(model, CatBoostCategories) else model


def refusal(kept: KeptModel) -> str | None:
    booster = _booster(kept)
    library = library_of(booster)
    if library in LIBRARIES:
        return None
    inner = getattr(booster, "model", booster)  # OneHotModel's
    return (
        f"{type(inner).__name__} ({library_of(inner)}) has no portable format of its own; native is "
        "xgboost's UBJSON, LightGBM's text model or CatBoost's cbm. Download it as skops instead."
    )


def export(kept: KeptModel) -> Exported:
    booster = _booster(kept)
    library = library_of(booster)
    if library == "lightgbm":
        text = booster.booster_.model_to_string()
        return Exported(text.encode(), "model.txt", "text/plain; charset=utf-8")
    with tempfile.TemporaryDirectory() as folder:
        if library == "xgboost":
            path = Path(folder) / "model.ubj"
            booster.save_model(path)
            return Exported(path.read_bytes(), path.name, "application/ubjson")
        path = Path(folder) / "model.cbm"
        booster.save_model(str(path), format="cbm")
        return Exported(path.read_bytes(), path.name, "application/octet-stream")
