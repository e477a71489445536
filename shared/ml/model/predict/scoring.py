"""Score and explain an upload with a kept model, batch by batch, and join the batches into the result.

Each batch of the upload's rows becomes the model-space matrix exactly as the fit built its test rows
(`KeptModel.matrix`), is predicted, and its rows that cross the threshold are explained by the fit's own
explainer (`shared.ml.explain.shap.explain_shap`: exact TreeSHAP for trees, the fit's seed and the model's
background for the others, which a job may replace (`shared.ml.model.predict.background`), each row
seeded by its row number, so batching changes no value). No batch is held longer
than its own part: a million rows never make one table-sized copy beside the result's arrays.

The result speaks the fit's names: `y_pred`; `proba` and `class_labels` for classifiers; `pi_lower` and
`pi_upper` with `return_pi`; `ids` with `id_column`; `interpretability` (the fit's flat SHAP object, for the
explained rows), `explained_rows` and `reasons` with interpretability=shap; `unseen_categories` and
`extra_columns` always.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from shared.ml.errors import DataError, LimitExceeded, ParameterError
from shared.ml.explain.methods.base import merge_parts
from shared.ml.explain.methods.shap import ShapValues
from shared.ml.ingest.columns import feature_numbers, json_values
from shared.ml.metrics import json_array, json_floats, original_labels
from shared.ml.model.predict.checks import category_texts, refuse_unseen
from shared.ml.model.predict.options import PredictOptions
from shared.ml.model.predict.selection import Reasons, crossing, top_reasons
from shared.ml.model.schema import FeatureSchema
from shared.ml.phases import Phases
from shared.ml.spec import JobSpec, Limits

BATCH_ROWS = Limits().predict_batch_rows

Progress = Callable[[int, int], None]


class Scorable(Protocol):
    """What scoring needs of a kept model (`shared.ml.model.kept.KeptModel`)."""

    spec: JobSpec

    @property
    def model(self) -> Any: ...  # the fitted estimator as the fit explained it

    @property
    def class_labels(self) -> list[str] | None: ...

    @property
    def background(self) -> np.ndarray | None: ...

    @property
    def features(self) -> Sequence[FeatureSchema]: ...

    def matrix(self, frame: pd.DataFrame) -> tuple[np.ndarray, dict[str, int]]: ...

    def predict(self, X: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, X: np.ndarray) -> np.ndarray: ...

    def predict_interval(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    def background_used(self) -> dict[str, Any]: ...  # the record of `background`


@dataclass
class ScoredBatch:
    """One batch's share of the result, as arrays; `explained` are global row numbers."""

    start: int
    y_pred: np.ndarray  # class codes for a classifier
    proba: np.ndarray | None = None
    pi: tuple[np.ndarray, np.ndarray] | None = None
    ids: pd.Series | None = None  # the id column's values as uploaded
    explained: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    shap: ShapValues | None = None
    reasons: Reasons | None = None
    unseen: dict[str, int] = field(default_factory=dict)

    @property
    def n_rows(self) -> int:
        return len(self.y_pred)


def check_predict_limits(n_rows: int, n_features: int, n_outputs: int, limits: Limits) -> None:
    """LimitExceeded when SHAP on `n_rows` new rows would pass the predict row limit or the SHAP floats
    limit (a threshold may explain fewer, but the submit cannot know how many)."""
    if n_rows > limits.max_predict_explain_rows:
        raise LimitExceeded(
            "too_many_explain_rows",
            f"SHAP would explain up to {n_rows} rows, more than max_predict_explain_rows = "
            f"{limits.max_predict_explain_rows}: send fewer rows, or interpretability=none.",
        )
    n_floats = n_rows * n_features * n_outputs
    if n_floats > limits.max_shap_floats:
        raise LimitExceeded(
            "too_many_shap_values",
            f"SHAP values would hold {n_rows} rows x {n_features} features x {n_outputs} outputs = "
            f"{n_floats} floats, more than max_shap_floats = {limits.max_shap_floats}: send fewer rows.",
        )


def read_batches(source: Path | bytes, batch_rows: int = BATCH_ROWS) -> Iterator[pd.DataFrame]:
    """The canonical file's rows (`shared.ml.ingest.canonical`) as frames of at most `batch_rows` rows:
    numbers as float64, text as text (a missing value None)."""
    import io

    import pyarrow.parquet as pq

    from shared.ml.ingest.canonical import POSITION

    with pq.ParquetFile(source if isinstance(source, Path) else io.BytesIO(source)) as file:
        names = [name for name in file.schema_arrow.names if name != POSITION]
        for batch in file.iter_batches(batch_size=batch_rows, columns=names):
            yield batch.to_pandas()


