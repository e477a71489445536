"""SHAP values as an explanation method: spans are test rows, explained against the job's background
(`shared.ml.explain.background`), which the result records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.ml.errors import LimitExceeded
from shared.ml.explain import background as backgrounds
from shared.ml.explain.methods.base import (
    LARGEST,
    PER_UNIT,
    SAME,
    SUMMED,
    ExplanationPart,
    Span,
    SpanProgress,
)
from shared.ml.ingest.dataset import Dataset
from shared.ml.prepared import PreparedJob
from shared.ml.spec import JobSpec, Limits


@dataclass(frozen=True)
class ShapValues(ExplanationPart):
    """techtonique's keys (values, base_values, feature_names) per row, then how they were made (`background`:
    which background rows the explainer took, `shared.ml.explain.background`)."""

    method = "shap"
    span_key = "row_span"

    values: np.ndarray = field(metadata=PER_UNIT)  # rows x features (x classes)
    base_values: np.ndarray = field(metadata=PER_UNIT)  # rows (x classes)
    feature_names: list[str] = field(metadata=SAME)
    explainer: str = field(metadata=SAME)
    exact: bool = field(metadata=SAME)
    output_space: str = field(metadata=SAME)
    n_model_evals: int = field(metadata=SUMMED)
    error_estimate: float | None = field(metadata=LARGEST)
    notes: str = field(metadata=SAME)
    class_labels: list[str] | None = field(default=None, metadata=SAME)  # classification only
    interaction_values: np.ndarray | None = field(default=None, metadata=PER_UNIT)  # shap_interactions
    background: dict[str, Any] | None = field(default=None, metadata=SAME)

    @classmethod
    def from_explainer(
        cls,
        raw: dict[str, Any],
        span: tuple[int, int],
        feature_names: list[str],
        class_labels: list[str] | None,
        background: dict[str, Any] | None = None,
    ) -> ShapValues:
        """The part made of `explain_shap`'s answer for the rows of `span`; `background` the record of the
        background it took (its notes say so when the request chose one TreeSHAP did not use)."""
        return cls(
            span=span,
            values=raw["values"],
            base_values=raw["base_values"],
            feature_names=feature_names,
            explainer=raw["explainer"],
            exact=raw["exact"],
            output_space=raw["output_space"],
            n_model_evals=raw["n_model_evals"],
            error_estimate=raw["error_estimate"],
            notes=raw["notes"] if background is None else backgrounds.with_note(raw["notes"], background),
            class_labels=list(class_labels) if class_labels is not None else None,
            interaction_values=raw.get("interaction_values"),
            background=background,
        )


class ShapMethod:
    name = ShapValues.method
    label = "SHAP"
    unit = "rows"
    result_type: type[ExplanationPart] = ShapValues

    def work(self, prepared: PreparedJob) -> int:
        n_rows: int = prepared.dataset.X_test.shape[0]
        return n_rows

    def units_per_chunk(self, prepared: PreparedJob, rows_per_chunk: int) -> int:
        return max(1, rows_per_chunk)

    def check_limits(self, dataset: Dataset, spec: JobSpec, limits: Limits) -> None:
        check_shap_limits(dataset, limits, interactions=spec.shap_interactions)

    def compute(
        self, prepared: PreparedJob, limits: Limits, span: Span, progress: SpanProgress | None
    ) -> ShapValues:
        from shared.ml.explain.shap import explain_shap

        dataset, spec = prepared.dataset, prepared.spec
        self.check_limits(dataset, spec, limits)
        start, stop = span
        background = backgrounds.for_fit(prepared, limits)
        raw = explain_shap(
            prepared.model,
            background.rows if background is not None else dataset.X_train[:0],
            dataset.X_test[start:stop],
            task=spec.task,
            random_state=spec.seed,
            row_ids=np.arange(start, stop),
            progress=progress,
            interactions=spec.shap_interactions,
        )
        record = background.record if background is not None else backgrounds.not_used(spec.background)
        return ShapValues.from_explainer(
            raw, span, list(dataset.feature_names), dataset.class_labels, background=record
        )


def check_shap_limits(dataset: Dataset, limits: Limits, *, interactions: bool = False) -> None:
    """LimitExceeded if the SHAP values for the whole test set would be too many rows or floats.

    Needs only the data, so the API refuses such a job at submit time, before anything is fitted.
    """
    n_rows, n_features = dataset.X_test.shape
    n_outputs = len(dataset.class_labels) if dataset.class_labels is not None else 1
    if n_rows > limits.max_explain_rows:
        raise LimitExceeded(
            "too_many_explain_rows",
            f"SHAP would explain {n_rows} test rows, more than max_explain_rows = {limits.max_explain_rows}: "
            "use fewer test rows (sample them, or mark fewer rows training_index = 0) or raise the limit.",
        )
    n_floats = n_rows * n_features * n_outputs * (n_features + 1 if interactions else 1)
    if n_floats > limits.max_shap_floats:
        with_interactions = f" x {n_features + 1} (with interactions)" if interactions else ""
        raise LimitExceeded(
            "too_many_shap_values",
            f"SHAP values would hold {n_rows} rows x {n_features} features x {n_outputs} outputs"
            f"{with_interactions} = {n_floats} floats, more than max_shap_floats = {limits.max_shap_floats}: "
            "sample the test rows, drop features, or raise the limit.",
        )
