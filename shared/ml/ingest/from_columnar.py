"""Parquet and Arrow IPC uploads into the canonical Parquet file, batch by batch.

The rules are those of a CSV (`shared.ml.ingest.dataset`): features must be numbers (integers, floats,
decimals, booleans, or text that reads as a number), `target` and `training_index` are kept as text, missing
values are refused. Errors name the row (from 1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from shared.ml.errors import DataError
from shared.ml.ingest import dataset
from shared.ml.ingest.canonical import (
    TEXT_COLUMNS,
    CanonicalWriter,
    ColumnProblems,
    Labels,
    Position,
    TextColumns,
)
from shared.ml.ingest.columns import missing_value_error
from shared.ml.spec import Limits

COLUMNAR_BATCH_ROWS = 65_536


def ingest_columnar(path: Path, found: str, dest: Path, limits: Limits) -> Labels:
    names, batches = _open_columnar(path, found)
    header = [name.strip() for name in names]
    dataset._check_header(header, limits)
    try:
        return _write_columnar(header, _unbroken(batches, found), dest, limits)
    except TextColumns as text:  # written again, with those columns as text
        _, batches = _open_columnar(path, found)
        return _write_columnar(header, _unbroken(batches, found), dest, limits, text.not_numbers)


def _unreadable(found: str, err: Exception) -> DataError:
    what = "Parquet" if found == "parquet" else "Arrow IPC"
    return DataError(f"bad_{found.split('-')[0]}", f"The {what} file cannot be read ({err}): is it complete?")


def _unbroken(batches: Iterator[pa.RecordBatch], found: str) -> Iterator[pa.RecordBatch]:
    """The batches; a file that breaks off while they are read is a DataError."""
    try:
        yield from batches
    except (pa.ArrowException, OSError) as err:
        raise _unreadable(found, err) from None


def _open_columnar(path: Path, found: str) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    try:
        return _open_reader(path, found)
    except (pa.ArrowException, OSError) as err:
        raise _unreadable(found, err) from None


def _open_reader(path: Path, found: str) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    if found == "parquet":
        parquet = pq.ParquetFile(path)
        return parquet.schema_arrow.names, parquet.iter_batches(batch_size=COLUMNAR_BATCH_ROWS)
    if found == "arrow":
        reader = ipc.open_file(pa.memory_map(str(path)))
        return reader.schema.names, (reader.get_batch(i) for i in range(reader.num_record_batches))
    stream = ipc.open_stream(pa.memory_map(str(path)))
    return stream.schema.names, iter(stream)


def _write_columnar(
    header: list[str],
    batches: Iterator[pa.RecordBatch],
    dest: Path,
    limits: Limits,
    not_numbers: dict[str, str] | None = None,
) -> Labels:
    text_columns = frozenset(not_numbers or {})
    problems = ColumnProblems(text_columns)
    position: Position = "row"
    with CanonicalWriter(dest, header, position, text_columns, not_numbers) as writer:
        n_rows = 0
        for batch in batches:
            if n_rows + batch.num_rows > limits.max_rows:
                raise DataError(
                    "too_many_rows",
                    f"The file has more than {limits.max_rows} data rows (limit max_rows): sample it first.",
                )
            rows = pd.Index(np.arange(n_rows + 1, n_rows + batch.num_rows + 1), name=position)
            columns = {
                name: _columnar_values(column, name, rows, limits, problems)
                for name, column in zip(header, batch.columns, strict=True)
            }
            if not problems:
                writer.write(columns, rows.to_numpy())
            n_rows += batch.num_rows
    if n_rows == 0:
        raise DataError("no_rows", "The file has columns but no data rows.")
    problems.raise_first(header)
    return writer.labels()


def _columnar_values(
    column: pa.Array, name: str, rows: pd.Index, limits: Limits, problems: ColumnProblems
) -> pa.Array | None:
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.dictionary_decode(), kind.value_type
    if column.null_count and name in TEXT_COLUMNS:
        at = int(rows[pc.index(column.is_null(), True).as_py()])
        problems.add(name, missing_value_error(name, f"row {at}", None))
        return None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        column = column.fill_null("")  # a missing feature value: the request decides
        lengths = pc.utf8_length(column)
        if len(column) and pc.max(lengths).as_py() > limits.max_cell_chars:
            at = int(rows[pc.index(pc.greater(lengths, limits.max_cell_chars), True).as_py()])
            problems.add(
                name,
                DataError(
                    "cell_too_long",
                    f"Column '{name}' has a value longer than {limits.max_cell_chars} characters on row "
                    f"{at} (limit max_cell_chars).",
                    column=name,
                ),
            )
            return None
        text = pd.Series(column.to_pandas().to_numpy(dtype=object), index=rows).astype(str)
        return problems.convert(text.str.strip(), name)
    numeric = pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)
    if not (numeric or pa.types.is_boolean(kind)):
        problems.add(
            name,
            DataError("non_numeric", f"Column '{name}' holds {kind} values, not numbers.", column=name),
        )
        return None
    if name in TEXT_COLUMNS or name in problems.text_columns:
        values = column.to_pandas()
        text = values.astype(str).to_numpy(dtype=object)
        return problems.convert(pd.Series(text, index=rows), name)
    floats = pc.fill_null(pc.cast(column, pa.float64()), float("nan"))  # missing: NaN, the request decides
    infinite = pc.is_inf(floats)
    if pc.any(infinite).as_py():
        index = pc.index(infinite, True).as_py()
        problems.add(
            name,
            DataError(
                "infinite_value",
                f"Column '{name}' has an infinite value {floats[index].as_py()!r} on row {int(rows[index])}.",
                column=name,
            ),
        )
        return None
    return floats