def count_rows(source: Path | bytes) -> int:
    """The canonical file's rows, from its footer."""
    import io

    import pyarrow.parquet as pq

    with pq.ParquetFile(source if isinstance(source, Path) else io.BytesIO(source)) as file:
        return int(file.metadata.num_rows)


def score_batch(
    kept: Scorable, frame: pd.DataFrame, options: PredictOptions, start: int, phases: Phases | None = None
) -> ScoredBatch:
    """Predict (and explain, as `options` asks) one batch of rows whose first is row `start` of the upload;
    `phases` receives the seconds spent predicting and explaining."""
    phases = phases or Phases()
    with phases.timed("predict"):
        scored, X = _predicted(kept, frame, options, start)
    if options.explains:
        with phases.timed("explain"):
            _explain(kept, frame, X, options, scored)
    return scored


def _predicted(
    kept: Scorable, frame: pd.DataFrame, options: PredictOptions, start: int
) -> tuple[ScoredBatch, np.ndarray]:
    """The batch's predictions, and its model-space rows (not kept: only the explained ones are used)."""
    X, unseen = kept.matrix(frame)
    if options.strict:
        refuse_unseen(unseen)
    task = kept.spec.task
    scored = ScoredBatch(start, np.asarray(kept.predict(X)).ravel(), unseen=dict(unseen))
    if task == "classification":
        scored.y_pred = scored.y_pred.astype(np.int64)
        scored.proba = np.asarray(kept.predict_proba(X), dtype=np.float64)
    else:
        scored.y_pred = scored.y_pred.astype(np.float64)
    if options.return_pi:
        lower, upper = kept.predict_interval(X)
        scored.pi = (np.asarray(lower, np.float64).ravel(), np.asarray(upper, np.float64).ravel())
    if options.id_column is not None:
        scored.ids = frame[options.id_column]
    return scored, X


def _explain(
    kept: Scorable, frame: pd.DataFrame, X: np.ndarray, options: PredictOptions, scored: ScoredBatch
) -> None:
    chosen = np.flatnonzero(
        crossing(kept.spec.task, scored.y_pred, scored.proba, options.threshold, options.below)
    )
    scored.explained = chosen + scored.start
    if not len(chosen):
        return
    scored.shap = explain_rows(kept, X[chosen], scored.explained)
    predicted = scored.y_pred[chosen] if kept.spec.task == "classification" else None
    numbers, texts, categorical = uploaded_values(frame, kept.features, chosen)
    scored.reasons = top_reasons(scored.shap.values, predicted, numbers, texts, categorical, options.top_n)


def check_explainable(kept: Scorable) -> None:
    """ParameterError (409) when SHAP on new rows needs a background the kept model does not hold (a
    model-agnostic or nnetsauce explainer; path-dependent TreeSHAP uses none)."""
    from shared.ml.explain.shap import choose_explainer

    if kept.background is None and choose_explainer(kept.model) != "tree":
        raise ParameterError(
            "no_background",
            "This model's SHAP explainer needs the background rows of its fit, which were not kept: "
            "predict with interpretability=none, or fit the model again.",
            status=409,
        )


def explain_rows(
    kept: Scorable, X: np.ndarray, rows: np.ndarray, span: tuple[int, int] | None = None
) -> ShapValues:
    """The fit's SHAP explanation of model-space rows `X` (upload row numbers `rows`), as a part whose span
    is `span` (by default the row numbers' own)."""
    from shared.ml.explain.shap import explain_shap

    spec = kept.spec
    background = kept.background
    raw = explain_shap(
        kept.model,
        background if background is not None else X[:0],
        X,
        task=spec.task,
        random_state=spec.seed,
        row_ids=rows,
    )
    return ShapValues.from_explainer(
        raw,
        span or (0, len(rows)),
        [feature.name for feature in kept.features],
        kept.class_labels,
        background=kept.background_used(),
    )


