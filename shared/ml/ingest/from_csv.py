"""CSV uploads (plain or gzip-compressed) into the canonical Parquet file, streaming.

pyarrow's streaming reader goes first; at the first thing it does not vouch for (a parse or conversion
error, a missing or non-finite value, a long line, blank lines or quoted newlines that shift line
numbers) the file is read again by the exact reader, `shared.ml.ingest.dataset`'s rules streamed line by line,
which names the line and column of the problem. Errors come in `shared.ml.ingest.dataset.read_table`'s order:
not UTF-8 anywhere, then the header, then the first broken row (shape, cell length, row limit), then
per column in header order its first missing, non-numeric or infinite value. A limit on the reading
itself (`shared.ml.ingest.bounds`: decoded bytes, line length, rows, worker memory) ends it in whichever
pass meets it, before any of these: nothing past it is read.
"""

from __future__ import annotations

import codecs
import gzip
import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from isal import isal_zlib

from shared.ml.errors import DataError
from shared.ml.ingest import dataset
from shared.ml.ingest.bounds import (
    ReadCounters,
    ReadLimitExceeded,
    check_rows_memory,
    too_many_columns,
    too_many_rows,
)
from shared.ml.ingest.canonical import TEXT_COLUMNS, CanonicalWriter, ColumnProblems, Labels, TextColumns
from shared.ml.ingest.columns import MISSING_TOKENS
from shared.ml.ingest.dataset import check_record
from shared.ml.spec import Limits

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

# pyarrow's CSV block. Its reader reads ahead several blocks: its memory scales with this size, and
# parsing small blocks is no slower (they stay in cache). Blocks are checked and written a few at a
# time (`BLOCKS_PER_ROW_GROUP`), so Parquet row groups and per-batch costs stay those of 4 MB of text.
CSV_BLOCK_BYTES = 1 << 20
BLOCKS_PER_ROW_GROUP = 4
EXACT_BATCH_ROWS = 20_000
UTF8_BLOCK_BYTES = 1 << 20
# A corrupt gzip stream, from zlib or from ISA-L (igzip; its stub declares `error` as an instance).
GZIP_ERRORS = (zlib.error, cast("type[Exception]", isal_zlib.error))
NEWLINE = ord("\n")


class _Unusual(Exception):
    """The fast reader met something it does not vouch for: the exact reader decides."""


Opener = Callable[[], BinaryIO]


def ingest_csv(open_raw: Opener, dest: Path, limits: Limits, counters: ReadCounters) -> Labels:
    """`open_raw` opens one pass over the text, bounded (`shared.ml.ingest.bounds`): a limit met in
    any pass ends the reading."""
    try:
        with open_raw() as raw:
            return _fast_csv(raw, dest, limits, counters)
    except ReadLimitExceeded:
        raise
    except (_Unusual, DataError, pa.ArrowException, UnicodeDecodeError, OSError, EOFError, *GZIP_ERRORS):
        if counters.exceeded is not None:  # met while pyarrow read: its error says something else
            raise counters.exceeded from None
    try:
        with open_raw() as raw:
            blank = _check_utf8(raw)
        try:
            with open_raw() as raw:
                return _exact_csv(raw, dest, limits, blank, counters)
        except TextColumns as found:  # written again, with those columns as text
            counters.rows = 0
            with open_raw() as raw:
                return _exact_csv(raw, dest, limits, blank, counters, found.not_numbers)
    except (EOFError, gzip.BadGzipFile, *GZIP_ERRORS) as err:
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

    def read(self, size: int = -1) -> bytes:
        chunk = self.raw.read(size)
        if chunk:
            self._scan(chunk)
        return chunk

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer)
        chunk = self.read(len(view))
        view[: len(chunk)] = chunk
        return len(chunk)

    def _scan(self, chunk: bytes) -> None:
        """Count the newlines; spot a line longer than a cell may be with numpy (this runs on every
        byte), and only then look at its cells."""
        self.seen_bytes += len(chunk)
        self.last_byte = chunk[-1:]
        ends = np.flatnonzero(np.frombuffer(chunk, np.uint8) == NEWLINE)
        self.newlines += len(ends)
        if self.long_line:
            return
        if len(ends):
            longest = max(len(self._carry) + int(ends[0]), int(np.diff(ends).max(initial=1)) - 1)
            tail = len(chunk) - int(ends[-1]) - 1
        else:
            longest, tail = 0, len(self._carry) + len(chunk)
        if longest > self.max_cell_chars or tail > self.max_cell_chars:
            self._scan_lines(chunk)
        else:
            self._carry = chunk[int(ends[-1]) + 1 :] if len(ends) else self._carry + chunk

    def _scan_lines(self, chunk: bytes) -> None:
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


