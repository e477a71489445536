"""Explanation methods as objects (shared/ml/explain/methods/): typed parts, declared merges."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from api.endpoint_params import GbdtClassificationParams
from shared.dispatch.chunks import decode_part, encode_part
from shared.ml.explain.methods import explanation_method, explanation_names, register, unregister
from shared.ml.explain.methods.base import (
    PER_UNIT,
    SAME,
    SUMMED,
    ExplanationPart,
    Span,
    SpanProgress,
    merge_parts,
)
from shared.ml.explain.methods.permutation import PermutationImportance
from shared.ml.explain.methods.shap import ShapValues
from shared.ml.ingest.dataset import Dataset
from shared.ml.pipeline import explain, merge_explanations, plan_chunks, prepare, run
from shared.ml.prepared import PreparedJob
from shared.ml.spec import JobSpec, Limits, ModelSpec

XGBOOST = ModelSpec(task="classification", family="gbdt", model_type="xgboost", n_estimators=10)


def test_built_in_methods_and_their_result_types() -> None:
    assert explanation_names() == ("permutation", "shap")
    assert explanation_method("shap").result_type is ShapValues
    assert explanation_method("permutation").result_type is PermutationImportance
    assert ShapValues.per_unit_fields() == ("values", "base_values", "interaction_values")
    assert PermutationImportance.per_unit_fields() == (
        "importances_mean",
        "importances_std",
        "importances",
        "feature_names",
    )
    with pytest.raises(ValueError, match="Unknown explanation method 'lime'"):
        explanation_method("lime")


def test_parts_merge_by_their_declarations_and_survive_the_chunk_store(iris: bytes) -> None:
    prepared = prepare(iris, JobSpec(model=XGBOOST, interpretability=("shap",)), Limits(), n_threads=1)
    parts = [explain(prepared, "shap", Limits(), span) for span in plan_chunks(prepared, "shap", 20)]
    assert [part.span for part in parts] == [(0, 20), (20, 40), (40, 45)]
    stored = [ShapValues.from_record(decode_part(encode_part(part))) for part in parts]
    merged = merge_parts(list(reversed(stored)))
    assert merged.span == (0, 45) and merged.values.shape == (45, 4, 3)
    assert merged.n_model_evals == sum(part.n_model_evals for part in parts)
    assert merged.interaction_values is None and "interaction_values" not in merged.to_json()
    assert merge_explanations(prepared, "shap", parts) == merged.to_json()
    with pytest.raises(ValueError, match="not contiguous"):
        merge_parts([parts[0], parts[2]])
    with pytest.raises(TypeError, match="not PermutationImportance"):
        merge_explanations(prepared, "permutation", parts)


# A third method, written as a new method module would be: one result type and one method object.
@dataclass(frozen=True)
class FeatureSpread(ExplanationPart):
    method = "spread"

    spread: np.ndarray = field(metadata=PER_UNIT)
    feature_names: list[str] = field(metadata=PER_UNIT)
    n_rows_seen: int = field(metadata=SUMMED)
    statistic: str = field(metadata=SAME)


class FeatureSpreadMethod:
    name = FeatureSpread.method
    label = "spread"
    unit = "features"
    result_type = FeatureSpread

    def work(self, prepared: PreparedJob) -> int:
        return len(prepared.dataset.feature_names)

    def units_per_chunk(self, prepared: PreparedJob, rows_per_chunk: int) -> int:
        return 1

    def check_limits(self, dataset: Dataset, spec: JobSpec, limits: Limits) -> None:
        pass

    def compute(
        self, prepared: PreparedJob, limits: Limits, span: Span, progress: SpanProgress | None
    ) -> FeatureSpread:
        X = prepared.dataset.X_test[:, span[0] : span[1]]
        return FeatureSpread(
            span=span,
            spread=X.std(axis=0),
            feature_names=prepared.dataset.feature_names[span[0] : span[1]],
            n_rows_seen=X.shape[0] * X.shape[1],
            statistic="std",
        )


@pytest.fixture
def spread_method() -> Iterator[None]:
    register(FeatureSpreadMethod())
    yield
    unregister("spread")


def test_a_third_method_needs_only_its_module_and_registration(iris: bytes, spread_method: None) -> None:
    params = GbdtClassificationParams(model_type="xgboost", n_estimators=10, interpretability="spread,shap")
    result = run(iris, params.to_spec(), Limits(), n_threads=1)
    spread, shap = result["interpretability"]
    assert spread["method"] == "spread" and shap["method"] == "shap"
    assert spread["feature_names"] == shap["feature_names"] and len(spread["spread"]) == 4
    assert spread["statistic"] == "std" and spread["n_rows_seen"] == 45 * 4

    prepared = prepare(iris, params.to_spec(), Limits(), n_threads=1)
    chunks = plan_chunks(prepared, "spread", 1)
    merged = merge_explanations(
        prepared, "spread", [explain(prepared, "spread", Limits(), s) for s in chunks]
    )
    assert merged.keys() == spread.keys() and merged["feature_names"] == spread["feature_names"]
    np.testing.assert_allclose(merged["spread"], spread["spread"], rtol=1e-12)
