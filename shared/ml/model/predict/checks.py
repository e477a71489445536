"""An upload to score, checked against the model's training schema before anything is queued.

The training schema is the model card's `features` ([{"name", "dtype", "categories"?}] in training order):
a feature with `categories` is categorical, any other is numeric. The upload is described by its canonical
file's column facts (`shared.ml.ingest.canonical.ColumnFacts`: text or numbers, the first value that is not
a number, where the first missing value is), so the check reads no feature value. Every problem is found
before one is reported: a missing column, a numeric feature holding text, a missing value the model can
neither take nor have imputed, each named in one error (`schema_mismatch`, its `problems` listing them).

A categorical feature whose values happen all to be numbers is read as the numbers' text ("3", not "3.0"),
as the fit read its categories; a category never seen in training is counted per column
(`unseen_categories`), or refused with `strict`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shared.ml.errors import DataError
from shared.ml.ingest.canonical import ColumnFacts
from shared.ml.ingest.columns import TARGET, TRAINING_INDEX, number_texts, preview
from shared.ml.model.schema import NUMBER, FeatureSchema

SCHEMA_MISMATCH = "schema_mismatch"
UNSEEN_CATEGORY = "unseen_category"


def feature_of(described: Mapping[str, Any] | FeatureSchema) -> FeatureSchema:
    """A training feature from the card's JSON form ({"name", "dtype", "categories"?}) or itself."""
    if isinstance(described, FeatureSchema):
        return described
    categories = described.get("categories")
    return FeatureSchema(
        str(described["name"]),
        str(described.get("dtype", NUMBER)),
        None if categories is None else tuple(str(c) for c in categories),
    )


@dataclass(frozen=True)
class SchemaCheck:
    """What an accepted upload holds besides the features: the columns that will be ignored."""

    features: tuple[FeatureSchema, ...]
    extra_columns: list[str]


def check_schema(
    features: Sequence[Mapping[str, Any] | FeatureSchema],
    columns: Mapping[str, ColumnFacts],
    *,
    target: str = TARGET,
    id_column: str | None = None,
    handles_missing: bool = False,
    subject: str = "The file",
) -> SchemaCheck:
    """The upload's columns (name -> facts, in upload order) against the training features; DataError
    `schema_mismatch` naming every offending column at once.

    `target` may be absent (and is ignored when present), `id_column` must be present when named, and
    `handles_missing` says whether the model takes missing values (natively, or imputed as at fit).
    `subject` names the upload in the error ("The background file")."""
    wanted = tuple(feature_of(feature) for feature in features)
    problems: list[dict[str, Any]] = []
    if id_column is not None and id_column not in columns:
        problems.append(
            _problem(id_column, "missing_id_column", f"no column named '{id_column}' (id_column)")
        )
    for feature in wanted:
        facts = columns.get(feature.name)
        if facts is None:
            problems.append(_problem(feature.name, "missing_column", "missing"))
            continue
        if feature.categories is None and facts.text:
            found = facts.not_a_number or "it holds text"
            problems.append(
                _problem(
                    feature.name, "wrong_dtype", f"numbers expected, text found: {found}", "float64", "text"
                )
            )
        elif facts.n_missing and not handles_missing:
            where = f" (first on {facts.missing_at})" if facts.missing_at else ""
            problems.append(
                _problem(
                    feature.name,
                    "missing_value",
                    f"{facts.n_missing} missing values{where}, which this model neither takes nor imputes",
                )
            )
    if problems:
        raise schema_error(problems, [feature.name for feature in wanted], list(columns), subject)
    ignored = {feature.name for feature in wanted} | {target, TRAINING_INDEX, id_column}
    return SchemaCheck(wanted, [name for name in columns if name not in ignored])


def _problem(
    column: str, kind: str, message: str, expected: str | None = None, found: str | None = None
) -> dict[str, Any]:
    problem: dict[str, Any] = {"column": column, "problem": kind, "message": message}
    if expected is not None:
        problem.update(expected=expected, found=found)
    return problem


def schema_error(
    problems: list[dict[str, Any]], features: list[str], header: list[str], subject: str = "The file"
) -> DataError:
    listed = "; ".join(f"'{p['column']}': {p['message']}" for p in problems)
    return DataError(
        SCHEMA_MISMATCH,
        f"{subject} does not match the model's training columns ({len(problems)} problem"
        f"{'s' if len(problems) > 1 else ''}): {listed}. The model was trained on {preview(features, 10)}; "
        f"{subject[0].lower()}{subject[1:]} has {preview(header, 10)}.",
        column=problems[0]["column"],
        details={"problems": problems},
    )


def category_texts(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A categorical feature's values as the category text the fit compared: text as it is, numbers as
    their text ("3", not "3.0"), a missing value as null."""
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return values
    numbers = np.asarray(values.to_numpy(), dtype=np.float64)
    texts = number_texts(numbers)
    return pa.array(texts, pa.string(), mask=np.isnan(numbers))


def unseen_categories(features: Sequence[FeatureSchema], column: Any) -> dict[str, int]:
    """Per categorical feature, how many values (not missing) are no category of the training rows;
    `column(name)` gives an upload column (a pyarrow array)."""
    counts: dict[str, int] = {}
    for feature in features:
        if feature.categories is None:
            continue
        texts = category_texts(column(feature.name))
        known = pc.is_in(texts, value_set=pa.array(feature.categories, pa.string()))
        unseen = pc.and_(pc.invert(known), pc.is_valid(texts))
        counts[feature.name] = int(pc.sum(unseen).as_py() or 0)
    return counts


def refuse_unseen(counts: Mapping[str, int]) -> None:
    """DataError `unseen_category` naming every column holding categories never seen in training
    (`strict=true`)."""
    found = {name: count for name, count in counts.items() if count}
    if not found:
        return
    listed = ", ".join(f"'{name}' ({count} rows)" for name, count in found.items())
    raise DataError(
        UNSEEN_CATEGORY,
        f"Categories never seen in training in {listed}; strict=true refuses them. Without strict they "
        "are scored as the model treats an unknown category and counted in unseen_categories.",
        column=next(iter(found)),
        details={"unseen_categories": found},
    )
