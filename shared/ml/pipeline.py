"""The ML core's entry points for the worker: prepare a job, explain it in chunks, merge, or run it whole.

A job splits into `prepare` (load, fit, predict, metrics) and explanation chunks: `plan_chunks` cuts a
method's units (test rows for SHAP, features for permutation) into spans, `explain` computes one span,
and `merge_explanations` joins the spans in order. Methods are objects looked up by name in
shared/ml/explain/methods/; nothing here knows which methods exist. Everything is seeded by the job's
seed, so a span gives the same numbers whichever process computes it, and `run` equals prepare + one
chunk per method + merge.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from shared.ml.categories import with_categories
from shared.ml.errors import ParameterError
from shared.ml.estimators import build_model, fit_model
from shared.ml.explain import tree
from shared.ml.explain.methods import check_explanation_limits, explanation_method
from shared.ml.explain.methods.base import ExplanationPart, SpanProgress, merge_parts
from shared.ml.imputation import Imputation, impute_missing
from shared.ml.ingest.dataset import Dataset, load_source, roles_of
from shared.ml.intervals import fit_with_interval
from shared.ml.metrics import classification_result, regression_result
from shared.ml.model.background_file import read_background
from shared.ml.model.schema import features_of, raw_matrix
from shared.ml.phases import Phases
from shared.ml.prepared import PreparedJob
from shared.ml.spec import JobSpec, Limits
from shared.ml.validation import validate_job

__all__ = [
    "PreparedJob",
    "SpanProgress",
    "check_explanation_limits",
    "explain",
    "merge_explanations",
    "plan_chunks",
    "prepare",
    "run",
]

PREPARE_SHARE = 0.2  # fraction of run()'s progress bar spent before the explanations


def prepare(
    source: bytes | Path,
    spec: JobSpec,
    limits: Limits,
    n_threads: int | None = None,
    phases: Phases | None = None,
    background: bytes | None = None,
) -> PreparedJob:
    """Load the upload, fit the model on the training rows and score it on the test rows.

    `source` is the canonical Parquet file (a path, or its bytes) of `shared.ml.ingest.upload`;
    `background` the kept feature columns of the SHAP background file sent with the job, when its spec
    names one (`shared.ml.model.background_file`), made into model space as the test rows are.
    """
    validate_job(spec)
    phases = phases or Phases()
    with phases.timed("load"):
        dataset, imputation = impute_missing(
            load_source(source, spec.task, spec.seed, limits, roles_of(spec)), spec.model
        )
    with phases.timed("fit"):
        prepared = _fit(spec, dataset, n_threads, limits)
    prepared.imputation = imputation
    if background is not None:
        prepared.uploaded_background = _model_rows(dataset, imputation, background)
    return prepared


def _model_rows(dataset: Dataset, imputation: Imputation | None, background: bytes) -> np.ndarray:
    """A background file's kept feature columns as the model's matrix, built as the test rows were
    (features by name, categories as their training codes, missing values imputed as they were)."""
    X, _ = raw_matrix(features_of(dataset), read_background(background))
    return X if imputation is None else imputation.fill(X)


def _fit(spec: JobSpec, dataset: Dataset, n_threads: int | None, limits: Limits) -> PreparedJob:
    model = with_categories(
        build_model(spec.model, n_threads),
        sorted(dataset.categories),
        len(dataset.feature_names),
        limits.max_categories,
    )
    if spec.task == "regression" and spec.return_pi:
        fitted = _guarded_fit(
            lambda: fit_with_interval(
                model,
                dataset.X_train,
                dataset.y_train,
                dataset.X_test,
                method=spec.pi_method,
                level=spec.level,
                seed=spec.seed,
            ),
            model,
        )
        result = regression_result(dataset.y_test, fitted.y_pred, (fitted.lower, fitted.upper))
        result["calibration_rows"] = fitted.calibration_rows
        result["notes"] = fitted.notes(len(dataset.y_train), spec.level, spec.pi_method)
        return PreparedJob(spec, dataset, fitted.model, _with_rows(result, dataset), interval=fitted.band)
    _guarded_fit(lambda: fit_model(model, dataset.X_train, dataset.y_train), model)
    if spec.task == "regression":
        result = regression_result(dataset.y_test, np.asarray(model.predict(dataset.X_test)).ravel())
    else:
        assert dataset.class_labels is not None
        y_pred = np.asarray(model.predict(dataset.X_test)).ravel().astype(np.int64)
        proba = np.asarray(model.predict_proba(dataset.X_test))
        result = classification_result(dataset.y_test, y_pred, proba, dataset.class_labels)
    return PreparedJob(spec, dataset, model, _with_rows(result, dataset))


def _with_rows(result: dict[str, Any], dataset: Dataset) -> dict[str, Any]:
    """The result with the test rows' 0-based row numbers in the upload (`test_rows`) and, with an id
    column, their ids (`test_ids`), in the order of `y_true`."""
    if dataset.test_rows is not None:
        result["test_rows"] = dataset.test_rows.tolist()
    if dataset.test_ids is not None:
        result["test_ids"] = dataset.test_ids
    return result


def plan_chunks(prepared: PreparedJob, method: str, chunk_size: int) -> list[tuple[int, int]]:
    """(start, stop) spans of `chunk_size` units covering the method's work (rows or features), in order."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    total = explanation_method(method).work(prepared)
    return [(start, min(start + chunk_size, total)) for start in range(0, total, chunk_size)]


