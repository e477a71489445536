"""The canonical Parquet file every upload is converted to, whatever format it came in.

One column per header column, in header order: features as float64, `target` and `training_index` as the
stripped text of the upload (their meaning depends on the task). A last column named "" (no header name
can be empty) holds each row's position in the upload, so errors found later still name it: its line in
a CSV, or its row number (from 1) in a Parquet or Arrow file, as the file's metadata says.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from shared.ml.errors import DataError
from shared.ml.ingest.columns import (
    TARGET,
    TRAINING_INDEX,
    FeatureRows,
    LabelColumns,
    checked_strings,
    numeric_feature,
)

POSITION = ""
POSITION_KEY = b"fitexplain.position"
TEXT_COLUMNS = ("target", "training_index")
# Problems found per column, reported in this order (the order of `columns.to_float`'s checks).
COLUMN_CHECKS = {"missing_value": 0, "non_numeric": 1, "infinite_value": 2, "cell_too_long": 3}
Position = Literal["line", "row"]


def schema(header: list[str], position: Position) -> pa.Schema:
    fields = [pa.field(name, pa.string() if name in TEXT_COLUMNS else pa.float64()) for name in header]
    return pa.schema([*fields, pa.field(POSITION, pa.int64())], metadata={POSITION_KEY: position.encode()})


@dataclass(frozen=True)
class Labels:
    """What the submit checks read of an upload: its text columns and row positions (a table with the
    canonical schema's metadata), and its feature names."""

    table: pa.Table
    feature_names: list[str]

    @property
    def n_rows(self) -> int:
        return int(self.table.num_rows)

    def columns(self) -> LabelColumns:
        return label_columns(self.table)


class CanonicalWriter:
    """Writes the canonical file batch by batch (one row group per batch), keeping its `labels()`: the
    submit checks then need not read the file back."""

    def __init__(self, path: Path, header: list[str], position: Position) -> None:
        self.schema = schema(header, position)
        self.header = header
        self.rows = 0
        self._label_names = [name for name in self.schema.names if name in TEXT_COLUMNS or name == POSITION]
        self._labels: list[pa.Table] = []  # each batch's label columns (their schema keeps the metadata)
        # Dictionary encoding only for the text columns: on float columns it costs 4x the write time.
        # No column statistics: nothing filters on them, and they cost a tenth of the write.
        text = [name for name in header if name in TEXT_COLUMNS]
        self._writer = pq.ParquetWriter(
            path, self.schema, compression="snappy", use_dictionary=text, write_statistics=False
        )

    def write(self, columns: dict[str, pa.Array | pa.ChunkedArray], positions: np.ndarray) -> None:
        arrays = [columns[name] for name in self.header] + [pa.array(positions, pa.int64())]
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        self._writer.write_table(table)
        self._labels.append(table.select(self._label_names))
        self.rows += len(positions)

    def labels(self) -> Labels:
        """The text columns and positions of the rows written so far."""
        table = pa.concat_tables(self._labels) if self._labels else self.schema.empty_table()
        features = [name for name in self.header if name not in TEXT_COLUMNS]
        return Labels(table.select(self._label_names), features)

    def close(self) -> None:
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
    return Labels(table, [name for name in names if name not in TEXT_COLUMNS and name != POSITION])


def read_split_source(source: Path | bytes) -> tuple[LabelColumns, tuple[list[str], FeatureRows]]:
    """The canonical file for `dataset.split_dataset`: its text columns as `read_table` returns them,
    and (feature names, rows -> feature values) reading the features straight from the Parquet columns,
    so only X_train and X_test are allocated at the table's size (a DataFrame of the features, then its
    2-D copy, then the split would be three more copies of it)."""
    table = _read(source)
    names = [name for name in table.column_names if name not in TEXT_COLUMNS and name != POSITION]

    def feature_rows(rows: np.ndarray) -> np.ndarray:
        values = np.empty((len(rows), len(names)))
        for position, name in enumerate(names):
            values[:, position] = table.column(name).to_numpy()[rows]
        return values

    return label_columns(table), (names, feature_rows)


def read_table(source: Path | bytes, columns: list[str] | None = None) -> pd.DataFrame:
    """The canonical file as `shared.ml.ingest.dataset.read_table` returns a CSV: float64 features, text
    `target` and `training_index`, and the rows' positions as the index (named "line" or "row")."""
    return _frame(_read(source, columns))


def _read(source: Path | bytes, columns: list[str] | None = None) -> pa.Table:
    # ParquetFile, not pq.read_table: the dataset layer behind read_table costs 0.3 ms a call, a tenth of
    # a small job's load, and is no faster on a million rows.
    with pq.ParquetFile(source if isinstance(source, Path) else io.BytesIO(source)) as file:
        return file.read(columns=columns)


def label_columns(table: pa.Table) -> LabelColumns:
    """The text columns of (a selection of) a canonical file, as `read_table` returns them. Built as two
    Series rather than a DataFrame: on a small upload, pandas' frame construction cost more than the
    checks that read it."""
    index = _positions(table)

    def text(name: str) -> pd.Series:
        return pd.Series(table.column(name).to_pandas().array, index=index, name=name, copy=False)

    training_index = text(TRAINING_INDEX) if TRAINING_INDEX in table.column_names else None
    return LabelColumns(text(TARGET), training_index)


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


class ColumnProblems:
    """Each column's first problem of each kind, kept across batches; reported in header order."""

    def __init__(self) -> None:
        self.found: dict[str, DataError] = {}

    def __bool__(self) -> bool:
        return bool(self.found)

    def convert(self, values: pd.Series, column: str) -> pa.Array | None:
        """The column as the canonical file holds it, or None (and the problem kept)."""
        try:
            if column in TEXT_COLUMNS:
                return pa.array(checked_strings(values, column).to_numpy(dtype=object), pa.string())
            return pa.array(numeric_feature(values, column).to_numpy(), pa.float64())
        except DataError as err:
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