def _fast_csv(raw: BinaryIO, dest: Path, limits: Limits, counters: ReadCounters) -> Labels:
    header_lines, header = _read_header(raw, limits)
    dataset._check_header(header, limits)
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
    n_features = sum(name not in TEXT_COLUMNS for name in header)
    with CanonicalWriter(dest, header, "line") as writer:
        for group in _row_groups(reader):
            counters.rows += group.num_rows
            if writer.rows + group.num_rows > limits.max_rows:
                raise too_many_rows(limits)
            check_rows_memory(writer.rows + group.num_rows, n_features, limits.worker_max_memory_mb)
            if scanner.long_line:
                raise _Unusual
            columns: dict[str, pa.ChunkedArray] = {}
            for name, column in zip(header, group.columns, strict=True):
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
            writer.write(columns, np.arange(start, start + group.num_rows))
        if writer.rows == 0 or scanner.long_line or scanner.lines != writer.rows:
            raise _Unusual  # no rows, or blank lines / quoted newlines: the positions are not lines
        return writer.labels()


def _row_groups(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.Table]:
    iterator = iter(batches)
    while group := list(islice(iterator, BLOCKS_PER_ROW_GROUP)):
        yield pa.Table.from_batches(group)


def _read_header(raw: BinaryIO, limits: Limits) -> tuple[int, list[str]]:
    """(lines up to the header's end, stripped names): the first non-blank record, as `_records` finds it.
    A record ends at a newline after an even number of quotes; it is parsed once, when it has ended."""
    lines: list[bytes] = []
    size = quotes = 0
    while True:
        line = raw.readline()
        if not line:
            raise _Unusual  # only blank lines, or a quote left open: the exact reader says which error
        lines.append(line)
        size += len(line)
        quotes += line.count(b'"')
        if size > limits.max_line_bytes:
            raise _Unusual  # a header over many lines: the exact reader names the problem
        if not line.endswith(b"\n") or quotes % 2:
            continue
        if not quotes and line.count(b",") >= limits.max_columns:  # counted before it is parsed
            raise too_many_columns(line.count(b",") + 1, limits)
        text = b"".join(lines).decode("utf-8-sig")
        try:
            records = list(dataset.records_from(io.StringIO(text, newline="")))
        except DataError:
            raise _Unusual from None
        if len(records) > 1 or "\r" in text.replace("\r\n", ""):
            raise _Unusual  # lines ended by a lone carriage return: the exact reader handles them
        if records:
            return text.count("\n"), [name.strip() for name in records[0][1]]


def _check_utf8(raw: BinaryIO) -> bool:
    """Raise not_utf8 naming the first bad byte's line, as `dataset._decode` does; True if the text is
    blank. Decoded a block at a time (a line at a time costs a Python step per line)."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    blank = True
    lines = 0  # newlines before the block
    ends_line = True
    while block := raw.read(UTF8_BLOCK_BYTES):
        try:
            text = decoder.decode(block)
        except UnicodeDecodeError as err:
            data = err.object
            line = lines + data.count(b"\n", 0, err.start) + 1
            raise DataError(
                "not_utf8",
                f"The file is not UTF-8 text (byte 0x{data[err.start]:02x} on line {line}): save it as "
                "UTF-8 CSV.",
            ) from None
        blank = blank and not text.strip()
        lines += block.count(b"\n")
        ends_line = block.endswith(b"\n")
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        number = lines + (0 if ends_line else 1)
        raise DataError(
            "not_utf8",
            f"The file is not UTF-8 text (it ends inside a character, line {number}): save it as UTF-8 CSV.",
        ) from None
    return blank


def _exact_csv(
    raw: BinaryIO,
    dest: Path,
    limits: Limits,
    blank: bool,
    counters: ReadCounters,
    not_numbers: dict[str, str] | None = None,
) -> Labels:
    """`dataset._exact_table` streamed: rows checked line by line, values converted batch by batch; the
    columns of `not_numbers` (found by a pass before) are kept as text."""
    if blank:
        raise DataError("empty_file", "The file is empty: send a CSV with a header line and data rows.")
    records = dataset.records_from(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""))
    header_line, header = dataset._header_record(records)
    dataset._check_header(header, limits)
    text_columns = frozenset(not_numbers or {})
    problems = ColumnProblems(text_columns)
    rows: list[list[str]] = []
    lines: list[int] = []
    n_rows = 0
    n_features = sum(name not in TEXT_COLUMNS for name in header)
    with CanonicalWriter(dest, header, "line", text_columns, not_numbers) as writer:

        def flush() -> None:
            counters.rows += len(rows)
            check_rows_memory(n_rows, n_features, limits.worker_max_memory_mb)
            frame = pd.DataFrame(rows, columns=header, index=pd.Index(lines, name="line"), dtype=object)
            columns = {name: problems.convert(frame[name], name) for name in header}
            if not problems:
                writer.write(columns, np.asarray(lines))
            rows.clear()
            lines.clear()

        for line, row in records:
            check_record(line, row, header, n_rows, limits)
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
    return writer.labels()
