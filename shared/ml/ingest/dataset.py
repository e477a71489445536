"""Turn an uploaded CSV into train/test arrays, or say exactly what is wrong with it.

The web API imports this module to validate uploads at submit time, so it stays light: stdlib, numpy,
pandas and scikit-learn's model_selection only.

File rules (each broken rule raises DataError with a stable `code`):
- UTF-8 (a BOM is fine), comma-separated, a header line, at least one data row.
- A target column (`target`, or the one the request names: `Roles.target`); an optional `training_index`
  column (1 = train, 0 = test) and an optional id column (`Roles.id_column`), never features.
- Every other column is a numeric feature. True/False become 1/0.
- Missing values are REJECTED in the target, and in features unless the request imputes them or its model
  handles them (`Roles.missing_features`), with the column and the first line: the service never imputes
  silently, because an imputation choice changes the model and its explanations.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from shared.ml.errors import DataError
from shared.ml.ingest.bounds import too_many_columns, too_many_rows
from shared.ml.ingest.columns import (
    TARGET,
    TRAINING_INDEX,
    FeatureRows,
    LabelColumns,
    Roles,
    checked_strings,
    is_missing,
    numeric_feature,
    to_float,
    where_is,
)
from shared.ml.spec import JobSpec, Limits, Task

if TYPE_CHECKING:
    from shared.ml.ingest.canonical import Labels

TEST_FRACTION = 0.3
MIN_TRAIN_ROWS = 5
SplitSource = Literal["training_index", "seeded_split"]


@dataclass
class Dataset:
    """Train/test arrays ready for an estimator.

    For classification, `class_labels` holds the labels exactly as written in the file (one class per
    distinct text), sorted by numeric value when all are numbers, and the y arrays hold codes into it.
    """

    X_train: np.ndarray
    X_test: np.ndarray
    y_train: np.ndarray
    y_test: np.ndarray
    feature_names: list[str]
    class_labels: list[str] | None
    split_source: SplitSource
    test_rows: np.ndarray | None = None  # each test row's 0-based row number in the upload
    test_ids: list[object] | None = None  # each test row's id (`Roles.id_column`)
    #: The categorical features: position -> categories (the feature's values are their codes, NaN when
    #: missing); the submit checks know which features are categorical, not their categories.
    categories: dict[int, list[str]] = field(default_factory=dict)


def read_table(content: bytes, limits: Limits) -> pd.DataFrame:
    """Parse and validate a CSV upload.

    Returns a frame whose feature columns are float64 and whose `target` and `training_index` columns
    are still the stripped strings from the file (their meaning depends on the task). The frame's index
    holds each row's line number in the file, so later errors can point at a line.

    Clean files take pandas' C parser; anything unusual (a bad value, a blank line, a quoted newline,
    booleans) takes a line-by-line reader that finds the exact line and column to report.
    """
    text = _decode(content)
    if not text.strip():
        raise DataError("empty_file", "The file is empty: send a CSV with a header line and data rows.")
    _, header = _header_record(_records(text))
    _check_header(header, limits)
    fast = _clean_table(text, header, limits)
    return fast if fast is not None else _exact_table(text, limits)


def _clean_table(text: str, header: list[str], limits: Limits) -> pd.DataFrame | None:
    """The table via pandas' C parser when the file is clean, else None (the exact reader then explains)."""
    if max(map(len, text.splitlines())) > limits.max_cell_chars:
        return None
    dtypes = {name: (str if name in (TARGET, TRAINING_INDEX) else np.float64) for name in header}
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            compression=None,
            header=0,
            names=header,
            dtype=dtypes,
            skip_blank_lines=False,
            engine="c",
        )
    except (ValueError, pd.errors.ParserError):
        return None
    n_rows = len(frame)
    n_newlines = text.count("\n") - (0 if text.endswith("\n") else -1)
    if not 0 < n_rows <= limits.max_rows or n_newlines != n_rows + 1 or frame.isna().to_numpy().any():
        return None
    features = frame.drop(columns=[name for name in (TARGET, TRAINING_INDEX) if name in frame.columns])
    if not np.isfinite(features.to_numpy(dtype=np.float64)).all():
        return None
    frame.index = pd.Index(np.arange(2, n_rows + 2), name="line")
    for name in (TARGET, TRAINING_INDEX):
        if name in frame.columns:
            frame[name] = frame[name].str.strip()
            if is_missing(frame[name]).any():
                return None
    return frame


