"""Permutation importance as an explanation method: spans are features, scored on the test rows."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from shared.ml.explain.budgets import PERMUTATION_REPEATS
from shared.ml.explain.methods.base import (
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
class PermutationImportance(ExplanationPart):
    """techtonique's keys (importances_*, feature_names) per feature, then how they were computed."""

    method = "permutation"

    importances_mean: np.ndarray = field(metadata=PER_UNIT)
    importances_std: np.ndarray = field(metadata=PER_UNIT)
    importances: np.ndarray = field(metadata=PER_UNIT)  # features x repeats
    feature_names: list[str] = field(metadata=PER_UNIT)
    scoring: str = field(metadata=SAME)
    n_repeats: int = field(metadata=SAME)
    n_model_evals: int = field(metadata=SUMMED)  # each span rescores the unpermuted baseline
    n_predict_calls: int = field(metadata=SUMMED)
    baseline_score: float = field(metadata=SAME)


class PermutationMethod:
    name = PermutationImportance.method
    label = "permutation"
    unit = "features"
    result_type: type[ExplanationPart] = PermutationImportance

    def work(self, prepared: PreparedJob) -> int:
        return len(prepared.dataset.feature_names)

    def units_per_chunk(self, prepared: PreparedJob, rows_per_chunk: int) -> int:
        """Every feature costs a pass over all test rows: cut the features into n_rows/rows_per_chunk
        chunks (at least two, since fanning out at all means the work is large)."""
        n_rows: int = prepared.dataset.X_test.shape[0]
        n_chunks = max(2, math.ceil(n_rows / max(rows_per_chunk, 1)))
        return max(1, math.ceil(self.work(prepared) / n_chunks))

    def check_limits(self, dataset: Dataset, spec: JobSpec, limits: Limits) -> None:
        """No limit of its own: the result holds features x repeats floats."""

    def compute(
        self, prepared: PreparedJob, limits: Limits, span: Span, progress: SpanProgress | None
    ) -> PermutationImportance:
        from shared.ml.explain.permutation import permutation_importance

        start, stop = span
        if progress:
            progress(0, stop - start)
        raw = permutation_importance(
            prepared.model,
            prepared.dataset.X_test,
            prepared.dataset.y_test,
            task=prepared.spec.task,
            n_repeats=PERMUTATION_REPEATS,
            random_state=prepared.spec.seed,
            features=span,
        )
        if progress:
            progress(stop - start, stop - start)
        return PermutationImportance(
            span=span,
            importances_mean=raw["importances_mean"],
            importances_std=raw["importances_std"],
            importances=raw["importances"],
            feature_names=prepared.dataset.feature_names[start:stop],
            scoring=raw["scoring"],
            n_repeats=raw["n_repeats"],
            n_model_evals=raw["n_model_evals"],
            n_predict_calls=raw["n_predict_calls"],
            baseline_score=raw["baseline_score"],
        )
