"""The explanation-method protocol and the typed results its spans return.

A result is a frozen dataclass whose fields declare how spans combine (as scikit-learn's Bunch results
say what they hold): PER_UNIT arrays are indexed by the span's units (test rows or features) along
axis 0 and are concatenated; SUMMED counts add up; LARGEST keeps the worst estimate; SAME fields are
equal in every span. `to_json` is the flat public object, with "method" first.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, Self, TypeVar

import numpy as np

from shared.ml.ingest.dataset import Dataset
from shared.ml.metrics import json_array, json_float, json_floats
from shared.ml.prepared import PreparedJob
from shared.ml.spec import JobSpec, Limits

Span = tuple[int, int]
SpanProgress = Callable[[int, int], None]
_COMBINE = "combine"


# Field metadata: how a field combines over spans. Use as `dataclasses.field(metadata=PER_UNIT)`; a field
# whose default is None is optional and left out of the JSON when it is None.
PER_UNIT = {_COMBINE: "concatenate"}  # indexed by the span's units along axis 0
SUMMED = {_COMBINE: "sum"}  # a count that adds up (model evaluations, predict calls)
LARGEST = {_COMBINE: "largest"}  # an error estimate: the largest known one, None when none is known
SAME = {_COMBINE: "same"}  # metadata equal in every span


@dataclasses.dataclass(frozen=True)
class ExplanationPart:
    """One span's explanation; subclasses declare each field's metadata: PER_UNIT, SUMMED, LARGEST, SAME."""

    method: ClassVar[str]  # the `interpretability` name and the result's "method" key
    span_key: ClassVar[str | None] = None  # shown as this key in the JSON (SHAP: "row_span")

    span: Span

    @classmethod
    def per_unit_fields(cls) -> tuple[str, ...]:
        """The fields indexed by the span's units (test rows or features) along axis 0."""
        return tuple(f.name for f in cls.data_fields() if f.metadata.get(_COMBINE) == "concatenate")

    @classmethod
    def data_fields(cls) -> list[dataclasses.Field[Any]]:
        return [f for f in dataclasses.fields(cls) if f.name != "span"]

    def to_json(self, *, arrays: bool = False) -> dict[str, Any]:
        """The flat public object: {"method": ..., every field, ...}, JSON-ready (finite floats or None).
        With `arrays`, float arrays stay arrays (`metrics.json_array`): for orjson, which writes the same."""
        body: dict[str, Any] = {"method": self.method}
        for f in self.data_fields():
            value = getattr(self, f.name)
            if value is None and f.default is None:
                continue
            body[f.name] = _json_ready(value, arrays)
        if self.span_key is not None:
            body[self.span_key] = list(self.span)
        return body

    def to_record(self) -> dict[str, Any]:
        """Fields as a dict (arrays stay arrays), for storing a fan-out chunk."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Self:
        values: dict[str, Any] = {f.name: record.get(f.name) for f in dataclasses.fields(cls)}
        values["span"] = (int(record["span"][0]), int(record["span"][1]))
        return cls(**values)


P = TypeVar("P", bound=ExplanationPart)


def merge_parts(parts: Sequence[P]) -> P:
    """Join contiguous spans, in span order, into one part covering all of them."""
    if not parts:
        raise ValueError("merge_parts needs at least one part")
    ordered = sorted(parts, key=lambda part: part.span[0])
    for before, after in itertools.pairwise(ordered):
        if before.span[1] != after.span[0]:
            raise ValueError(f"spans {before.span} and {after.span} are not contiguous")
    kind = type(ordered[0])
    merged: dict[str, Any] = {"span": (ordered[0].span[0], ordered[-1].span[1])}
    for f in kind.data_fields():
        values = [getattr(part, f.name) for part in ordered]
        merged[f.name] = _combine(f.metadata.get(_COMBINE, "same"), values)
    return kind(**merged)


def _combine(how: str, values: list[Any]) -> Any:
    if how == "concatenate":
        if values[0] is None:
            return None
        if isinstance(values[0], list):
            return [item for value in values for item in value]
        return np.concatenate([np.asarray(value) for value in values], axis=0)
    if how == "sum":
        return int(sum(value or 0 for value in values))
    if how == "largest":
        known = [float(value) for value in values if value is not None]
        return max(known) if known else None
    return values[0]


def _json_ready(value: Any, arrays: bool) -> Any:
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "f":
            return value.tolist()
        return json_array(value) if arrays else json_floats(value)
    if isinstance(value, np.generic):
        return value.item() if value.dtype.kind != "f" else json_float(value)
    if isinstance(value, float):
        return json_float(value)
    if isinstance(value, tuple):
        return list(value)
    return value


class ExplanationMethod(Protocol):
    """One way of explaining a fitted job, e.g. permutation importance or SHAP values."""

    name: str  # the `interpretability` value; equals result_type.method
    label: str  # in progress messages: "SHAP 120/171 rows"
    unit: str  # what a span counts: "rows" or "features"
    result_type: type[ExplanationPart]

    def work(self, prepared: PreparedJob) -> int:
        """How many units (rows or features) there are to explain."""
        ...

    def units_per_chunk(self, prepared: PreparedJob, rows_per_chunk: int) -> int:
        """How many units make a chunk about as costly as explaining `rows_per_chunk` test rows."""
        ...

    def check_limits(self, dataset: Dataset, spec: JobSpec, limits: Limits) -> None:
        """LimitExceeded if the job is too large for this method; needs only the data, not the model."""
        ...

    def compute(
        self, prepared: PreparedJob, limits: Limits, span: Span, progress: SpanProgress | None
    ) -> ExplanationPart:
        """The explanation of units [start, stop); the same numbers whichever process computes it."""
        ...
