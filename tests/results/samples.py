"""Results in the pipeline's shapes, for the binary-format tests: real pipeline runs on the sample data,
and a synthetic one with what the sample data never gives (non-finite numbers as null, string labels)."""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import orjson

from shared.ml.explain.methods.base import SpanProgress
from shared.ml.explain.methods.permutation import PermutationImportance
from shared.ml.explain.methods.shap import ShapValues
from shared.ml.metrics import classification_result, regression_result
from shared.ml.pipeline import explain, merge_explanations, run
from shared.ml.prepared import PreparedJob
from shared.ml.spec import JobSpec, Limits, ModelSpec
from tests.canonical import canonical
from tests.stack import DATA


def gbdt(task: str, model_type: str = "lightgbm") -> ModelSpec:
    return ModelSpec(task=task, family="gbdt", model_type=model_type, n_estimators=5)


CASES = {
    "classification, shap": (
        "breast_cancer_dataset2.csv",
        JobSpec(model=gbdt("classification"), interpretability=("shap",)),
    ),
    "regression, permutation,shap, intervals": (
        "boston_dataset2.csv",
        JobSpec(model=gbdt("regression"), interpretability=("permutation", "shap"), return_pi=True),
    ),
    "multi-class, shap,permutation, interactions": (
        "iris_dataset2.csv",
        JobSpec(
            model=gbdt("classification", "xgboost"),
            interpretability=("shap", "permutation"),
            shap_interactions=True,
        ),
    ),
}


@cache
def pipeline_result(case: str) -> dict[str, Any]:
    """The pipeline's result as the API reads it back: through its stored JSON."""
    name, spec = CASES[case]
    return orjson.loads(orjson.dumps(run(canonical((DATA / name).read_bytes()), spec, Limits(), n_threads=1)))


def worker_result(case: str) -> dict[str, Any]:
    """The pipeline's result as a worker holds it before storing it: float arrays of the explanations
    kept as arrays (`merge_explanations(arrays=True)`, as worker.fanout's runner merges)."""
    name, spec = CASES[case]
    limits = Limits()

    def one_piece(prepared: PreparedJob, method: str, progress: SpanProgress) -> dict:
        parts = [explain(prepared, method, limits, progress=progress)]
        return merge_explanations(prepared, method, parts, arrays=True)

    return run(canonical((DATA / name).read_bytes()), spec, limits, n_threads=1, explain_method=one_piece)


def synthetic_result(
    n_rows: int = 7,
    n_features: int = 3,
    labels: tuple[str, ...] = ("no", "yes", "yes_no", "01"),
    arrays: bool = False,
) -> dict:
    """Three string labels, nulls in proba, SHAP values and base values, a permutation list too."""
    rng = np.random.default_rng(1)
    n_classes = len(labels)
    proba = rng.dirichlet(np.ones(n_classes), n_rows)
    proba[2, 1] = np.nan
    result = classification_result(
        rng.integers(0, n_classes, n_rows), rng.integers(0, n_classes, n_rows), proba, list(labels)
    )
    values = rng.normal(size=(n_rows, n_features, n_classes))
    values[0, 0, 0], values[3, 2, 1] = np.inf, np.nan
    names = ["a", "a_yes", "b c"]  # "shap_a_yes_no": feature "a_yes" of class "no", "a" of "yes_no"
    shap = ShapValues(
        span=(0, n_rows),
        values=values,
        base_values=rng.normal(size=(n_rows, n_classes)),
        feature_names=names,
        explainer="sampling",
        exact=False,
        output_space="probability",
        n_model_evals=1234,
        error_estimate=0.05,
        notes="synthetic",
        class_labels=list(labels),
        background={"source": "sample", "rows": 5, "seed": 1, "drawn_from": {"source": "upload", "rows": 9}},
    )
    permutation = PermutationImportance(
        span=(0, n_features),
        importances_mean=rng.normal(size=n_features),
        importances_std=rng.uniform(size=n_features),
        importances=rng.normal(size=(n_features, 10)),
        feature_names=names,
        scoring="accuracy",
        n_repeats=10,
        n_model_evals=5,
        n_predict_calls=1,
        baseline_score=0.5,
    )
    result["interpretability"] = [shap.to_json(arrays=arrays), permutation.to_json(arrays=arrays)]
    return result if arrays else orjson.loads(orjson.dumps(result))


def synthetic_regression(n_rows: int = 5) -> dict:
    rng = np.random.default_rng(2)
    y_pred = rng.normal(size=n_rows)
    y_pred[1] = np.inf
    return orjson.loads(orjson.dumps(regression_result(rng.normal(size=n_rows), y_pred)))