def explain(
    prepared: PreparedJob,
    method: str,
    limits: Limits,
    span: tuple[int, int] | None = None,
    progress: SpanProgress | None = None,
) -> ExplanationPart:
    """One span's explanation, typed by its method (arrays, not yet JSON); span=None explains everything."""
    explainer = explanation_method(method)
    total = explainer.work(prepared)
    start, stop = span if span is not None else (0, total)
    if not 0 <= start < stop <= total:
        raise ValueError(f"span {span} is outside 0..{total} for {method}")
    return explainer.compute(prepared, limits, (start, stop), progress)


def merge_explanations(
    prepared: PreparedJob, method: str, parts: list[ExplanationPart], *, arrays: bool = False
) -> dict[str, Any]:
    """Join spans in order into the method's flat public object (lists, finite floats or None; with
    `arrays`, float arrays stay arrays, for a result only orjson encodes: see `metrics.json_array`)."""
    expected = explanation_method(method).result_type
    if not all(isinstance(part, expected) for part in parts):
        raise TypeError(f"merge_explanations({method!r}) got parts that are not {expected.__name__}")
    return merge_parts(parts).to_json(arrays=arrays)


def cheap_to_explain(prepared: PreparedJob) -> bool:
    """Whether the model is a tree model, whose predictions and exact TreeSHAP cost microseconds to a
    millisecond a row (model-agnostic explainers cost thousands of times more): fan-out sizes its chunks by
    this."""
    return tree.supports(prepared.model)


MethodRunner = Callable[[PreparedJob, str, SpanProgress], dict[str, Any]]


def explain_whole(limits: Limits) -> MethodRunner:
    """Explain a method in one piece, in this process (the default MethodRunner)."""

    def runner(prepared: PreparedJob, method: str, progress: SpanProgress) -> dict[str, Any]:
        return merge_explanations(prepared, method, [explain(prepared, method, limits, progress=progress)])

    return runner


def run(
    source: bytes | Path,
    spec: JobSpec,
    limits: Limits,
    n_threads: int | None = None,
    progress: Callable[[float, str], None] | None = None,
    explain_method: MethodRunner | None = None,
    phases: Phases | None = None,
    on_prepared: Callable[[PreparedJob], None] | None = None,
    background: bytes | None = None,
) -> dict[str, Any]:
    """The whole job: predictions, metrics and result["interpretability"].

    `interpretability` is techtonique's flat object (`{"method": ..., ...}`) when one method was asked,
    and a list of such objects, in the order asked, when several were.

    `explain_method` decides how each method's explanation is computed (the worker passes one that
    fans large work out to other workers); by default everything runs here, in one piece. `phases`, when
    given, receives the seconds spent loading, fitting and explaining. `on_prepared`, when given, receives
    the fitted job (the worker keeps its model). `background`: as for `prepare`.
    """
    phases = phases or Phases()
    report = progress or (lambda fraction, message: None)
    runner = explain_method or explain_whole(limits)
    report(0.0, "fitting")
    prepared = prepare(source, spec, limits, n_threads, phases, background)
    if on_prepared is not None:
        on_prepared(prepared)
    result = dict(prepared.result)
    methods = list(dict.fromkeys(spec.interpretability))
    check_explanation_limits(spec, prepared.dataset, limits)  # fail before spending time on any method
    report(PREPARE_SHARE, "fitted")
    explanations: list[dict[str, Any]] = []
    share = (1.0 - PREPARE_SHARE) / max(len(methods), 1)
    for position, method in enumerate(methods):
        offset = PREPARE_SHARE + position * share
        with phases.timed("explain"):
            explanations.append(runner(prepared, method, _span_reporter(report, method, offset, share)))
    if explanations:
        result["interpretability"] = explanations[0] if len(explanations) == 1 else explanations
    report(1.0, "done")
    return result


def _guarded_fit(fit: Callable[[], Any], model: Any) -> Any:
    """Turn an estimator's refusal of the data (a ValueError) into an error the user can act on."""
    try:
        return fit()
    except ValueError as err:
        raise ParameterError(
            "model_fit_failed", f"{type(model).__name__} could not be fitted on this data: {err}"
        ) from err


def _span_reporter(
    report: Callable[[float, str], None], method: str, offset: float, share: float
) -> SpanProgress:
    explainer = explanation_method(method)

    def on_progress(done: int, total: int) -> None:
        report(offset + share * done / max(total, 1), f"{explainer.label} {done}/{total} {explainer.unit}")

    return on_progress
