"""The ML core's entry points for the worker: prepare a job, explain it in chunks, merge, or run it whole.

A job splits into `prepare` (load, fit, predict, metrics) and explanation chunks: `plan_chunks` cuts the
test rows (SHAP) or the features (permutation) into spans, `explain` computes one span, and
`merge_explanations` joins the spans in order. Everything is seeded by the job's seed, so a span gives
the same numbers whichever process computes it, and `run` equals prepare + one chunk per method + merge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shared.ml.data import Dataset, load_dataset
from shared.ml.errors import LimitExceeded, ParameterError
from shared.ml.estimators import build_model
from shared.ml.intervals import fit_with_interval
from shared.ml.metrics import classification_result, json_float, json_floats, regression_result
from shared.ml.spec import ExplanationMethod, JobSpec, Limits

PERMUTATION_REPEATS = 10
PREPARE_SHARE = 0.2  # fraction of run()'s progress bar spent before the explanations
SUMMED_KEYS = frozenset({"n_model_evals", "n_predict_calls"})
SpanProgress = Callable[[int, int], None]


@dataclass
class PreparedJob:
    """A fitted job: its data, the fitted model and the predictions-and-metrics part of the result."""

    spec: JobSpec
    dataset: Dataset
    model: Any
    result: dict


def prepare(content: bytes, spec: JobSpec, limits: Limits, n_threads: int | None = None) -> PreparedJob:
    """Load the CSV, fit the model on the training rows and score it on the test rows."""
    dataset = load_dataset(content, spec.task, spec.seed, limits)
    model = build_model(spec.model, n_threads)
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
        return PreparedJob(spec, dataset, fitted.model, result)
    _guarded_fit(lambda: model.fit(dataset.X_train, dataset.y_train), model)
    if spec.task == "regression":
        result = regression_result(dataset.y_test, np.asarray(model.predict(dataset.X_test)).ravel())
    else:
        assert dataset.class_labels is not None
        y_pred = np.asarray(model.predict(dataset.X_test)).ravel().astype(np.int64)
        proba = np.asarray(model.predict_proba(dataset.X_test))
        result = classification_result(dataset.y_test, y_pred, proba, dataset.class_labels)
    return PreparedJob(spec, dataset, model, result)


def plan_chunks(prepared: PreparedJob, method: ExplanationMethod, chunk_size: int) -> list[tuple[int, int]]:
    """(start, stop) spans covering the test rows (shap) or the features (permutation), in order."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
    total = _span_total(prepared, method)
    return [(start, min(start + chunk_size, total)) for start in range(0, total, chunk_size)]


def explain(
    prepared: PreparedJob,
    method: ExplanationMethod,
    limits: Limits,
    span: tuple[int, int] | None = None,
    progress: SpanProgress | None = None,
) -> dict:
    """One span's partial explanation (arrays, not yet JSON); span=None explains everything."""
    total = _span_total(prepared, method)
    start, stop = span if span is not None else (0, total)
    if not 0 <= start < stop <= total:
        raise ValueError(f"span {span} is outside 0..{total} for {method}")
    dataset, seed = prepared.dataset, prepared.spec.seed
    if method == "permutation":
        from shared.ml.explain.permutation import permutation_importance

        if progress:
            progress(0, stop - start)
        part = permutation_importance(
            prepared.model,
            dataset.X_test,
            dataset.y_test,
            task=prepared.spec.task,
            n_repeats=PERMUTATION_REPEATS,
            random_state=seed,
            features=(start, stop),
        )
        if progress:
            progress(stop - start, stop - start)
    elif method == "shap":
        check_shap_limits(prepared.dataset, limits, interactions=prepared.spec.shap_interactions)
        from shared.ml.explain.shap import explain_shap

        part = explain_shap(
            prepared.model,
            background_rows(dataset, limits, seed),
            dataset.X_test[start:stop],
            task=prepared.spec.task,
            random_state=seed,
            row_ids=np.arange(start, stop),
            progress=progress,
            interactions=prepared.spec.shap_interactions,
        )
    else:
        raise ParameterError("unknown_explanation", f"Unknown explanation method {method!r}.")
    part["span"] = (start, stop)
    return part


