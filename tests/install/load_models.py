"""Run by a fresh virtual environment's Python (no fitexplain in it): load each downloaded model file with
its own library, as a user would, and write its predictions of the given rows.

    python load_models.py MANIFEST.json

The manifest lists {"format", "path", "rows" (a .npy of model-space rows), "classifier", "out"}; each
entry's predictions go to its `out` (.npz: `pred`, and `proba` for a classifier).
"""

from __future__ import annotations

import json
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np


def native(path: Path, X: np.ndarray, classifier: bool) -> dict[str, np.ndarray]:
    if path.suffix == ".ubj":
        import xgboost

        model = xgboost.XGBClassifier() if classifier else xgboost.XGBRegressor()
        model.load_model(path)
        return outputs(model, X, classifier)
    if path.suffix == ".txt":
        import lightgbm

        raw = np.asarray(lightgbm.Booster(model_file=str(path)).predict(X), dtype=np.float64)
        if not classifier:
            return {"pred": raw}
        proba = np.column_stack([1.0 - raw, raw]) if raw.ndim == 1 else raw
        return {"pred": proba.argmax(axis=1), "proba": proba}
    import catboost

    model = catboost.CatBoostClassifier() if classifier else catboost.CatBoostRegressor()
    model.load_model(str(path), format="cbm")
    return outputs(model, X, classifier)


def skops_file(path: Path, X: np.ndarray, classifier: bool) -> dict[str, np.ndarray]:
    import skops.io

    model = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
    return outputs(model, X, classifier)


def onnx_file(path: Path, X: np.ndarray, classifier: bool) -> dict[str, np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    declared = session.get_inputs()[0]
    double = declared.type == "tensor(double)"
    result = session.run(None, {declared.name: X.astype(np.float64 if double else np.float32)})
    found: dict[str, Any] = {"double": np.asarray(double)}
    if not classifier:
        return {**found, "pred": np.asarray(result[0], dtype=np.float64).ravel()}
    proba = result[1]
    if isinstance(proba, list):  # CatBoost's graph: one {class: probability} map per row
        proba = [[row[key] for key in sorted(row)] for row in proba]
    return {**found, "pred": np.asarray(result[0]).ravel(), "proba": np.asarray(proba, dtype=np.float64)}


def mlflow_zip(path: Path, X: np.ndarray, classifier: bool, names: list[str]) -> dict[str, np.ndarray]:
    import mlflow
    import pandas as pd

    folder = Path(tempfile.mkdtemp())
    zipfile.ZipFile(path).extractall(folder)
    uri = str(folder / "model")
    frame = pd.DataFrame(X, columns=names)
    served = mlflow.pyfunc.load_model(uri)
    found = {"pred": np.asarray(served.predict(frame)).ravel()}
    if classifier:  # the flavor's own model, for its class probabilities
        flavor = served.loader_module.split(".")[1]
        found["proba"] = np.asarray(getattr(mlflow, flavor).load_model(uri).predict_proba(frame))
    return found


def outputs(model: Any, X: Any, classifier: bool) -> dict[str, np.ndarray]:
    found = {"pred": np.asarray(model.predict(X)).ravel()}
    if classifier:
        found["proba"] = np.asarray(model.predict_proba(X), dtype=np.float64)
    return found


def main() -> None:
    for entry in json.loads(Path(sys.argv[1]).read_text()):
        path, X = Path(entry["path"]), np.load(entry["rows"])
        classifier = entry["classifier"]
        fmt = entry["format"]
        if fmt == "mlflow":
            found = mlflow_zip(path, X, classifier, entry["feature_names"])
        else:
            found = {"native": native, "skops": skops_file, "onnx": onnx_file}[fmt](path, X, classifier)
        np.savez(entry["out"], **found)


if __name__ == "__main__":
    main()
