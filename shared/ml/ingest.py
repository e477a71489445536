"""Read an upload once, streaming, into the canonical Parquet file (`shared.ml.canonical`).

Accepted: CSV (UTF-8), gzip-compressed CSV, Parquet, Arrow IPC (file or stream). The format comes from
the file's magic bytes, then from the client's file name or content type. Memory stays bounded by one
batch, whatever the file's size.

The rules and errors are those of `shared.ml.data.read_table`, for the same content. A CSV takes
pyarrow's streaming reader first; at the first thing it does not vouch for (a parse or conversion
error, a missing or non-finite value, a long line, blank lines or quoted newlines that shift line
numbers) the file is read again by the exact reader, which streams too and names the line and column
of the problem. Errors come in today's order: not UTF-8 anywhere, then the header, then the first
broken row (shape, cell length, row limit), then per column in header order its first missing,
non-numeric or infinite value.
"""

from __future__ import annotations

import codecs
import gzip
import io
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from shared.ml import data
from shared.ml.canonical import TEXT_COLUMNS, CanonicalWriter, Position
from shared.ml.data import MISSING_TOKENS, DataError
from shared.ml.spec import Limits

Format = Literal["csv", "csv.gz", "parquet", "arrow", "arrow-stream"]
ACCEPTED = (
    "CSV (UTF-8, text/csv), gzip-compressed CSV (.csv.gz, application/gzip), Parquet (.parquet, "
    "application/vnd.apache.parquet) or Arrow IPC (.arrow, application/vnd.apache.arrow.file or "
    "application/vnd.apache.arrow.stream)"
)
CSV_BLOCK_BYTES = 4 << 20  # pyarrow's CSV block: one batch of about this much text
EXACT_BATCH_ROWS = 20_000
COLUMNAR_BATCH_ROWS = 65_536
HEADER_MAX_BYTES = 64 << 20
MAGICS: tuple[tuple[bytes, Format], ...] = (
    (b"PAR1", "parquet"),
    (b"ARROW1", "arrow"),
    (b"\xff\xff\xff\xff", "arrow-stream"),
    (b"\x1f\x8b", "csv.gz"),
)
DECLARED: tuple[tuple[tuple[str, ...], tuple[str, ...], Format], ...] = (
    (("parquet",), (".parquet", ".pq"), "parquet"),
    (("arrow.file", "x-arrow"), (".arrow", ".feather", ".ipc"), "arrow"),
    (("arrow.stream",), (".arrows",), "arrow-stream"),
)
OTHER_BINARIES = {
    b"PK\x03\x04": "a ZIP archive (an Excel .xlsx file?)",
    b"\xd0\xcf\x11\xe0": "an Excel .xls file",
    b"BZh": "a bzip2 archive",
    b"\xfd7zXZ": "an xz archive",
    b"7z\xbc\xaf": "a 7-Zip archive",
}
# Problems found per column, reported in this order (the order of `data._to_float`'s checks).
COLUMN_CHECKS = {"missing_value": 0, "non_numeric": 1, "infinite_value": 2, "cell_too_long": 3}


@dataclass(frozen=True)
class Ingested:
    """What was read: the canonical Parquet file and the upload's shape."""

    path: Path
    format: Format
    n_rows: int
    feature_names: list[str]
    size_bytes: int  # of the canonical file

    @property
    def n_columns(self) -> int:
        return len(self.feature_names)


def detect_format(path: Path, filename: str = "", content_type: str = "") -> Format:
    """The upload's format: magic bytes first, then what the client declared; CSV otherwise."""
    with open(path, "rb") as file:
        head = file.read(8)
    for magic, found in MAGICS:
        if head.startswith(magic):
            return found
    for magic, what in OTHER_BINARIES.items():
        if head.startswith(magic):
            raise DataError("unsupported_format", f"The file is {what}; send {ACCEPTED}.")
    declared = _declared_format(filename, content_type)
    if declared is not None:
        raise DataError(
            f"bad_{declared.split('-')[0]}",
            f"The file was sent as {declared} but does not start as one (no {declared} magic bytes): "
            f"send {ACCEPTED}.",
        )
    return "csv"


