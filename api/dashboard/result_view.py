"""The metrics part of a result, arranged for display: the classification report and confusion matrix,
or the regression scores. Reads the public result shape only."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SUMMARY_ROWS = ("accuracy", "macro avg", "weighted avg")
REPORT_COLUMNS = ("precision", "recall", "f1-score", "support")


@dataclass(frozen=True)
class ClassificationMetrics:
    report: list[tuple[str, list[float | None]]]
    accuracy: float | None
    labels: list[str]
    confusion: list[list[int]]  # rows: actual label, columns: predicted label


@dataclass(frozen=True)
class RegressionMetrics:
    scores: list[tuple[str, Any]]
    pi_coverage: float | None


def metrics_view(result: dict[str, Any]) -> ClassificationMetrics | RegressionMetrics | None:
    if isinstance(result.get("Score"), dict):
        return RegressionMetrics(list(result["Score"].items()), result.get("pi_coverage"))
    rows = [
        (name, [value.get(column) for column in REPORT_COLUMNS])
        for name, value in result.items()
        if isinstance(value, dict) and "precision" in value
    ]
    if not rows:
        return None
    labels = sorted({str(v) for v in result.get("y_true", [])} | {str(v) for v in result.get("y_pred", [])})
    index = {label: k for k, label in enumerate(labels)}
    confusion = [[0] * len(labels) for _ in labels]
    for actual, predicted in zip(result.get("y_true", []), result.get("y_pred", []), strict=False):
        confusion[index[str(actual)]][index[str(predicted)]] += 1
    accuracy = result.get("accuracy")
    return ClassificationMetrics(
        rows, accuracy if isinstance(accuracy, int | float) else None, labels, confusion
    )