def merge_explanations(prepared: PreparedJob, method: ExplanationMethod, parts: list[dict]) -> dict:
    """Join spans in order into one JSON-ready dict (lists, finite floats or None) with feature_names."""
    if not parts:
        raise ValueError("merge_explanations needs at least one part")
    parts = sorted(parts, key=lambda part: part["span"][0])
    spans = [part["span"] for part in parts]
    merged: dict[str, Any] = {}
    for key, first in parts[0].items():
        if key in ("span", "features"):
            continue
        values = [part.get(key) for part in parts]
        if key in SUMMED_KEYS:
            merged[key] = int(sum(value or 0 for value in values))
        elif key == "error_estimate":
            known = [float(value) for value in values if value is not None]
            merged[key] = json_float(max(known)) if known else None
        elif _is_per_span(first, parts[0]["span"]):
            merged[key] = json_floats(np.concatenate([np.asarray(value) for value in values], axis=0))
        else:
            merged[key] = _json_ready(first)
    names = prepared.dataset.feature_names
    if method == "permutation":
        merged["feature_names"] = [names[i] for start, stop in spans for i in range(start, stop)]
    else:
        merged["feature_names"] = list(names)
        merged["row_span"] = [spans[0][0], spans[-1][1]]
        if prepared.dataset.class_labels is not None:
            merged["class_labels"] = list(prepared.dataset.class_labels)
    return merged


MethodRunner = Callable[[PreparedJob, ExplanationMethod, SpanProgress], dict]


def explain_whole(limits: Limits) -> MethodRunner:
    """Explain a method in one piece, in this process (the default MethodRunner)."""

    def runner(prepared: PreparedJob, method: ExplanationMethod, progress: SpanProgress) -> dict:
        return merge_explanations(prepared, method, [explain(prepared, method, limits, progress=progress)])

    return runner


def run(
    content: bytes,
    spec: JobSpec,
    limits: Limits,
    n_threads: int | None = None,
    progress: Callable[[float, str], None] | None = None,
    explain_method: MethodRunner | None = None,
) -> dict:
    """The whole job: predictions, metrics and result["interpretability"].

    `interpretability` is techtonique's flat object (`{"method": ..., ...}`) when one method was asked,
    and a list of such objects, in the order asked, when several were.

    `explain_method` decides how each method's explanation is computed (the worker passes one that
    fans large work out to other workers); by default everything runs here, in one piece.
    """
    report = progress or (lambda fraction, message: None)
    runner = explain_method or explain_whole(limits)
    report(0.0, "fitting")
    prepared = prepare(content, spec, limits, n_threads)
    result = dict(prepared.result)
    methods = list(dict.fromkeys(spec.interpretability))
    if "shap" in methods:
        check_shap_limits(
            prepared.dataset, limits, interactions=prepared.spec.shap_interactions
        )  # fail before spending time on other methods
    report(PREPARE_SHARE, "fitted")
    explanations: list[dict] = []
    share = (1.0 - PREPARE_SHARE) / max(len(methods), 1)
    for position, method in enumerate(methods):
        offset = PREPARE_SHARE + position * share
        explanation = runner(prepared, method, _span_reporter(report, method, offset, share))
        explanations.append({"method": method, **explanation})
    if explanations:
        result["interpretability"] = explanations[0] if len(explanations) == 1 else explanations
    report(1.0, "done")
    return result


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


def background_rows(dataset: Dataset, limits: Limits, seed: int) -> np.ndarray:
    """Up to max_background_rows training rows, drawn without replacement by a Generator(seed)."""
    n_train = dataset.X_train.shape[0]
    if n_train <= limits.max_background_rows:
        return dataset.X_train
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(n_train, size=limits.max_background_rows, replace=False))
    return dataset.X_train[chosen]


def _guarded_fit(fit: Callable[[], Any], model: Any) -> Any:
    """Turn an estimator's refusal of the data (a ValueError) into an error the user can act on."""
    try:
        return fit()
    except ValueError as err:
        raise ParameterError(
            "model_fit_failed", f"{type(model).__name__} could not be fitted on this data: {err}"
        ) from err


def _span_total(prepared: PreparedJob, method: ExplanationMethod) -> int:
    if method == "shap":
        return prepared.dataset.X_test.shape[0]
    if method == "permutation":
        return len(prepared.dataset.feature_names)
    raise ParameterError("unknown_explanation", f"Unknown explanation method {method!r}.")


def _is_per_span(value: Any, span: tuple[int, int]) -> bool:
    return isinstance(value, np.ndarray) and value.ndim >= 1 and value.shape[0] == span[1] - span[0]


def _json_ready(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return json_floats(value) if value.dtype.kind == "f" else value.tolist()
    if isinstance(value, np.generic):
        return value.item() if value.dtype.kind != "f" else json_float(value)
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _span_reporter(
    report: Callable[[float, str], None], method: ExplanationMethod, offset: float, share: float
) -> SpanProgress:
    unit = "rows" if method == "shap" else "features"
    label = "SHAP" if method == "shap" else "permutation"

    def on_progress(done: int, total: int) -> None:
        report(offset + share * done / max(total, 1), f"{label} {done}/{total} {unit}")

    return on_progress