def _declared_format(filename: str, content_type: str) -> Format | None:
    name, kind = filename.lower(), content_type.lower().split(";")[0].strip()
    for types, suffixes, found in DECLARED:
        if any(part in kind for part in types) or name.endswith(suffixes):
            return found
    return None


def ingest(path: Path, dest: Path, limits: Limits, *, filename: str = "", content_type: str = "") -> Ingested:
    """Validate the upload at `path` in one streaming pass and write its canonical Parquet file to
    `dest`; raise DataError naming the problem (then `dest` may hold a partial file: remove it)."""
    found = detect_format(path, filename, content_type)
    if found in ("csv", "csv.gz"):
        header, n_rows = _ingest_csv(partial(_open_text, path, found), dest, limits)
    else:
        header, n_rows = _ingest_columnar(path, found, dest, limits)
    features = [name for name in header if name not in TEXT_COLUMNS]
    return Ingested(dest, found, n_rows, features, dest.stat().st_size)


def _open_text(path: Path, found: Format) -> BinaryIO:
    return gzip.open(path, "rb") if found == "csv.gz" else open(path, "rb")  # type: ignore[return-value]


# --- CSV --------------------------------------------------------------------------------------------


class _Unusual(Exception):
    """The fast reader met something it does not vouch for: the exact reader decides."""


Opener = Callable[[], BinaryIO]


def _ingest_csv(open_raw: Opener, dest: Path, limits: Limits) -> tuple[list[str], int]:
    try:
        with open_raw() as raw:
            return _fast_csv(raw, dest, limits)
    except (_Unusual, DataError, pa.ArrowException, UnicodeDecodeError, OSError, EOFError, zlib.error):
        pass
    try:
        with open_raw() as raw:
            blank = _check_utf8(raw)
        with open_raw() as raw:
            return _exact_csv(raw, dest, limits, blank)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        message = f"The gzip-compressed file cannot be read ({err}): is it complete?"
        raise DataError("bad_gzip", message) from None


class _LineScanner(io.RawIOBase):
    """The data after the header, as pyarrow reads it, counting lines and spotting long lines."""

    def __init__(self, raw: BinaryIO, max_cell_chars: int) -> None:
        self.raw = raw
        self.max_cell_chars = max_cell_chars
        self.newlines = 0
        self.seen_bytes = 0
        self.last_byte = b"\n"
        self.long_line = False
        self._carry = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self.raw.read(len(buffer))
        if chunk:
            self._scan(chunk)
        buffer[: len(chunk)] = chunk
        return len(chunk)

    def _scan(self, chunk: bytes) -> None:
        self.newlines += chunk.count(b"\n")
        self.seen_bytes += len(chunk)
        self.last_byte = chunk[-1:]
        lines = (self._carry + chunk).split(b"\n")
        self._carry = lines.pop()
        if len(self._carry) > self.max_cell_chars:
            self._check(self._carry)
        if lines and max(map(len, lines)) > self.max_cell_chars:
            for line in lines:
                self._check(line)

    def _check(self, line: bytes) -> None:
        # A cell is at most its comma-separated piece (in bytes, which count at least its characters).
        if len(line) > self.max_cell_chars and max(map(len, line.split(b","))) > self.max_cell_chars:
            self.long_line = True

    @property
    def lines(self) -> int:
        """Physical lines read (a last line without a newline counts)."""
        return self.newlines + (0 if self.last_byte == b"\n" or not self.seen_bytes else 1)


