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
class Roles:
    """Which column of the upload is the target (`target=`), which one identifies its rows (`id_column=`,
    carried into the result, never a feature), and whether the features may hold missing values (the
    model handles them, or the request imputes them). `training_index` is always the split's column."""

    target: str = TARGET
    id_column: str | None = None
    missing_features: bool = False

    def not_features(self) -> set[str]:
        return {TRAINING_INDEX, self.target, *([self.id_column] if self.id_column else [])}

    def check(self, names: list[str]) -> list[str]:
        """The feature names among a table's column `names`; DataError when a named column is absent
        or nothing is left to learn from."""
        if self.target not in names:
            how = "" if self.target != TARGET else " (or name the target column with target=)"
            raise DataError(
                "missing_target",
                f"No column named '{self.target}' in the header ({preview(names)}); the file must be "
                f"comma-separated with a '{self.target}' column{how}.",
                column=self.target,
            )
        if self.id_column is not None and self.id_column not in names:
            raise DataError(
                "missing_id_column",
                f"No column named '{self.id_column}' (id_column) in the header ({preview(names)}).",
                column=self.id_column,
            )
        features = [name for name in names if name not in self.not_features()]
        if not features:
            raise DataError(
                "no_features",
                f"The file has no feature columns besides '{self.target}', the id column and "
                f"'{TRAINING_INDEX}'.",
            )
        return features


def preview(names: list[str], count: int = 5) -> str:
    shown = ", ".join(repr(name) for name in names[:count])
    return shown + (", ..." if len(names) > count else "")


@dataclass(frozen=True)
class LabelColumns:
    """What the split reads of a validated table besides its features: the target's and (when present)
    `training_index`'s text, the id column's values (when asked), indexed by each row's position in the
    upload ("line" or "row", the index's name), which the errors name."""

    target: pd.Series
    training_index: pd.Series | None
    ids: list[object] | None = None

    @classmethod
    def of(cls, frame: pd.DataFrame, roles: Roles | None = None) -> LabelColumns:
        roles = roles or Roles()
        training_index = frame[TRAINING_INDEX] if TRAINING_INDEX in frame.columns else None
        target = frame[roles.target]
        if pd.api.types.is_numeric_dtype(target.dtype):
            target = pd.Series(number_texts(target.to_numpy()), index=frame.index, name=roles.target)
        ids = json_values(frame[roles.id_column]) if roles.id_column else None
        return cls(target, training_index, ids)


def number_texts(values: np.ndarray) -> list[str]:
    """Numbers as a label's text: whole numbers without a fraction ("3", not "3.0"), others in their
    shortest exact form, a missing one (NaN) as ""."""
    return ["" if value != value else _number_text(float(value)) for value in values.tolist()]


def _number_text(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def json_values(values: pd.Series) -> list[object]:
    """A column's values for a JSON result: text as text (missing: None), whole numbers as ints, other
    numbers as floats (NaN: None)."""
    if pd.api.types.is_numeric_dtype(values.dtype):
        return [_json_number(float(value)) for value in values.tolist()]
    return [None if value is None or value != value else str(value) for value in values.tolist()]


def _json_number(value: float) -> object:
    if value != value:
        return None
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


FeatureRows = Callable[[np.ndarray], np.ndarray]
"""Given row numbers, those rows' feature values: a (len(rows), n_features) float64 array."""


def is_missing(values: pd.Series) -> pd.Series:
    return values.str.lower().isin(MISSING_TOKENS)


def where_is(values: pd.Series, position: int) -> str:
    """Where a value is: "line N" of a CSV, "row N" of a Parquet or Arrow file (the index's name)."""
    return f"{values.index.name or 'line'} {position}"


IMPUTE_HINT = (
    "pass impute=median or impute=most_frequent, or use a /gbdt endpoint with model_type lightgbm, "
    "xgboost or catboost (they handle missing values), or fill or drop those rows first."
)


def missing_value_error(column: str, where: str, value: object, *, feature: bool = False) -> DataError:
    what = (
        f"missing values are not imputed unless asked: {IMPUTE_HINT}"
        if feature
        else "fill or drop those rows first."
    )
    return DataError(
        "missing_value",
        f"Column '{column}' has a missing value on {where} (value {value!r}); {what}",
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


def feature_numbers(values: pd.Series, column: str) -> pd.Series:
    """A feature's text as float64, a missing value as NaN (the request decides later whether the model
    may see it); DataError naming the first value that is not a number, or infinite."""
    values = values.astype(str)
    parsed = plain_numbers(values)
    if parsed is not None:
        return pd.Series(parsed, index=values.index)
    missing = is_missing(values)
    numbers = to_float(values.where(~missing, "0"), column)
    return numbers.where(~missing.to_numpy(), np.nan)


def numeric_feature(values: pd.Series, column: str) -> pd.Series:
    return to_float(values.astype(str), column)
