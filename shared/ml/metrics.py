"""The predictions-and-metrics part of a result, in techtonique.net's JSON shapes.

Every float leaving this module is a finite Python float or None, so the result is JSON-safe.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from shared.ml.classification_report import classification_report

INTEGER_LABEL = re.compile(r"-?\d+")


def json_float(value: Any) -> float | None:
    """A finite Python float, or None for NaN/inf (JSON has neither)."""
    number = float(value)
    return number if math.isfinite(number) else None


def json_floats(values: Any) -> list[Any] | float | None:
    """Nested lists of JSON-safe floats from an array of any shape (a 0-d array: one float, or None)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 0:
        return json_float(array)
    finite = np.isfinite(array)
    if finite.all():  # the usual case, and 10x faster than the element-wise path below
        floats: list[Any] = array.tolist()
        return floats
    return _with_nones(array)


def json_array(values: np.ndarray) -> np.ndarray:
    """A float array kept as a C-contiguous float64 array instead of `json_floats`'s nested lists: orjson
    with OPT_SERIALIZE_NUMPY (how a worker stores results) writes it byte for byte as those lists,
    non-finite numbers as null. Millions of SHAP values then cost no Python float objects, whose
    allocation in a worker's fresh process was a tenth of a large job's time."""
    return np.ascontiguousarray(values, dtype=np.float64)


def _with_nones(array: np.ndarray) -> list[Any]:
    as_objects = array.astype(object)
    as_objects[~np.isfinite(array)] = None
    floats: list[Any] = as_objects.tolist()
    return floats


def original_labels(class_labels: list[str]) -> list[int] | list[str]:
    """Labels as the user wrote them: ints when every label is an integer written in its plain form (no
    leading zero or sign, within int64, so the JSON number reads back as the same text), else strings.
    `01` stays "01", so it never collides with 1."""
    if all(_plain_integer(label) for label in class_labels):
        return [int(label) for label in class_labels]
    return list(class_labels)


def _plain_integer(label: str) -> bool:
    return bool(INTEGER_LABEL.fullmatch(label)) and str(int(label)) == label and abs(int(label)) < 2**63


def classification_result(
    y_true_codes: np.ndarray, y_pred_codes: np.ndarray, proba: np.ndarray | None, class_labels: list[str]
) -> dict[str, Any]:
    """classification_report(output_dict=True) keyed by label strings, plus y_true, y_pred and proba."""
    y_true_codes = np.asarray(y_true_codes).astype(np.int64).ravel()
    y_pred_codes = np.asarray(y_pred_codes).astype(np.int64).ravel()
    report = classification_report(y_true_codes, y_pred_codes, class_labels)
    result = _json_report(report)
    labels = original_labels(class_labels)
    result["y_true"] = [labels[code] for code in y_true_codes]
    result["y_pred"] = [labels[code] for code in y_pred_codes]
    result["proba"] = None if proba is None else json_floats(proba)
    return result


def _json_report(report: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in report.items():
        if isinstance(value, dict):
            result[key] = {
                name: int(number) if name == "support" else json_float(number)
                for name, number in value.items()
            }
        else:
            result[key] = json_float(value)
    return result


def regression_result(
    y_true: np.ndarray, y_pred: np.ndarray, pi: tuple[np.ndarray, np.ndarray] | None = None
) -> dict[str, Any]:
    """y_true, y_pred, the prediction interval with its test coverage (percent) when given, and Score."""
    y_true = np.asarray(y_true, dtype=np.float64).ravel()
    y_pred = np.asarray(y_pred, dtype=np.float64).ravel()
    result: dict[str, Any] = {"y_true": json_floats(y_true), "y_pred": json_floats(y_pred)}
    if pi is not None:
        lower = np.asarray(pi[0], dtype=np.float64).ravel()
        upper = np.asarray(pi[1], dtype=np.float64).ravel()
        inside = (lower <= y_true) & (y_true <= upper)
        result["pi_lower"] = json_floats(lower)
        result["pi_upper"] = json_floats(upper)
        result["pi_coverage"] = json_float(100.0 * inside.mean())
    result["Score"] = _regression_scores(y_true, y_pred)
    return result


def _regression_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | int | None]:
    from sklearn import metrics as skm  # here: the API reads this module's JSON helpers and scores nothing

    finite = bool(np.isfinite(y_pred).all())
    mse = skm.mean_squared_error(y_true, y_pred) if finite else math.nan
    r2 = skm.r2_score(y_true, y_pred) if finite and len(y_true) > 1 else math.nan
    return {
        "R² Score": json_float(r2),
        "MAE (Mean Absolute Error)": json_float(np.mean(np.abs(y_true - y_pred))),
        "MSE (Mean Squared Error)": json_float(mse),
        "RMSE (Root Mean Squared Error)": json_float(math.sqrt(mse)),
        "MAPE (Mean Absolute Percentage Error)": json_float(_mape(y_true, y_pred)),
        "Max Error": json_float(np.max(np.abs(y_true - y_pred))),
        "support": len(y_true),
    }


def _mape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute percentage error, or NaN (reported as null) when a true value is zero."""
    if np.any(y_true == 0):
        return math.nan
    return float(np.mean(np.abs((y_true - y_pred) / y_true)))
