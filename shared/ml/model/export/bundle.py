"""A kept model as a zip that scores and explains tables offline, exactly as the job did.

The zip holds:
- `predict.py`: `python predict.py INPUT.csv|INPUT.parquet [--explain] [--out OUT.csv|OUT.parquet]`;
- `model.skops`: the whole `KeptModel` (the estimator with its category encoding, imputation, interval
  band, nnetsauce's hidden layer, the SHAP background) as a skops file, not a pickle: `predict.py`
  checks its sha256 (`model.skops.sha256`) and loads it trusting only the types of the model libraries and
  of fitexplain's ML core, refusing any other;
- `shared/ml/`: fitexplain's ML core, vendored (pure Python over NumPy), so that the upload is read,
  encoded, imputed, predicted and explained by the very code the job ran: the same SHAP explainer, the
  same seed, the same values;
- `card.json` (the model card), `schema.json` (the training schema), `background.parquet` (the SHAP
  background rows in model space, when the explainer uses one), and `requirements.txt` pinned to the
  versions that fitted the model.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.ml.model.export import Exported
from shared.ml.model.export.requirements import pinned

if TYPE_CHECKING:
    from shared.ml.model.kept import KeptModel

FORMAT = "bundle"
MEDIA_TYPE = "application/zip"
MODEL_FILE = "model.skops"
SCRIPT = "predict_script.py"
#: What predict.py needs besides the model's own libraries: the ML core's imports (isal and pyarrow read
#: the upload as the service does; shap and numba explain).
CORE_REQUIREMENTS = ("numpy", "scipy", "pandas", "pyarrow", "isal", "scikit-learn", "skops", "shap", "numba")
#: The model libraries, by the module prefix of a type in the skops file.
MODEL_LIBRARIES = {
    "xgboost.": "xgboost",
    "lightgbm.": "lightgbm",
    "catboost.": "catboost",
    "nnetsauce.": "nnetsauce",
}


def refusal(kept: KeptModel) -> str | None:
    return None


def export(kept: KeptModel) -> Exported:
    """The bundle's zip (every kept model has one)."""
    import skops.io

    model = skops.io.dumps(kept)
    untrusted = skops.io.get_untrusted_types(data=model)
    files: dict[str, bytes] = {
        "predict.py": resources.files("shared.ml.model.export").joinpath(SCRIPT).read_bytes(),
        MODEL_FILE: model,
        f"{MODEL_FILE}.sha256": hashlib.sha256(model).hexdigest().encode() + b"\n",
        "card.json": _json(card_of(kept, hashlib.sha256(model).hexdigest())),
        "schema.json": _json(schema_of(kept)),
        "requirements.txt": "\n".join(requirements_of(kept, untrusted)).encode() + b"\n",
        **vendored_core(),
    }
    if kept.background is not None:
        files["background.parquet"] = _background(kept)
    return Exported(_zipped(files), "model-bundle.zip", MEDIA_TYPE)


def requirements_of(kept: KeptModel, untrusted_types: list[str]) -> list[str]:
    """The packages predict.py needs, pinned: the ML core's and every model library the model holds."""
    libraries = [
        package
        for prefix, package in MODEL_LIBRARIES.items()
        if any(name.startswith(prefix) for name in untrusted_types)
    ]
    return pinned(kept, *CORE_REQUIREMENTS, *libraries)


def schema_of(kept: KeptModel) -> dict[str, Any]:
    return {
        "features": [feature.as_json() for feature in kept.features],
        "target": kept.target.as_json(),
    }


def card_of(kept: KeptModel, model_sha256: str) -> dict[str, Any]:
    """What the bundle says about its model: the job's request, the estimator, the versions that fitted
    it, its schema and test metrics, its SHAP background and the sha256 of `model.skops`."""
    from shared.ml.model.export.requirements import model_library

    spec = kept.spec.to_json()
    return {
        "endpoint": ("ml" if kept.spec.model.family == "ml" else "gbdt") + kept.spec.task,
        "params": spec,
        "estimator": {"name": type(kept.model).__name__, "library": model_library(kept)},
        "libraries": dict(kept.libraries),
        **schema_of(kept),
        "metrics": _plain(kept.metrics),
        "background": None if kept.background is None else {"rows": len(kept.background)},
        "model_file": MODEL_FILE,
        "model_sha256": model_sha256,
    }


def vendored_core() -> dict[str, bytes]:
    """The ML core's Python files under `shared/ml/`, with a `shared` package around them."""
    import shared.ml

    root = Path(shared.ml.__file__).resolve().parent
    files = {
        "shared/__init__.py": b'"""fitexplain\'s ML core, vendored into a model bundle (see predict.py)."""\n'
    }
    for path in sorted(root.rglob("*.py")):
        files[f"shared/ml/{path.relative_to(root).as_posix()}"] = path.read_bytes()
    return files


def _background(kept: KeptModel) -> bytes:
    import pandas as pd

    assert kept.background is not None
    buffer = io.BytesIO()
    pd.DataFrame(np.asarray(kept.background), columns=kept.feature_names).to_parquet(buffer, index=False)
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    """JSON-ready: arrays and NumPy scalars as lists and numbers."""
    return json.loads(json.dumps(value, default=lambda item: np.asarray(item).tolist()))


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False).encode() + b"\n"


def _zipped(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in files.items():
            # A fixed timestamp: the same model gives the same bundle bytes.
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, body)
    return buffer.getvalue()