def uploaded_values(
    frame: pd.DataFrame, features: Sequence[FeatureSchema], rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The features' values of `rows` as uploaded, as `Reasons` holds them: (numbers: rows x features,
    NaN when missing or categorical; texts: rows x features, a category's text, else None, or no array
    without categorical features; which features are categorical)."""
    categorical = np.array([feature.categories is not None for feature in features], dtype=bool)
    numbers = np.full((len(rows), len(features)), np.nan)
    texts = np.full((len(rows), len(features)), None, dtype=object) if categorical.any() else None
    for j, feature in enumerate(features):
        taken = frame[feature.name].iloc[rows]
        if texts is not None and categorical[j]:
            texts[:, j] = _category_values(taken)
        elif pd.api.types.is_numeric_dtype(taken.dtype):
            numbers[:, j] = taken.to_numpy(dtype=np.float64)
        else:  # numbers kept as text (a column with missing-value tokens): the numbers the model saw
            numbers[:, j] = feature_numbers(taken, feature.name).to_numpy(dtype=np.float64)
    return numbers, texts, categorical


def _category_values(taken: pd.Series) -> list[object]:
    """A categorical feature's values as their text, None when missing."""
    if pd.api.types.is_numeric_dtype(taken.dtype):
        import pyarrow as pa

        return list(category_texts(pa.array(taken.to_numpy(dtype=np.float64))).to_pylist())
    return [None if value is None or value != value else str(value) for value in taken.tolist()]


def scored_batches(
    kept: Scorable,
    batches: Iterable[pd.DataFrame],
    options: PredictOptions,
    tally: Tally,
    *,
    n_rows: int | None = None,
    progress: Progress | None = None,
    phases: Phases | None = None,
) -> Iterator[ScoredBatch]:
    """Each batch scored (`score_batch`) in turn, counted in `tally`; DataError `no_rows` after the last
    when there was none. The seconds spent reading are phase "read"."""
    phases = phases or Phases()
    for frame in _timed(batches, phases):
        scored = score_batch(kept, frame, options, tally.n_rows, phases)
        tally.add(kept, frame, scored, options)
        if progress is not None:
            progress(tally.n_rows, n_rows or tally.n_rows)
        yield scored
    if not tally.n_rows:
        raise DataError("no_rows", "The file has a header but no data rows: there is nothing to score.")


def score(
    kept: Scorable,
    batches: Iterable[pd.DataFrame],
    options: PredictOptions,
    *,
    extra_columns: Sequence[str] = (),
    n_rows: int | None = None,
    progress: Progress | None = None,
    arrays: bool = False,
    phases: Phases | None = None,
) -> dict[str, Any]:
    """The whole result of scoring `batches` (consecutive rows of one upload), every batch held until
    they are joined. With `arrays`, float arrays stay arrays (for orjson, which writes the same JSON:
    `metrics.json_array`)."""
    phases = phases or Phases()
    tally = Tally()
    scored = scored_batches(kept, batches, options, tally, n_rows=n_rows, progress=progress, phases=phases)
    parts = list(scored)
    with phases.timed("merge"):
        return merge(kept, parts, options, tally, extra_columns, arrays=arrays)


def _timed(batches: Iterable[pd.DataFrame], phases: Phases) -> Iterator[pd.DataFrame]:
    """The batches, the seconds spent reading each counted in phase "read"."""
    found = iter(batches)
    while True:
        with phases.timed("read"):
            frame = next(found, None)
        if frame is None:
            return
        yield frame


@dataclass
class Tally:
    """What a result says beside its rows, counted batch by batch: the rows scored and explained, the
    unseen categories, and how SHAP explained them (each batch's SHAP part without its values)."""

    n_rows: int = 0
    n_explained: int = 0
    unseen: dict[str, int] = field(default_factory=dict)
    shap_parts: list[ShapValues] = field(default_factory=list)
    first_row: np.ndarray | None = None  # a model-space row: describes "no row" when none is explained
    _shap: ShapValues | None = field(default=None, repr=False)  # `shap`'s answer, once the batches are done

    def add(self, kept: Scorable, frame: pd.DataFrame, scored: ScoredBatch, options: PredictOptions) -> None:
        self.n_rows += scored.n_rows
        for name, count in scored.unseen.items():
            self.unseen[name] = self.unseen.get(name, 0) + int(count)
        if scored.shap is not None:
            done, count = self.n_explained, len(scored.explained)
            self.shap_parts.append(
                _respan(
                    scored.shap,
                    (done, done + count),
                    values=scored.shap.values[:0],
                    base_values=scored.shap.base_values[:0],
                )
            )
            self.n_explained += count
        elif options.explains and self.first_row is None:
            self.first_row = kept.matrix(frame.iloc[:1])[0]

    def shap(self, kept: Scorable) -> ShapValues:
        """How the explained rows were explained, without their values (zero rows): the batches' parts
        joined, or, when no row crossed the threshold, the explainer's answer for no rows, saying so. Asked
        once every batch was added."""
        if self._shap is None:
            self._shap = merge_parts(self.shap_parts) if self.shap_parts else self._no_row(kept)
        return self._shap

    def _no_row(self, kept: Scorable) -> ShapValues:
        # Explainers are not all defined on no rows: one row is explained for the explainer's description,
        # and its values dropped.
        assert self.first_row is not None
        one = explain_rows(kept, self.first_row, np.zeros(1, dtype=np.int64))
        return _respan(
            one,
            (0, 0),
            values=one.values[:0],
            base_values=one.base_values[:0],
            n_model_evals=0,
            error_estimate=None,
            notes=f"No row crossed the threshold: no row is explained. {one.notes}",
        )