def _fast_csv(raw: BinaryIO, dest: Path, limits: Limits) -> tuple[list[str], int]:
    header_lines, header = _read_header(raw)
    data._check_header(header, limits)
    scanner = _LineScanner(raw, limits.max_cell_chars)
    names = [f"c{index}" for index in range(len(header))]
    reader = pacsv.open_csv(
        pa.PythonFile(scanner, mode="r"),
        read_options=pacsv.ReadOptions(column_names=names, block_size=CSV_BLOCK_BYTES),
        parse_options=pacsv.ParseOptions(newlines_in_values=True),
        convert_options=pacsv.ConvertOptions(
            column_types={
                code: pa.string() if name in TEXT_COLUMNS else pa.float64()
                for code, name in zip(names, header, strict=True)
            },
            strings_can_be_null=False,
        ),
    )
    missing = pa.array(sorted(MISSING_TOKENS))
    first_line = header_lines + 1
    with CanonicalWriter(dest, header, "line") as writer:
        for batch in reader:
            if writer.rows + batch.num_rows > limits.max_rows or scanner.long_line:
                raise _Unusual
            columns: dict[str, pa.Array] = {}
            for name, column in zip(header, batch.columns, strict=True):
                if column.null_count:
                    raise _Unusual
                if name in TEXT_COLUMNS:
                    if len(column) and pc.max(pc.utf8_length(column)).as_py() > limits.max_cell_chars:
                        raise _Unusual
                    column = pc.utf8_trim_whitespace(column)
                    if pc.any(pc.is_in(pc.utf8_lower(column), missing)).as_py():
                        raise _Unusual
                elif not pc.all(pc.is_finite(column)).as_py():
                    raise _Unusual
                columns[name] = column
            start = first_line + writer.rows
            writer.write(columns, np.arange(start, start + batch.num_rows))
        if writer.rows == 0 or scanner.long_line or scanner.lines != writer.rows:
            raise _Unusual  # no rows, or blank lines / quoted newlines: the positions are not lines
        return header, writer.rows


def _read_header(raw: BinaryIO) -> tuple[int, list[str]]:
    """(lines up to the header's end, stripped names): the first non-blank record, as `_records` finds it."""
    lines: list[bytes] = []
    size = 0
    while size < HEADER_MAX_BYTES:
        line = raw.readline(HEADER_MAX_BYTES)
        if not line:
            raise _Unusual  # only blank lines: the exact reader says which error
        lines.append(line)
        size += len(line)
        if not line.endswith(b"\n"):
            continue
        text = b"".join(lines).decode("utf-8-sig")
        try:
            records = list(data.records_from(io.StringIO(text, newline="")))
        except DataError:
            continue  # a quoted field goes on over the next line
        if len(records) > 1 or "\r" in text.replace("\r\n", ""):
            raise _Unusual  # lines ended by a lone carriage return: the exact reader handles them
        if records:
            return text.count("\n"), [name.strip() for name in records[0][1]]
    raise _Unusual


def _check_utf8(raw: BinaryIO) -> bool:
    """Raise not_utf8 naming the first bad byte's line, as `data._decode` does; True if the text is blank."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    blank = True
    number = 0
    for number, line in enumerate(raw, start=1):
        try:
            text = decoder.decode(line)
        except UnicodeDecodeError as err:
            bad = line[err.start] if err.start < len(line) else line[-1]
            raise DataError(
                "not_utf8",
                f"The file is not UTF-8 text (byte 0x{bad:02x} on line {number}): save it as UTF-8 CSV.",
            ) from None
        blank = blank and not text.strip()
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        raise DataError(
            "not_utf8",
            f"The file is not UTF-8 text (it ends inside a character, line {number}): save it as UTF-8 CSV.",
        ) from None
    return blank


def _exact_csv(raw: BinaryIO, dest: Path, limits: Limits, blank: bool) -> tuple[list[str], int]:
    """`data._exact_table` streamed: rows checked line by line, values converted batch by batch."""
    if blank:
        raise DataError("empty_file", "The file is empty: send a CSV with a header line and data rows.")
    records = data.records_from(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
    header_line, header = data._header_record(records)
    data._check_header(header, limits)
    problems = _ColumnProblems()
    width = len(header)
    rows: list[list[str]] = []
    lines: list[int] = []
    n_rows = 0
    with CanonicalWriter(dest, header, "line") as writer:

        def flush() -> None:
            frame = pd.DataFrame(rows, columns=header, index=pd.Index(lines, name="line"), dtype=object)
            columns = {name: problems.convert(frame[name], name) for name in header}
            if not problems:
                writer.write(columns, np.asarray(lines))  # type: ignore[arg-type]
            rows.clear()
            lines.clear()

        for line, row in records:
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
            if n_rows == limits.max_rows:
                raise DataError(
                    "too_many_rows",
                    f"The file has more than {limits.max_rows} data rows (limit max_rows): sample it first.",
                )
            rows.append([cell.strip() for cell in row])
            lines.append(line)
            n_rows += 1
            if len(rows) == EXACT_BATCH_ROWS:
                flush()
        if rows:
            flush()
    if n_rows == 0:
        raise DataError("no_rows", f"The file has a header (line {header_line}) but no data rows.")
    problems.raise_first(header)
    return header, n_rows


class _ColumnProblems:
    """Each column's first problem of each kind, kept across batches; reported in header order."""

    def __init__(self) -> None:
        self.found: dict[str, DataError] = {}

    def __bool__(self) -> bool:
        return bool(self.found)

    def convert(self, values: pd.Series, column: str) -> pa.Array | None:
        """The column as the canonical file holds it, or None (and the problem kept)."""
        try:
            if column in TEXT_COLUMNS:
                return pa.array(data._checked_strings(values, column).to_numpy(dtype=object), pa.string())
            return pa.array(data._numeric_feature(values, column).to_numpy(), pa.float64())
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


