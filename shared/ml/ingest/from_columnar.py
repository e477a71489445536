"""Parquet and Arrow IPC uploads into the canonical Parquet file, batch by batch.

The rules are those of a CSV (`shared.ml.ingest.dataset`): features must be numbers (integers of any
width, floats, decimals, booleans, or text that reads as a number), `target` and `training_index` are kept
as text, missing values are refused. Errors name the column and the row (from 1).

Before any value is converted, what the file declares is checked (`shared.ml.ingest.bounds`): its
columns, their names and types, then its rows and the bytes they decode to, and the memory a worker would
need for them; for Parquet from the footer, for Arrow IPC (file or stream) from each message's metadata
as the messages come (`shared.ml.ingest.ipc_messages`). Batches are then converted a slice at a time.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from shared.ml.errors import DataError
from shared.ml.ingest import dataset
from shared.ml.ingest.bounds import (
    DecodedBudget,
    ReadCounters,
    ReadLimitExceeded,
    check_rows_memory,
    too_many_rows,
)
from shared.ml.ingest.canonical import (
    TEXT_COLUMNS,
    CanonicalWriter,
    ColumnProblems,
    Labels,
    Position,
    TextColumns,
)
from shared.ml.ingest.columns import missing_value_error
from shared.ml.ingest.ipc_messages import BadMessage, Declared, declared_messages
from shared.ml.spec import Limits

COLUMNAR_BATCH_ROWS = 65_536
PARQUET_BUFFER_BYTES = 1 << 20
BATCH_CELLS = 1 << 22
"""Values converted at once (rows x columns): a slice of a wide table has fewer rows."""


def ingest_columnar(path: Path, found: str, dest: Path, limits: Limits, counters: ReadCounters) -> Labels:
    schema, batches = _open_columnar(path, found, limits, counters)
    header = [name.strip() for name in schema.names]
    expansion = Expansion(DecodedBudget(limits, counters), path.stat().st_size)
    try:
        return _write_columnar(header, _unbroken(batches, found), dest, limits, counters, expansion)
    except TextColumns as text:  # written again, with those columns as text: counted once
        counters.rows = counters.decoded_bytes = 0
        _, batches = _open_columnar(path, found, limits, counters)
        expansion = Expansion(DecodedBudget(limits, counters), path.stat().st_size)
        return _write_columnar(
            header, _unbroken(batches, found), dest, limits, counters, expansion, text.not_numbers
        )


def _unreadable(found: str, err: Exception) -> DataError:
    what = "Parquet" if found == "parquet" else "Arrow IPC"
    return DataError(f"bad_{found.split('-')[0]}", f"The {what} file cannot be read ({err}): is it complete?")


def _unbroken(batches: Iterator[pa.RecordBatch], found: str) -> Iterator[pa.RecordBatch]:
    """The batches; a file that breaks off while they are read is a DataError."""
    try:
        yield from batches
    except (pa.ArrowException, OSError, BadMessage) as err:
        raise _unreadable(found, err) from None


def _open_columnar(
    path: Path, found: str, limits: Limits, counters: ReadCounters
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    try:
        if found == "parquet":
            return _open_parquet(path, limits, counters)
        return _open_ipc(path, found, limits, counters)
    except (pa.ArrowException, OSError, BadMessage) as err:
        raise _unreadable(found, err) from None


def check_schema(schema: pa.Schema, limits: Limits) -> list[str]:
    """The header's checks (`dataset._check_header`: count, names, `target`), then each column's type:
    a type that is neither numbers nor text is refused naming the column. Returns the header."""
    header = [name.strip() for name in schema.names]
    dataset._check_header(header, limits)
    for name, field in zip(header, schema, strict=True):
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        if not _readable(kind):
            raise DataError(
                "unsupported_type",
                f"Column '{name}' holds {kind} values, which are not read: convert it to numbers (or, "
                "for target and training_index, text) first.",
                column=name,
            )
    return header


def _readable(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_decimal(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_null(kind)
        or _is_text(kind)
    )


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind))


def _check_declared(header: list[str], rows: int, limits: Limits) -> None:
    if rows > limits.max_rows:
        raise too_many_rows(limits)
    features = sum(name not in TEXT_COLUMNS for name in header)
    check_rows_memory(rows, features, limits.worker_max_memory_mb)


def _open_parquet(
    path: Path, limits: Limits, counters: ReadCounters
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """The footer checked (columns, types, rows, decoded size, memory) before any page is read."""
    # Read page by page through a small buffer: a row group is not loaded whole (a file written as one
    # row group of a million rows would cost the API its whole decoded size at once).
    parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES)
    schema = parquet.schema_arrow
    header = check_schema(schema, limits)
    metadata = parquet.metadata
    _check_declared(header, metadata.num_rows, limits)
    budget = DecodedBudget(limits, ReadCounters())
    budget.add(_parquet_decoded_bytes(schema, metadata), path.stat().st_size, declared=True)
    counters.sent_bytes += path.stat().st_size
    batches = parquet.iter_batches(batch_size=_batch_rows(len(header)))
    return schema, _counted(batches, DecodedBudget(limits, counters), path.stat().st_size)


def _parquet_decoded_bytes(schema: pa.Schema, metadata: pq.FileMetaData) -> int:
    """What the footer says the columns decode to: rows x width for fixed-width types, the pages'
    uncompressed size for text (whose dictionary pages may decode to more: the batches are counted)."""
    bits = 0
    for index, field in enumerate(schema):
        kind = field.type.value_type if pa.types.is_dictionary(field.type) else field.type
        try:
            bits += metadata.num_rows * max(1, kind.bit_width)
        except ValueError:  # not fixed-width
            bits += 8 * sum(
                metadata.row_group(group).column(index).total_uncompressed_size
                for group in range(metadata.num_row_groups)
            )
    return bits // 8


def _counted(batches: Iterator[pa.RecordBatch], budget: DecodedBudget, sent: int) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        budget.add(batch.nbytes, sent)
        yield batch


def _open_ipc(
    path: Path, found: str, limits: Limits, counters: ReadCounters
) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    if found == "arrow":
        reader = ipc.open_file(pa.memory_map(str(path)))
        schema, count = reader.schema, reader.num_record_batches
        batches: Iterator[pa.RecordBatch] = (reader.get_batch(i) for i in range(count))
    else:
        stream = ipc.open_stream(pa.memory_map(str(path)))
        schema, count, batches = stream.schema, None, iter(stream)
    header = check_schema(schema, limits)
    declared = declared_messages(str(path), found, count)
    return schema, _checked_ipc(header, declared, batches, limits, counters)


def _checked_ipc(
    header: list[str],
    declared: Iterator[Declared],
    batches: Iterator[pa.RecordBatch],
    limits: Limits,
    counters: ReadCounters,
) -> Iterator[pa.RecordBatch]:
    """Each record batch once its message (and the dictionaries before it) passed the checks: rows
    so far, the bytes they decode to against the bytes read so far, and the memory they need."""
    budget = DecodedBudget(limits, counters)
    rows = 0
    sent = 0
    for message in declared:
        counters.sent_bytes += message.end - sent
        sent = message.end
        budget.add(message.decoded_bytes, sent)
        if message.batch:
            rows += message.rows
            _check_declared(header, rows, limits)
            batch = next(batches, None)
            if batch is None:
                return
            yield batch
    if next(batches, None) is not None:
        raise BadMessage("a record batch after the end of the messages")


def _batch_rows(n_columns: int) -> int:
    return max(1, min(COLUMNAR_BATCH_ROWS, BATCH_CELLS // max(1, n_columns)))


def _slices(batches: Iterator[pa.RecordBatch], n_columns: int) -> Iterator[pa.RecordBatch]:
    """Each batch in slices of at most `_batch_rows` rows (zero-copy)."""
    size = _batch_rows(n_columns)
    for batch in batches:
        for start in range(0, batch.num_rows, size):
            yield batch.slice(start, size)


@dataclass(frozen=True)
class Expansion:
    """What dictionary columns spread over their rows decode to, counted before they are decoded,
    against the decoded-bytes limits and the file's size: a dictionary of one long text indexed by
    a million rows is a few kilobytes."""

    budget: DecodedBudget
    file_bytes: int

    def add(self, decoded: int) -> None:
        self.budget.add(decoded, self.file_bytes)


def _write_columnar(
    header: list[str],
    batches: Iterator[pa.RecordBatch],
    dest: Path,
    limits: Limits,
    counters: ReadCounters,
    expansion: Expansion,
    not_numbers: dict[str, str] | None = None,
) -> Labels:
    text_columns = frozenset(not_numbers or {})
    problems = ColumnProblems(text_columns)
    position: Position = "row"
    with CanonicalWriter(dest, header, position, text_columns, not_numbers) as writer:
        n_rows = 0
        for batch in _slices(batches, len(header)):
            if n_rows + batch.num_rows > limits.max_rows:
                raise too_many_rows(limits)
            counters.rows += batch.num_rows
            rows = pd.Index(np.arange(n_rows + 1, n_rows + batch.num_rows + 1), name=position)
            columns = {
                name: _columnar_values(column, name, rows, limits, problems, expansion)
                for name, column in zip(header, batch.columns, strict=True)
            }
            if not problems:
                writer.write(columns, rows.to_numpy())
            n_rows += batch.num_rows
    if n_rows == 0:
        raise DataError("no_rows", "The file has columns but no data rows.")
    problems.raise_first(header)
    return writer.labels()


def _cell_too_long(name: str, at: int, limits: Limits) -> DataError:
    return DataError(
        "cell_too_long",
        f"Column '{name}' has a value longer than {limits.max_cell_chars} characters on row {at} "
        "(limit max_cell_chars).",
        column=name,
    )


def _decoded(column: pa.Array, name: str, rows: pd.Index, limits: Limits, expansion: Expansion) -> pa.Array:
    """A dictionary column's values, its text checked for length and counted before it is spread over
    the rows."""
    dictionary = column.dictionary
    if _is_text(dictionary.type) and len(dictionary):
        lengths = pc.binary_length(dictionary.cast(pa.string()))
        too_long = pc.greater(pc.utf8_length(dictionary.cast(pa.string())), limits.max_cell_chars)
        if pc.any(too_long).as_py():
            used = pc.take(too_long, column.indices)
            if pc.any(used).as_py():
                raise _cell_too_long(name, int(rows[pc.index(used, True).as_py()]), limits)
        expansion.add(int(pc.sum(pc.take(lengths, column.indices)).as_py() or 0))
    return column.dictionary_decode()


def _columnar_values(
    column: pa.Array,
    name: str,
    rows: pd.Index,
    limits: Limits,
    problems: ColumnProblems,
    expansion: Expansion,
) -> pa.Array | None:
    try:
        if pa.types.is_dictionary(column.type):
            column = _decoded(column, name, rows, limits, expansion)
        if pa.types.is_string_view(column.type):
            column = column.cast(pa.string())
    except ReadLimitExceeded:
        raise
    except DataError as err:
        problems.add(name, err)
        return None
    kind = column.type
    if column.null_count and name in TEXT_COLUMNS:
        at = int(rows[pc.index(column.is_null(), True).as_py()])
        problems.add(name, missing_value_error(name, f"row {at}", None))
        return None
    if _is_text(kind):
        column = column.fill_null("")  # a missing feature value: the request decides
        lengths = pc.utf8_length(column)
        if len(column) and pc.max(lengths).as_py() > limits.max_cell_chars:
            at = int(rows[pc.index(pc.greater(lengths, limits.max_cell_chars), True).as_py()])
            problems.add(name, _cell_too_long(name, at, limits))
            return None
        text = pd.Series(column.to_pandas().to_numpy(dtype=object), index=rows).astype(str)
        return problems.convert(text.str.strip(), name)
    if name in TEXT_COLUMNS or name in problems.text_columns:
        if name in TEXT_COLUMNS and _has_nan(column, name, rows, problems):
            return None
        text = column.to_pandas().astype(str).to_numpy(dtype=object)
        return problems.convert(pd.Series(text, index=rows), name)
    # Integers beyond 2**53 (and uint64's) round to the nearest float, as a CSV's text of them does; a
    # missing value is NaN: the request decides (impute=, or a model that takes it).
    floats = pc.fill_null(pc.cast(column, pa.float64(), safe=False), float("nan"))
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


def _has_nan(column: pa.Array, name: str, rows: pd.Index, problems: ColumnProblems) -> bool:
    """Whether a target or training_index column holds NaN (the problem kept): those need a value."""
    if not (pa.types.is_floating(column.type) or pa.types.is_decimal(column.type)):
        return False
    nan = pc.is_nan(pc.cast(column, pa.float64(), safe=False))
    if not pc.any(nan).as_py():
        return False
    at = int(rows[pc.index(nan, True).as_py()])
    problems.add(name, missing_value_error(name, f"row {at}", float("nan")))
    return True