def _exact_table(text: str, limits: Limits) -> pd.DataFrame:
    header, rows, lines = _parse_rows(text, limits)
    frame = pd.DataFrame(rows, columns=header, index=pd.Index(lines, name="line"), dtype=object)
    for name in header:
        if name in (TARGET, TRAINING_INDEX):
            frame[name] = checked_strings(frame[name], name)
        else:
            frame[name] = numeric_feature(frame[name], name)
    return frame


def roles_of(spec: JobSpec) -> Roles:
    """The columns' roles a request gives (its target, its id column), and whether its model may see
    missing feature values."""
    return Roles(spec.target, spec.id_column, spec.model.handles_missing)


def with_test_features(result: dict[str, Any], source: bytes | Path | None, spec: JobSpec) -> dict[str, Any]:
    """The result with `X_test`: its test rows' feature values as uploaded, read again from the stored
    upload (`source`; None or empty: it is gone, and the result stays as it is), by feature name."""
    from shared.ml.ingest import canonical

    rows = result.get("test_rows")
    if not source or not isinstance(rows, list):
        return result
    return {**result, "X_test": canonical.rows_as_uploaded(source, roles_of(spec), rows)}


def load_source(
    source: bytes | Path, task: Task, seed: int, limits: Limits, roles: Roles | None = None
) -> Dataset:
    """The Dataset of a stored upload: its canonical Parquet file (a path, or its bytes) written by
    `shared.ml.ingest.upload`. No bytes (the upload is gone: its job was cancelled or deleted meanwhile)
    are an empty file."""
    from shared.ml.ingest import canonical  # pyarrow: loaded only where stored uploads are read

    if isinstance(source, bytes) and not source:
        raise DataError("empty_file", "The file is empty: send a CSV with a header line and data rows.")
    labels, features, categories = canonical.read_split_source(source, roles or Roles())
    return replace(split_dataset(labels, features, task, seed, limits), categories=categories)


def load_checks(
    source: Path | Labels, task: Task, seed: int, limits: Limits, roles: Roles | None = None
) -> Dataset:
    """`load_source` of a canonical file (or of the labels its writer kept) without its feature values,
    for the checks made at submit (labels, split, sizes, what the features hold): X_train and X_test have
    their shapes but are read-only zero-copy views of a single 0.0, so an API process never holds an
    upload's features."""
    from shared.ml.ingest import canonical

    labels = canonical.read_labels(source) if isinstance(source, Path) else source
    columns, names, categories = canonical.labels_split_source(labels, roles or Roles())
    width = len(names)
    placeholders = (names, lambda rows: np.broadcast_to(0.0, (len(rows), width)))
    return replace(split_dataset(columns, placeholders, task, seed, limits), categories=categories)


def dataset_from_table(
    frame: pd.DataFrame,
    task: Task,
    seed: int,
    limits: Limits,
    roles: Roles | None = None,
) -> Dataset:
    """Split a validated table (float64 features, the target and `training_index` as stripped text, each
    row's position in the upload as the index) into train and test arrays for `task`."""
    roles = roles or Roles()
    feature_names = roles.check(list(frame.columns))
    values = frame[feature_names].to_numpy(dtype=np.float64)
    return split_dataset(
        LabelColumns.of(frame, roles), (feature_names, values.__getitem__), task, seed, limits
    )


def split_dataset(
    labels: LabelColumns,
    features: tuple[list[str], FeatureRows],
    task: Task,
    seed: int,
    limits: Limits,
) -> Dataset:
    """Train and test arrays for `task`: the split is made on row numbers, and the feature values (names,
    rows -> values) are gathered straight into X_train and X_test (a canonical file's columns: no
    intermediate table-sized copies; see `load_checks` for placeholders)."""
    feature_names, feature_rows = features
    checked_strings(labels.target, str(labels.target.name or TARGET))  # a missing target names its row
    if task == "classification":
        y, class_labels = _encode_classes(labels.target, limits)
    else:
        y, class_labels = _regression_target(labels.target), None
    rows = np.arange(len(labels.target))
    if labels.training_index is not None:
        is_train = _training_mask(labels.training_index)
        split_source: SplitSource = "training_index"
        train_rows, test_rows, y_train, y_test = rows[is_train], rows[~is_train], y[is_train], y[~is_train]
    else:
        split_source = "seeded_split"
        train_rows, test_rows, y_train, y_test = _seeded_split(rows, y, task, seed)
    _check_training_rows(y_train, y_test, class_labels)
    X_train, X_test = feature_rows(train_rows), feature_rows(test_rows)
    test_ids = None if labels.ids is None else [labels.ids[row] for row in test_rows.tolist()]
    return Dataset(
        X_train, X_test, y_train, y_test, feature_names, class_labels, split_source, test_rows, test_ids
    )