# --- Parquet and Arrow ------------------------------------------------------------------------------


def _ingest_columnar(path: Path, found: Format, dest: Path, limits: Limits) -> tuple[list[str], int]:
    names, batches = _open_columnar(path, found)
    header = [name.strip() for name in names]
    data._check_header(header, limits)
    return header, _write_columnar(header, _unbroken(batches, found), dest, limits)


def _unreadable(found: Format, err: Exception) -> DataError:
    what = "Parquet" if found == "parquet" else "Arrow IPC"
    return DataError(f"bad_{found.split('-')[0]}", f"The {what} file cannot be read ({err}): is it complete?")


def _unbroken(batches: Iterator[pa.RecordBatch], found: Format) -> Iterator[pa.RecordBatch]:
    """The batches; a file that breaks off while they are read is a DataError."""
    try:
        yield from batches
    except (pa.ArrowException, OSError) as err:
        raise _unreadable(found, err) from None


def _open_columnar(path: Path, found: Format) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    try:
        return _open_reader(path, found)
    except (pa.ArrowException, OSError) as err:
        raise _unreadable(found, err) from None


def _open_reader(path: Path, found: Format) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    if found == "parquet":
        parquet = pq.ParquetFile(path)
        return parquet.schema_arrow.names, parquet.iter_batches(batch_size=COLUMNAR_BATCH_ROWS)
    if found == "arrow":
        reader = ipc.open_file(pa.memory_map(str(path)))
        return reader.schema.names, (reader.get_batch(i) for i in range(reader.num_record_batches))
    stream = ipc.open_stream(pa.memory_map(str(path)))
    return stream.schema.names, iter(stream)


def _write_columnar(header: list[str], batches: Iterator[pa.RecordBatch], dest: Path, limits: Limits) -> int:
    problems = _ColumnProblems()
    position: Position = "row"
    with CanonicalWriter(dest, header, position) as writer:
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
                writer.write(columns, rows.to_numpy())  # type: ignore[arg-type]
            n_rows += batch.num_rows
    if n_rows == 0:
        raise DataError("no_rows", "The file has columns but no data rows.")
    problems.raise_first(header)
    return n_rows


def _columnar_values(
    column: pa.Array, name: str, rows: pd.Index, limits: Limits, problems: _ColumnProblems
) -> pa.Array | None:
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.dictionary_decode(), kind.value_type
    if column.null_count:
        at = int(rows[pc.index(column.is_null(), True).as_py()])
        problems.add(name, data.missing_value_error(name, f"row {at}", None))
        return None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
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
    if name in TEXT_COLUMNS:
        values = column.to_pandas()
        text = values.astype(str).to_numpy(dtype=object)
        return problems.convert(pd.Series(text, index=rows), name)
    floats = pc.cast(column, pa.float64())
    nan = pc.is_nan(floats)
    if pc.any(nan).as_py():
        at = int(rows[pc.index(nan, True).as_py()])
        problems.add(name, data.missing_value_error(name, f"row {at}", float("nan")))
        return None
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
