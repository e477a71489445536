"""scikit-learn's `classification_report(output_dict=True, zero_division=0)` for label codes 0..n-1,
computed from the confusion counts with NumPy.

Same keys in the same order, the same float64 operations (so the same bits), without scikit-learn's
per-call input validation, which costs ~5 ms on a small job (four precision_recall_fscore_support
calls, each re-checking the targets) and more than the fit of a small model. Inputs the fast path
does not cover (codes outside 0..n-1, no rows) go to scikit-learn itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

HEADERS = ("precision", "recall", "f1-score", "support")


def classification_report(y_true: np.ndarray, y_pred: np.ndarray, target_names: list[str]) -> dict[str, Any]:
    """The report of int64 codes `y_true`, `y_pred` (1-D, same length) for classes named `target_names`."""
    n_classes = len(target_names)
    if len(y_true) == 0 or not (_codes_in_range(y_true, n_classes) and _codes_in_range(y_pred, n_classes)):
        return _sklearn_report(y_true, y_pred, target_names)
    tp_sum = np.bincount(y_true[y_true == y_pred], minlength=n_classes)
    pred_sum = np.bincount(y_pred, minlength=n_classes)
    true_sum = np.bincount(y_true, minlength=n_classes)

    precision, recall, f_score = _scores(tp_sum, pred_sum, true_sum)
    report: dict[str, Any] = {}
    for name, p, r, f, s in zip(target_names, precision, recall, f_score, true_sum, strict=True):
        report[name] = dict(zip(HEADERS, [float(p), float(r), float(f), float(s)], strict=True))
    support = float(np.sum(true_sum))

    # scikit-learn's "micro" precision is the accuracy when every label seen is one of `labels` (always
    # so here); the key goes here, between the classes and the averages, as scikit-learn places it
    totals = [np.reshape(np.sum(counts), (1,)) for counts in (tp_sum, pred_sum, true_sum)]
    report["accuracy"] = float(np.nanmean(_scores(*totals)[0]))
    report["macro avg"] = dict(
        zip(HEADERS, [float(np.nanmean(m)) for m in (precision, recall, f_score)] + [support], strict=True)
    )
    weighted = [_weighted_average(m, true_sum) for m in (precision, recall, f_score)]
    report["weighted avg"] = dict(zip(HEADERS, [*weighted, support], strict=True))
    return report


def _codes_in_range(codes: np.ndarray, n_classes: int) -> bool:
    return bool(codes.min() >= 0 and codes.max() < n_classes)


def _scores(tp_sum: np.ndarray, pred_sum: np.ndarray, true_sum: np.ndarray) -> tuple[np.ndarray, ...]:
    """Precision, recall and F1 per entry, 0 where undefined (scikit-learn's `_prf_divide`)."""
    tp = tp_sum.astype(np.float64)
    precision = _divide(tp, pred_sum.astype(np.float64))
    recall = _divide(tp, true_sum.astype(np.float64))
    beta2 = 1.0
    f_score = _divide((1 + beta2) * tp, beta2 * true_sum.astype(np.float64) + pred_sum.astype(np.float64))
    return precision, recall, f_score


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    zero = denominator == 0
    denominator = denominator.copy()
    denominator[zero] = 1
    result: np.ndarray = numerator / denominator
    result[zero] = 0.0
    return result


def _weighted_average(values: np.ndarray, weights: np.ndarray) -> float:
    """scikit-learn's `_nanaverage` for values without NaN: the plain mean when the weights sum to zero."""
    w = weights.astype(np.float64)
    scale = np.sum(w)
    if scale == 0.0:
        return float(np.mean(values))
    return float(np.sum(values * w) / scale)


def _sklearn_report(y_true: np.ndarray, y_pred: np.ndarray, target_names: list[str]) -> dict[str, Any]:
    from sklearn import metrics as skm  # here: the API reads this package's helpers, never a report

    report: dict[str, Any] = skm.classification_report(
        y_true,
        y_pred,
        labels=list(range(len(target_names))),
        target_names=target_names,
        output_dict=True,
        zero_division=0,
    )
    if "accuracy" not in report:  # scikit-learn swaps it for "micro avg" when some labels are never seen
        report["accuracy"] = skm.accuracy_score(y_true, y_pred)
    return report