def _decode(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = content[: err.start].count(b"\n") + 1
        raise DataError(
            "not_utf8",
            f"The file is not UTF-8 text (byte 0x{content[err.start]:02x} on line {line}): "
            "save it as UTF-8 CSV.",
        ) from None


def _parse_rows(text: str, limits: Limits) -> tuple[list[str], list[list[str]], list[int]]:
    """Split the text into a header and rows, checking shape, names and sizes line by line."""
    records = _records(text)
    header_line, header = _header_record(records)
    _check_header(header, limits)
    rows: list[list[str]] = []
    lines: list[int] = []
    for line, row in records:
        check_record(line, row, header, len(rows), limits)
        rows.append([cell.strip() for cell in row])
        lines.append(line)
    if not rows:
        raise DataError("no_rows", f"The file has a header (line {header_line}) but no data rows.")
    return header, rows, lines


def check_record(line: int, row: list[str], header: list[str], rows_before: int, limits: Limits) -> None:
    """The checks of one data record (line `line`, after `rows_before` rows): its width, its cells'
    lengths and the row limit."""
    width = len(header)
    if len(row) != width:
        raise DataError(
            "ragged_rows",
            f"Line {line} has {len(row)} fields but the header has {width}: every row needs one "
            "value per column.",
        )
    if max(map(len, row)) > limits.max_cell_chars:
        column = next(
            name for name, cell in zip(header, row, strict=True) if len(cell) > limits.max_cell_chars
        )
        raise DataError(
            "cell_too_long",
            f"Column '{column}' has a value longer than {limits.max_cell_chars} characters on line "
            f"{line} (limit max_cell_chars).",
            column=column,
        )
    if rows_before == limits.max_rows:
        raise too_many_rows(limits)


def _header_record(records: Iterator[tuple[int, list[str]]]) -> tuple[int, list[str]]:
    """The first non-blank record, as (line, stripped column names)."""
    first = next(records, None)
    if first is None:  # text, but only blank lines and empty fields (a file holding just `""`)
        raise DataError(
            "no_header",
            'The file has no header line: it holds only empty fields (such as "") or blank lines. '
            "Send a CSV with a header line and data rows.",
        )
    line, names = first
    return line, [name.strip() for name in names]


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Yield (line number, fields) for each non-blank record; the line is where the record starts."""
    return records_from(io.StringIO(text, newline=""))


def records_from(stream: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    """`_records` of a text stream (opened with newline=""), read as it is consumed."""
    reader = csv.reader(stream, strict=True)
    line = 1
    try:
        for row in reader:
            if (row and any(cell.strip() for cell in row)) or len(row) > 1:
                yield line, row
            line = reader.line_num + 1
    except csv.Error as err:
        raise DataError("bad_csv", f"The CSV cannot be parsed near line {reader.line_num}: {err}.") from None


def _check_header(header: list[str], limits: Limits) -> None:
    if len(header) > limits.max_columns:
        raise too_many_columns(len(header), limits)
    for position, name in enumerate(header, start=1):
        if not name:
            raise DataError(
                "empty_column_name",
                f"Column {position} has no name in the header (was the file saved with its row index?).",
            )
        if len(name) > limits.max_cell_chars:
            raise DataError(
                "cell_too_long",
                f"Column {position}'s name is longer than {limits.max_cell_chars} characters "
                "(limit max_cell_chars).",
            )
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(
                "duplicate_columns",
                f"Column name '{name}' appears more than once in the header.",
                column=name,
            )
        seen.add(name)


def _regression_target(values: pd.Series) -> np.ndarray:
    y = to_float(values, str(values.name or TARGET)).to_numpy()
    if np.all(y == y[0]):
        raise DataError(
            "constant_target",
            f"The target is constant ({y[0]:g}) on every row: nothing to learn.",
            column=str(values.name or TARGET),
        )
    return y


def _encode_classes(values: pd.Series, limits: Limits) -> tuple[np.ndarray, list[str]]:
    """Integer codes 0..k-1 and the labels exactly as written in the file (surrounding spaces stripped).

    Two rows share a class only when their label text is identical: `1`, `01` and `1.0` are three
    classes, and `9007199254740993` is not `9007199254740992` (no trip through float64). Labels sort by
    their exact numeric value when all are numbers (ties by text), otherwise by text.
    """
    unique, codes = np.unique(values.to_numpy(dtype=str), return_inverse=True)
    if len(unique) > limits.max_classes:  # before the exact sort: a float target has a label a row
        raise DataError(
            "too_many_classes",
            f"The target has {len(unique)} classes, more than the limit of {limits.max_classes} "
            "(max_classes): is this a regression target?",
            column=str(values.name or TARGET),
        )
    labels = sorted(unique.tolist(), key=_label_sort_key(unique.tolist()))
    if len(labels) < 2:
        raise DataError(
            "constant_target",
            f"The target has a single class ({labels[0]!r}): classification needs at least two.",
            column=str(values.name or TARGET),
        )
    position = {label: index for index, label in enumerate(labels)}
    sorted_codes = np.array([position[label] for label in unique.tolist()], dtype=np.int64)
    return sorted_codes[codes], labels


def _label_sort_key(labels: list[str]) -> Callable[[str], tuple[Decimal, str] | tuple[str]]:
    """Numeric order (exact, via Decimal) when every label is a finite number, text order otherwise."""
    found = {label: _exact_number(label) for label in labels}
    numbers = {label: number for label, number in found.items() if number is not None}
    if len(numbers) == len(found):
        return lambda label: (numbers[label], label)
    return lambda label: (label,)


def _exact_number(text: str) -> Decimal | None:
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    return number if number.is_finite() and "_" not in text else None


def _training_mask(values: pd.Series) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pa.array(values)  # pandas' strings are Arrow's
    ones = pc.equal(text, "1")
    if pc.all(pc.or_(ones, pc.equal(text, "0"))).as_py():  # the usual spelling: no number parsing
        return _train_and_test(ones.to_numpy(zero_copy_only=False))
    numbers = pd.to_numeric(values, errors="coerce")
    bad = ~numbers.isin([0, 1]).to_numpy()
    if bad.any():
        line = int(values.index[int(np.argmax(bad))])
        raise DataError(
            "bad_training_index",
            f"Column '{TRAINING_INDEX}' must hold only 1 (train) or 0 (test); found {values.loc[line]!r} "
            f"on {where_is(values, line)}.",
            column=TRAINING_INDEX,
        )
    return _train_and_test(numbers.to_numpy() == 1)


def _train_and_test(is_train: np.ndarray) -> np.ndarray:
    if not is_train.any():
        raise DataError(
            "empty_train",
            f"No row has {TRAINING_INDEX} = 1: there is nothing to train on.",
            column=TRAINING_INDEX,
        )
    if is_train.all():
        raise DataError(
            "empty_test",
            f"No row has {TRAINING_INDEX} = 0: there is nothing to test on.",
            column=TRAINING_INDEX,
        )
    return is_train


def _seeded_split(
    X: np.ndarray, y: np.ndarray, task: Task, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    stratify = y if task == "classification" else None
    if stratify is not None:
        counts = np.bincount(y)
        if counts.min() < 2:
            raise DataError(
                "too_few_rows",
                "A class has a single row; a stratified train/test split needs at least two rows per class "
                "(or add a training_index column).",
                column=TARGET,
            )
    # imported here: the API reads this module (`with_test_features`) and never splits, and scikit-learn
    # is a second of every API process's start
    from sklearn.model_selection import train_test_split

    try:
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=TEST_FRACTION, random_state=seed, stratify=stratify
        )
    except ValueError as err:
        raise DataError(
            "too_few_rows", f"Too few rows ({len(y)}) for a 30% test split: {err}", column=TARGET
        ) from None
    return X_train, X_test, y_train, y_test


def _check_training_rows(y_train: np.ndarray, y_test: np.ndarray, class_labels: list[str] | None) -> None:
    if len(y_train) < MIN_TRAIN_ROWS:
        raise DataError(
            "too_few_rows", f"Only {len(y_train)} training rows; at least {MIN_TRAIN_ROWS} are needed to fit."
        )
    if class_labels is None:
        return
    unseen = sorted(set(np.unique(y_test).tolist()) - set(np.unique(y_train).tolist()))
    if unseen:
        names = ", ".join(repr(class_labels[code]) for code in unseen)
        raise DataError(
            "class_missing_in_train",
            f"Class {names} appears in the test rows but never in the training rows: the model cannot "
            "predict it. Move some of its rows to training (training_index = 1).",
            column=TARGET,
        )
    if len(np.unique(y_train)) < 2:
        raise DataError(
            "constant_target",
            "The training rows hold a single class: classification needs at least two.",
            column=TARGET,
        )