#: Where a result holds one entry per scored row (or per explained row): what `merge` fills in.
ROW_ENTRIES: tuple[tuple[str, ...], ...] = (
    ("y_pred",),
    ("proba",),
    ("pi_lower",),
    ("pi_upper",),
    ("ids",),
    ("interpretability", "values"),
    ("interpretability", "base_values"),
    ("explained_rows",),
    ("reasons",),
)


def result_skeleton(
    kept: Scorable,
    options: PredictOptions,
    tally: Tally,
    extra_columns: Sequence[str] = (),
    *,
    arrays: bool = False,
) -> dict[str, Any]:
    """The result with None at each of its ROW_ENTRIES (see the module docstring for its keys, in order):
    what a result says beside its rows, for `merge` to fill in or a table to hold."""
    result: dict[str, Any] = {"y_pred": None}
    if kept.spec.task == "classification":
        result["proba"] = None
        result["class_labels"] = original_labels(list(kept.class_labels or []))
    if options.return_pi:
        result["pi_lower"] = result["pi_upper"] = None
    if options.id_column is not None:
        result["ids"] = None
    if options.explains:
        result["interpretability"] = {
            **tally.shap(kept).to_json(arrays=arrays),
            "values": None,
            "base_values": None,
        }
        result["explained_rows"] = result["reasons"] = None
    result["unseen_categories"] = dict(tally.unseen)
    result["extra_columns"] = list(extra_columns)
    return result


def merge(
    kept: Scorable,
    parts: list[ScoredBatch],
    options: PredictOptions,
    tally: Tally,
    extra_columns: Sequence[str] = (),
    *,
    arrays: bool = False,
) -> dict[str, Any]:
    """Join consecutive batches into the result (see the module docstring for its keys)."""
    floats: Callable[[np.ndarray], Any] = json_array if arrays else json_floats
    result = result_skeleton(kept, options, tally, extra_columns, arrays=arrays)
    y_pred = np.concatenate([part.y_pred for part in parts])
    if kept.spec.task == "classification":
        labels = result["class_labels"]
        result["y_pred"] = [labels[code] for code in y_pred.tolist()]
        result["proba"] = floats(np.concatenate([part.proba for part in parts if part.proba is not None]))
    else:
        result["y_pred"] = floats(y_pred)
    if options.return_pi:
        result["pi_lower"] = floats(np.concatenate([part.pi[0] for part in parts if part.pi is not None]))
        result["pi_upper"] = floats(np.concatenate([part.pi[1] for part in parts if part.pi is not None]))
    if options.id_column is not None:
        result["ids"] = [value for part in parts if part.ids is not None for value in json_values(part.ids)]
    if options.explains:
        explained = [part.shap for part in parts if part.shap is not None]
        shap = result["interpretability"]
        if explained:
            shap["values"] = floats(np.concatenate([part.values for part in explained]))
            shap["base_values"] = floats(np.concatenate([part.base_values for part in explained]))
        else:  # the explainer's own answer for no rows, as `ShapValues.to_json` writes it
            empty = tally.shap(kept).to_json(arrays=arrays)
            shap["values"], shap["base_values"] = empty["values"], empty["base_values"]
        result["explained_rows"] = np.concatenate([part.explained for part in parts]).tolist()
        names = [feature.name for feature in kept.features]
        result["reasons"] = [row for part in parts if part.reasons for row in part.reasons.to_json(names)]
    return result


def _respan(part: ShapValues, span: tuple[int, int], **changes: Any) -> ShapValues:
    from dataclasses import replace

    return replace(part, span=span, **changes)
