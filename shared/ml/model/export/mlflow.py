"""A kept model as a zipped MLflow model directory, written by MLflow's own flavors.

xgboost, LightGBM and CatBoost models go through `mlflow.xgboost`, `mlflow.lightgbm` and `mlflow.catboost`;
scikit-learn and nnetsauce models through `mlflow.sklearn`, serialized with skops (MLflow records the
trusted types, so `mlflow.pyfunc.load_model` loads it without unpickling anything undeclared). The
directory has its signature (one double column per feature, by name, in training order: the model-space
values, categories as their codes), an input example, and `requirements.txt` pinned to the versions that
fitted the model. `pyfunc.predict` gives the job's `y_pred` (class codes into the card's classes for a
classifier); the flavor's own `load_model` gives the estimator, with `predict_proba`.

A model that one-hot encodes its categorical features is written as the skops format writes it (a
scikit-learn Pipeline of the fitted encoders and the model: categories as their codes). Refused (409):
boosters that split on categories natively, and any server without the `mlflow` extra (mlflow-skinny).
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.ml.model.export import Exported
from shared.ml.model.export.requirements import missing_extra, model_library, model_requirements, pinned
from shared.ml.model.export.skops import portable

if TYPE_CHECKING:
    from shared.ml.model.kept import KeptModel

FORMAT = "mlflow"
EXTRA = "mlflow"
#: Boosters that take categorical features natively (as codes MLflow's double columns would not be).
NATIVE_CATEGORIES = ("xgboost", "lightgbm", "catboost")
MEDIA_TYPE = "application/zip"
DIRECTORY = "model"
EXAMPLE_ROWS = 5


def refusal(kept: KeptModel) -> str | None:
    """Why this model has no MLflow form here (None: it has one)."""
    lacking = missing_extra(EXTRA, ("mlflow",))
    if lacking is not None:
        return lacking
    if kept.categories and model_library(kept) in NATIVE_CATEGORIES:
        return (
            f"{model_library(kept)} splits on the categorical features itself, which MLflow's signature "
            "of double columns cannot feed it (download it as native, skops or bundle)"
        )
    return None


def export(kept: KeptModel) -> Exported:
    """The zipped MLflow model directory."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / DIRECTORY
        _save(kept, path)
        return Exported(_zipped(path), "mlflow-model.zip", MEDIA_TYPE)


def _save(kept: KeptModel, path: Path) -> None:
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature

    model = portable(kept.model)  # a one-hot model as a scikit-learn Pipeline: no class of ours
    example = pd.DataFrame(_example_rows(kept), columns=kept.feature_names)
    signature = infer_signature(example, np.asarray(model.predict(example.to_numpy())))
    library = model_library(kept)
    common: dict[str, Any] = {"signature": signature, "input_example": example}
    # MLflow infers requirements by loading the model in a subprocess (tens of seconds): we know them.
    requirements = model_requirements(kept)
    if library == "xgboost":
        mlflow.xgboost.save_model(
            model, str(path), model_format="ubj", pip_requirements=requirements, **common
        )
    elif library == "catboost":
        mlflow.catboost.save_model(model, str(path), pip_requirements=requirements, **common)
    else:
        import skops.io

        trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model))
        requirements = [*requirements, *pinned(kept, "skops")]
        flavor = mlflow.lightgbm if library == "lightgbm" else mlflow.sklearn
        flavor.save_model(
            model,
            str(path),
            serialization_format="skops",
            skops_trusted_types=trusted,
            pip_requirements=requirements,
            **common,
        )


def _example_rows(kept: KeptModel) -> np.ndarray:
    """Up to five rows of the SHAP background (training rows) when the model kept one, else one row of
    zeros: an example of the input's shape, not of its values."""
    if kept.background is not None and len(kept.background):
        return np.asarray(kept.background[:EXAMPLE_ROWS], dtype=np.float64)
    return np.zeros((1, len(kept.features)), dtype=np.float64)


def _zipped(directory: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(directory.rglob("*")):
            if file.is_file():
                archive.write(file, Path(DIRECTORY) / file.relative_to(directory))
    return buffer.getvalue()
