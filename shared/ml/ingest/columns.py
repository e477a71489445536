"""A table's columns as every reader sees them: the two reserved text columns, and the checks each
feature value passes (missing, non-numeric, infinite), whatever the upload's format.

The CSV reader (dataset.py, from_csv.py), the columnar reader (from_columnar.py) and the canonical file
(canonical.py) all build on these, so the same value fails with the same error code and message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from shared.ml.errors import DataError

TARGET = "target"
TRAINING_INDEX = "training_index"
MISSING_TOKENS = frozenset({"", "na", "nan", "n/a", "null", "none", "#n/a", "-nan", "?"})
BOOLEAN_VALUES = {"true": 1.0, "false": 0.0}


@dataclass(frozen=True)
class LabelColumns:
    """What the split reads of a validated table besides its features: the `target` and (when present)
    `training_index` text, indexed by each row's position in the upload ("line" or "row", the index's
    name), which the errors name."""

    target: pd.Series
    training_index: pd.Series | None

    @classmethod
    def of(cls, frame: pd.DataFrame) -> LabelColumns:
        training_index = frame[TRAINING_INDEX] if TRAINING_INDEX in frame.columns else None
        return cls(frame[TARGET], training_index)


FeatureRows = Callable[[np.ndarray], np.ndarray]
"""Given row numbers, those rows' feature values: a (len(rows), n_features) float64 array."""


def is_missing(values: pd.Series) -> pd.Series:
    return values.str.lower().isin(MISSING_TOKENS)


def where_is(values: pd.Series, position: int) -> str:
    """Where a value is: "line N" of a CSV, "row N" of a Parquet or Arrow file (the index's name)."""
    return f"{values.index.name or 'line'} {position}"


def missing_value_error(column: str, where: str, value: object) -> DataError:
    return DataError(
        "missing_value",
        f"Column '{column}' has a missing value on {where} (value {value!r}); missing "
        "values are not imputed: fill or drop those rows first.",
        column=column,
    )


def _raise_missing(values: pd.Series, column: str) -> None:
    missing = is_missing(values)
    if missing.any():
        line = int(values.index[int(np.argmax(missing.to_numpy()))])
        raise missing_value_error(column, where_is(values, line), values.loc[line])


def checked_strings(values: pd.Series, column: str) -> pd.Series:
    values = values.astype(str)
    _raise_missing(values, column)
    return values


def to_float(values: pd.Series, column: str, code: str = "non_numeric") -> pd.Series:
    """Convert strings to float64; name the first bad value and its line otherwise."""
    parsed = plain_numbers(values)
    if parsed is not None:
        return pd.Series(parsed, index=values.index)
    _raise_missing(values, column)
    numbers = pd.to_numeric(values, errors="coerce")
    bad = numbers.isna().to_numpy()
    if bad.any():
        booleans = values.str.lower().map(BOOLEAN_VALUES)
        numbers = numbers.where(~bad, booleans)
        bad = numbers.isna().to_numpy()
    if bad.any():
        line = int(values.index[int(np.argmax(bad))])
        raise DataError(
            code,
            f"Column '{column}' has a non-numeric value {values.loc[line]!r} on {where_is(values, line)}.",
            column=column,
        )
    numbers = numbers.astype(np.float64)
    infinite = np.isinf(numbers.to_numpy())
    if infinite.any():
        line = int(values.index[int(np.argmax(infinite))])
        raise DataError(
            "infinite_value",
            f"Column '{column}' has an infinite value {values.loc[line]!r} on {where_is(values, line)}.",
            column=column,
        )
    return numbers


def plain_numbers(values: pd.Series) -> np.ndarray | None:
    """The values as float64 when every one is a plain finite decimal number, else None (then the checks
    above find and name the first problem). Arrow's parser is correctly rounded, as pandas' to_numeric,
    so they agree on every such text; it is several times faster and skips the missing-value scan, which
    a column of numbers cannot fail (each missing-value token parses as NaN or not at all)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        # pandas' strings are Arrow's
        numbers: np.ndarray = pc.cast(pa.array(values), pa.float64()).to_numpy()
    except pa.ArrowException:  # something that is not a plain number: the checks name it
        return None
    if not np.isfinite(numbers).all() or np.signbit(numbers[numbers == 0]).any():
        return None  # pandas reads "-0" as 0.0 but "-0.0" as -0.0: it decides
    return numbers


def numeric_feature(values: pd.Series, column: str) -> pd.Series:
    return to_float(values.astype(str), column)
