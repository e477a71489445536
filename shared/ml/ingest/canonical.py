"""The canonical Parquet file every upload is converted to, whatever format it came in.

One column per header column, in header order: a column of numbers as float64 (a missing value is NaN),
any other column as its stripped text (a missing value is null), and `target` and `training_index` always
as text (their meaning depends on the task). Which column is the target, an id or a feature is decided
later, by the request (`JobSpec.target`, `id_column`): the same file serves every request. A last column
named "" (no header name can be empty) holds each row's position in the upload, so errors found later
still name it: its line in a CSV, or its row number (from 1) in a Parquet or Arrow file, as the file's
metadata says. The metadata also keeps each column's facts (`ColumnFacts`): its first missing value, and
why a text column is not numbers, so the submit checks need not read the values again.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shared.ml.errors import DataError
from shared.ml.ingest.columns import (
    TARGET,
    TRAINING_INDEX,
    FeatureRows,
    LabelColumns,
    Roles,
    checked_strings,
    feature_numbers,
    is_missing,
    json_values,
    missing_value_error,
    number_texts,
    to_float,
)

POSITION = ""
POSITION_KEY = b"fitexplain.position"
FACTS_KEY = b"fitexplain.columns"
TEXT_COLUMNS = ("target", "training_index")
# Problems found per column, reported in this order (the order of `columns.to_float`'s checks).
COLUMN_CHECKS = {"missing_value": 0, "non_numeric": 1, "infinite_value": 2, "cell_too_long": 3}
Position = Literal["line", "row"]


def is_text(name: str, text_columns: frozenset[str] = frozenset()) -> bool:
    return name in TEXT_COLUMNS or name in text_columns


def schema(header: list[str], position: Position, text_columns: frozenset[str] = frozenset()) -> pa.Schema:
    fields = [pa.field(name, pa.string() if is_text(name, text_columns) else pa.float64()) for name in header]
    return pa.schema([*fields, pa.field(POSITION, pa.int64())], metadata={POSITION_KEY: position.encode()})


@dataclass
class ColumnFacts:
    """What the submit checks need to know of a column without reading its values: whether it holds
    text, why (its first value that is not a number: the error a feature of numbers would give), and
    where its first missing value is."""

    text: bool = False
    not_a_number: str | None = None  # the message naming the first non-numeric value and its position
    missing_at: str | None = None  # "line 3" / "row 3"
    missing_value: str | None = None
    n_missing: int = 0
    n_numbers: int = 0  # of a text column: values that read as numbers

    def mostly_numbers(self, n_rows: int) -> bool:
        """Whether a text column is numbers with a few bad values (a typo, not a category)."""
        return self.text and self.not_a_number is not None and 2 * self.n_numbers > n_rows - self.n_missing


@dataclass(frozen=True)
class Labels:
    """What the submit checks read of an upload: its `target` and `training_index` text and row positions
    (a table with the canonical schema's metadata), its other columns' names and facts, and where the
    file is (a target or id column named by the request is read from it)."""

    table: pa.Table
    feature_names: list[str]  # every column but `target`, `training_index` and the positions
    facts: dict[str, ColumnFacts] = field(default_factory=dict)
    path: Path | None = None

    @property
    def n_rows(self) -> int:
        return int(self.table.num_rows)

    def columns(self) -> LabelColumns:
        return label_columns(self.table)

    def column(self, name: str) -> pa.ChunkedArray:
        """A column of the upload: from the kept table, else read from the file."""
        if name in self.table.column_names:
            return self.table.column(name)
        if self.path is None:
            raise KeyError(name)
        return _read(self.path, [name]).column(name)


class CanonicalWriter:
    """Writes the canonical file batch by batch (one row group per batch), keeping its `labels()`: the
    submit checks then need not read the file back."""

    def __init__(
        self,
        path: Path,
        header: list[str],
        position: Position,
        text_columns: frozenset[str] = frozenset(),
        not_numbers: dict[str, str] | None = None,
    ) -> None:
        self.path = path
        self.schema = schema(header, position, text_columns)
        self.header = header
        self.position: Position = position
        self.rows = 0
        self._label_names = [name for name in self.schema.names if name in TEXT_COLUMNS or name == POSITION]
        self._labels: list[pa.Table] = []  # each batch's label columns (their schema keeps the metadata)
        self.facts = {
            name: ColumnFacts(text=True, not_a_number=(not_numbers or {}).get(name))
            if is_text(name, text_columns)
            else ColumnFacts()
            for name in header
        }
        # Dictionary encoding only for the text columns: on float columns it costs 4x the write time.
        # No column statistics: nothing filters on them, and they cost a tenth of the write.
        text = [name for name in header if is_text(name, text_columns)]
        self._writer = pq.ParquetWriter(
            path, self.schema, compression="snappy", use_dictionary=text, write_statistics=False
        )

    def write(self, columns: dict[str, pa.Array | pa.ChunkedArray], positions: np.ndarray) -> None:
        arrays = [columns[name] for name in self.header] + [pa.array(positions, pa.int64())]
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        self._writer.write_table(table)
        self._labels.append(table.select(self._label_names))
        self._note_missing(table, positions)
        self.rows += len(positions)

    def _note_missing(self, table: pa.Table, positions: np.ndarray) -> None:
        for name in self.header:
            column = table.column(name)
            missing = column.is_null() if self.facts[name].text else pc.is_nan(column)
            count = pc.sum(missing).as_py() or 0
            facts = self.facts[name]
            if count and facts.missing_at is None:
                at = pc.index(missing, True).as_py()
                facts.missing_at = f"{self.position} {int(positions[at])}"
                value = column[at].as_py()
                facts.missing_value = "" if value is None else str(value)
            facts.n_missing += count
            if facts.not_a_number is not None:  # a text feature: is it numbers with a typo?
                facts.n_numbers += count_numbers(column)

    def labels(self) -> Labels:
        """The text columns and positions of the rows written so far, and every column's facts."""
        table = pa.concat_tables(self._labels) if self._labels else self.schema.empty_table()
        features = [name for name in self.header if name not in TEXT_COLUMNS]
        return Labels(table.select(self._label_names), features, dict(self.facts), self.path)

    def close(self) -> None:
        facts = {name: asdict(facts) for name, facts in self.facts.items()}
        self._writer.add_key_value_metadata({FACTS_KEY: json.dumps(facts).encode()})
        self._writer.close()

    def __enter__(self) -> CanonicalWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def read_labels(path: Path) -> Labels:
    """The text columns and positions of a canonical file, and its feature names."""
    with pq.ParquetFile(path) as file:
        names = file.schema_arrow.names
        table = file.read(columns=[name for name in names if name in TEXT_COLUMNS or name == POSITION])
        stored = json.loads((file.metadata.metadata or {}).get(FACTS_KEY, b"{}"))
    facts = {name: ColumnFacts(**values) for name, values in stored.items()}
    return Labels(
        table, [name for name in names if name not in TEXT_COLUMNS and name != POSITION], facts, path
    )


def read_split_source(
    source: Path | bytes, roles: Roles
) -> tuple[LabelColumns, tuple[list[str], FeatureRows], dict[int, list[str]]]:
    """The canonical file for `dataset.split_dataset`: its label columns (the request's `roles`) as
    `read_table` returns them, (feature names, rows -> feature values) reading the features straight
    from the Parquet columns, so only X_train and X_test are allocated at the table's size (a DataFrame of
    the features, then its 2-D copy, then the split would be three more copies of it), and the categorical
    features (their positions, each with its categories: the values are their codes, NaN when missing)."""
    table = _read(source)
    names = roles.check([name for name in table.column_names if name != POSITION])
    index = _positions(table)
    facts = {name: _facts(table.column(name), name, index) for name in names}
    check_features(names, facts, roles, table.num_rows)
    columns: list[np.ndarray] = []
    categories: dict[int, list[str]] = {}
    for position, name in enumerate(names):
        values, levels = _feature(table.column(name), name, index)
        columns.append(values)
        if levels is not None:
            categories[position] = levels

    def feature_rows(rows: np.ndarray) -> np.ndarray:
        values = np.empty((len(rows), len(names)))
        for position, column in enumerate(columns):
            values[:, position] = column[rows]
        return values

    return label_columns(table, roles, table.column), (names, feature_rows), categories


def rows_as_uploaded(source: Path | bytes, roles: Roles, rows: list[int]) -> dict[str, list[object]]:
    """The feature values of the upload's `rows` (0-based, e.g. a result's `test_rows`) as uploaded: text
    (a category) as text, numbers as floats, a missing value as None; by feature, in the features' order."""
    with pq.ParquetFile(source if isinstance(source, Path) else io.BytesIO(source)) as file:
        names = roles.check([name for name in file.schema_arrow.names if name != POSITION])
        taken = file.read(columns=names).take(pa.array(rows, pa.int64()))
    values: dict[str, list[object]] = {}
    for name in names:
        column = taken.column(name)
        if pa.types.is_floating(column.type):
            column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
        values[name] = column.to_pylist()
    return values


def labels_split_source(labels: Labels, roles: Roles) -> tuple[LabelColumns, list[str], dict[int, list[str]]]:
    """`read_split_source` of the labels a writer kept (or `read_labels` read): the label columns, the
    feature names and the categorical ones' positions (their categories unread), the features checked by
    their facts, without their values."""
    names = roles.check([*labels.feature_names, *(n for n in TEXT_COLUMNS if n in labels.table.column_names)])
    facts = dict(labels.facts)
    if TARGET in names:  # `target` as a feature (another column is the target): is it numbers?
        index = _positions(labels.table)
        facts[TARGET] = _facts(labels.column(TARGET), TARGET, index)
    check_features(names, facts, roles, labels.n_rows)
    categorical: dict[int, list[str]] = {
        position: [] for position, name in enumerate(names) if _categorical(facts.get(name) or ColumnFacts())
    }
    return label_columns(labels.table, roles, labels.column), names, categorical


def _categorical(facts: ColumnFacts) -> bool:
    """A text column is categorical, unless it holds numbers (`target` as a feature: always text)."""
    return facts.text and facts.not_a_number is not None


def check_features(names: list[str], facts: dict[str, ColumnFacts], roles: Roles, n_rows: int) -> None:
    """DataError for the first feature (in header order) with a missing value the request neither
    imputes nor has a model that handles, or with a few values that are not numbers among numbers (a
    text column is categorical); the message says what would work."""
    for name in names:
        found = facts.get(name) or ColumnFacts()
        if found.n_missing and not roles.missing_features:
            raise missing_value_error(name, found.missing_at or "", found.missing_value, feature=True)
        if found.mostly_numbers(n_rows):
            raise DataError(
                "non_numeric",
                f"{found.not_a_number} Most of its values are numbers: fix that value, or pass "
                f"id_column={name} to carry the column into the result instead of using it.",
                column=name,
            )


NUMBER = r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$"


def count_numbers(column: pa.Array | pa.ChunkedArray) -> int:
    """How many of a text column's values read as plain decimal numbers."""
    return int(pc.sum(pc.match_substring_regex(column, NUMBER)).as_py() or 0)


def _facts(column: pa.ChunkedArray, name: str, index: pd.Index) -> ColumnFacts:
    """A column's facts from its values (`CanonicalWriter` keeps them while writing)."""
    text = pa.types.is_string(column.type)
    missing = column.is_null() if text else pc.is_nan(column)
    found = ColumnFacts(text=text, n_missing=int(pc.sum(missing).as_py() or 0))
    found.n_numbers = count_numbers(column) if text else 0
    if found.n_missing:
        at = pc.index(missing, True).as_py()
        found.missing_at = f"{index.name or 'line'} {int(index[at])}"
        found.missing_value = "" if column[at].as_py() is None else str(column[at].as_py())
    if text:
        values = pd.Series(column.to_pandas().to_numpy(dtype=object), index=index).fillna("")
        try:
            to_float(values[~is_missing(values)], name)
        except DataError as err:
            found.not_a_number = err.message
    return found


def _feature(column: pa.ChunkedArray, name: str, index: pd.Index) -> tuple[np.ndarray, list[str] | None]:
    """A feature's values as float64, and its categories when it is categorical (text that is not numbers;
    the values are then the codes of its categories in text order, NaN for a missing value)."""
    if not pa.types.is_string(column.type):
        return np.asarray(column.to_numpy(), dtype=np.float64), None
    values = pd.Series(column.to_pandas().to_numpy(dtype=object), index=index).fillna("")
    try:
        return np.asarray(feature_numbers(values, name).to_numpy(), dtype=np.float64), None
    except DataError:
        pass
    levels = sorted(str(level) for level in pc.unique(column.drop_null()).to_pylist())
    codes = pc.index_in(column, value_set=pa.array(levels, pa.string()))
    return np.asarray(pc.fill_null(pc.cast(codes, pa.float64()), np.nan).to_numpy()), levels


def label_columns(
    table: pa.Table, roles: Roles | None = None, column: Callable[[str], pa.ChunkedArray] | None = None
) -> LabelColumns:
    """The label columns of (a selection of) a canonical file, as `read_table` returns them; `column`
    reads the columns that are not in `table` (a target or id column named by the request). Built as
    Series rather than a DataFrame: on a small upload, pandas' frame construction cost more than the
    checks that read it."""
    roles = roles or Roles()
    read = column or table.column
    index = _positions(table)

    def text(name: str) -> pd.Series:
        values = read(name)
        if pa.types.is_string(values.type):
            array = values.fill_null("").to_pandas().array
            return pd.Series(array, index=index, name=name, copy=False)
        return pd.Series(number_texts(values.to_numpy()), index=index, name=name, dtype=object)

    training_index = text(TRAINING_INDEX) if TRAINING_INDEX in table.column_names else None
    ids = None
    if roles.id_column is not None:
        ids = json_values(pd.Series(_ids(read(roles.id_column)), index=index))
    return LabelColumns(text(roles.target), training_index, ids)


def _ids(values: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_string(values.type):
        return np.asarray(values.to_pandas().to_numpy(dtype=object))
    return np.asarray(values.to_numpy())


def read_table(source: Path | bytes, columns: list[str] | None = None) -> pd.DataFrame:
    """The canonical file as `shared.ml.ingest.dataset.read_table` returns a CSV: float64 features, text
    `target` and `training_index`, and the rows' positions as the index (named "line" or "row")."""
    return _frame(_read(source, columns))


def _read(source: Path | bytes, columns: list[str] | None = None) -> pa.Table:
    # ParquetFile, not pq.read_table: the dataset layer behind read_table costs 0.3 ms a call, a tenth of
    # a small job's load, and is no faster on a million rows.
    with pq.ParquetFile(source if isinstance(source, Path) else io.BytesIO(source)) as file:
        return file.read(columns=columns)


def _positions(table: pa.Table) -> pd.Index:
    position = (table.schema.metadata or {}).get(POSITION_KEY, b"line").decode()
    index: pd.Index = pd.Index(table.column(POSITION).to_numpy(), name=position)
    return index


def _frame(table: pa.Table) -> pd.DataFrame:
    names = [name for name in table.column_names if name != POSITION]
    frame = pd.DataFrame(
        {
            name: table.column(name).to_pandas() if name in TEXT_COLUMNS else table.column(name).to_numpy()
            for name in names
        }
    )
    frame.index = _positions(table)
    for name in TEXT_COLUMNS:
        if name in frame.columns:
            frame[name] = frame[name].astype(str)
    return frame


class TextColumns(Exception):
    """Columns that turned out to hold text: the reader writes the file again with them as text."""

    def __init__(self, not_numbers: dict[str, str]) -> None:
        super().__init__(sorted(not_numbers))
        self.not_numbers = not_numbers


class ColumnProblems:
    """Each column's first problem of each kind, kept across batches; reported in header order. A column
    of features that is not numbers is no problem: it is text (`text_columns`, known from a pass before),
    or found now (`not_numbers`: `raise_first` then asks for another pass with it as text)."""

    def __init__(self, text_columns: frozenset[str] = frozenset()) -> None:
        self.found: dict[str, DataError] = {}
        self.text_columns = text_columns
        self.not_numbers: dict[str, str] = {}

    def __bool__(self) -> bool:
        return bool(self.found) or bool(self.not_numbers)

    def convert(self, values: pd.Series, column: str) -> pa.Array | None:
        """The column as the canonical file holds it, or None (and the problem kept)."""
        try:
            if column in TEXT_COLUMNS:
                return pa.array(checked_strings(values, column).to_numpy(dtype=object), pa.string())
            if column in self.text_columns:
                text = values.astype(str)
                # A mask, not where(..., None): pandas' str dtype writes a missing value back as NaN.
                missing = is_missing(text).to_numpy(dtype=bool)
                return pa.array(text.to_numpy(dtype=object), pa.string(), mask=missing, from_pandas=True)
            return pa.array(feature_numbers(values, column).to_numpy(), pa.float64())
        except DataError as err:
            if err.code == "non_numeric":
                self.not_numbers.setdefault(column, err.message)
            else:
                self.add(column, err)
            return None

    def add(self, column: str, err: DataError) -> None:
        kept = self.found.get(column)
        if kept is None or COLUMN_CHECKS.get(err.code, 9) < COLUMN_CHECKS.get(kept.code, 9):
            self.found[column] = err

    def raise_first(self, header: list[str]) -> None:
        for column in header:
            if column in self.found:
                raise self.found[column]
        if self.not_numbers:
            raise TextColumns(self.not_numbers)
