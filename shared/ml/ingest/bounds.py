"""What reading an upload may cost, checked on what has actually been read, while it is read.

A small upload can decode to far more than it is: a gzip stream of zeros, a Parquet file whose
run-length-encoded columns declare millions of rows, an Arrow IPC stream of compressed batches. Every
pass over an upload counts what it sent and what it decoded to (`ReadCounters`) and stops at the first
limit met, naming it (`limit_error`): decoded bytes, absolute (`max_decompressed_bytes`) and relative to
the bytes read so far (`max_decompression_ratio`, beyond the first `RATIO_FREE_BYTES`), a CSV line's
length (`max_line_bytes`), rows, columns, and the memory a worker would need (`worker_max_memory_mb`).
Nothing past the limit is read: a problem further on is not looked for.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from shared.ml.errors import DataError, LimitExceeded
from shared.ml.spec import Limits

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

RATIO_FREE_BYTES = 1 << 20
"""Decoded bytes allowed whatever the ratio: a small file may compress very well."""

SENT_READ_BYTES = 16 << 10
"""Bytes a decompressor gets at a time: what it has consumed stays close to what it has decoded."""

TOO_LARGE = 413  # the status of a refusal for the upload's decoded size


@dataclass
class ReadCounters:
    """The work spent on one upload, over all passes: bytes read as sent, the bytes they decoded to
    (decompressed CSV text, or Arrow buffers), and rows parsed. A refusal's error body shows them."""

    sent_bytes: int = 0
    decoded_bytes: int = 0
    rows: int = 0
    # The limit a reader met, kept: a library that reads through it (pyarrow's CSV reader, from its own
    # thread) may hand the error back as one of its own.
    exceeded: ReadLimitExceeded | None = field(default=None, repr=False, compare=False)

    def as_dict(self) -> dict[str, int]:
        return {"sent_bytes": self.sent_bytes, "decoded_bytes": self.decoded_bytes, "rows": self.rows}

    def stop(self, error: ReadLimitExceeded) -> ReadLimitExceeded:
        """Keep `error` (the first one) and return it, to be raised."""
        if self.exceeded is None:
            self.exceeded = error
        return self.exceeded


class ReadLimitExceeded(DataError):
    """Reading stopped at a limit: no reader tries the upload again, nothing past it is read."""


def limit_error(code: str, message: str, limit: str, value: float, *, status: int = 422) -> ReadLimitExceeded:
    """A refusal for the limit `limit` (a Limits field and its FITEXPLAIN_ setting) of `value`."""
    number: float = int(value) if float(value).is_integer() else value
    details: dict[str, Any] = {"limit": number, "setting": f"FITEXPLAIN_{limit.upper()}"}
    return ReadLimitExceeded(code, message, status=status, details=details)


def too_many_rows(limits: Limits) -> ReadLimitExceeded:
    return limit_error(
        "too_many_rows",
        f"The file has more than {limits.max_rows} data rows (limit max_rows): sample it first.",
        "max_rows",
        limits.max_rows,
    )


def too_many_columns(n_columns: int, limits: Limits) -> ReadLimitExceeded:
    return limit_error(
        "too_many_columns",
        f"The file has {n_columns} columns, more than the limit of {limits.max_columns} (max_columns).",
        "max_columns",
        limits.max_columns,
    )


# Copies of the data a job holds at its peak: the loaded table, X, its train/test split and the model's
# own (boosters' matrices, nnetsauce's transformed inputs). A rough bound, meant to refuse the hopeless.
MEMORY_COPIES = 6


def memory_bytes(rows: int, features: int) -> int:
    """Bytes a worker needs for a job's data: rows x (features + target + index) x 8 x MEMORY_COPIES."""
    return rows * (features + 2) * 8 * MEMORY_COPIES


def check_rows_memory(rows: int, features: int, max_memory_mb: int) -> None:
    """over_memory (a 422 at submit) when `rows` rows of `features` features would not fit in a worker:
    checked at submit, and while an upload is read (its rows so far, or those a file declares)."""
    needed_mb = memory_bytes(rows, features) / 1e6
    if needed_mb <= max_memory_mb:
        return
    raise LimitExceeded(
        "over_memory",
        f"This job's data ({rows:,} rows x {features:,} features) needs about {needed_mb:,.0f} MB in a "
        f"worker, more than its {max_memory_mb:,} MB (worker_max_memory_mb): send fewer rows or features.",
        details={"limit": max_memory_mb, "setting": "FITEXPLAIN_WORKER_MAX_MEMORY_MB"},
    )


class DecodedBudget:
    """One pass's decoded bytes against `max_decompressed_bytes` and `max_decompression_ratio`."""

    def __init__(self, limits: Limits, counters: ReadCounters) -> None:
        self.limits = limits
        self.counters = counters
        self.decoded = 0

    def add(self, decoded: int, sent: int, *, declared: bool = False) -> None:
        """`decoded` more bytes, from the `sent` bytes read so far in this pass (`declared`: what a
        file's metadata says its data decode to, before they are read)."""
        self.decoded += decoded
        self.counters.decoded_bytes += decoded
        limits = self.limits
        decodes = "declares data that decode" if declared else "decodes"
        if self.decoded > limits.max_decompressed_bytes:
            raise self.counters.stop(
                limit_error(
                    "decompressed_too_large",
                    f"The upload {decodes} to more than {limits.max_decompressed_bytes} bytes (limit "
                    "max_decompressed_bytes): send fewer rows or columns.",
                    "max_decompressed_bytes",
                    limits.max_decompressed_bytes,
                    status=TOO_LARGE,
                )
            )
        ratio = limits.max_decompression_ratio
        if self.decoded > RATIO_FREE_BYTES and self.decoded > ratio * sent:
            raise self.counters.stop(
                limit_error(
                    "compression_ratio_too_high",
                    f"The upload {decodes} to more than {ratio:g} times the bytes read ({self.decoded} bytes "
                    f"from the first {sent}; limit max_decompression_ratio): is it a decompression bomb?",
                    "max_decompression_ratio",
                    ratio,
                    status=TOO_LARGE,
                )
            )


class CountingReader(io.RawIOBase):
    """The upload's bytes as sent, counted as they are read; at most `most` bytes a read (for a
    decompressor, so that what it has consumed stays close to what it has decoded)."""

    def __init__(self, raw: BinaryIO, counters: ReadCounters, most: int | None = None) -> None:
        self.raw = raw
        self.counters = counters
        self.most = most
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self.most is not None and (size is None or size < 0 or size > self.most):
            size = self.most
        data = self.raw.read(-1 if size is None else size)
        self.count += len(data)
        self.counters.sent_bytes += len(data)
        return data

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer)
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self.raw.close()
        finally:
            super().close()


class BoundedText(io.RawIOBase):
    """A CSV's text (decompressed, if it was), refused as soon as it decodes to too much or a line
    grows longer than `max_line_bytes` (measured with `bytes.find`, a few calls a megabyte)."""

    def __init__(self, text: BinaryIO, sent: CountingReader, limits: Limits, counters: ReadCounters) -> None:
        self.text = text
        self.sent = sent
        self.limits = limits
        self.budget = DecodedBudget(limits, counters)
        self.lines = 0  # newlines read
        self._line = 0  # bytes of the current line read so far

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer)
        chunk = self.text.read(len(view))
        if chunk:
            self.budget.add(len(chunk), self.sent.count)
            self._check_lines(chunk)
            view[: len(chunk)] = chunk
        return len(chunk)

    def _check_lines(self, chunk: bytes) -> None:
        limit = self.limits.max_line_bytes
        first = chunk.find(b"\n")
        if first < 0:
            self._line += len(chunk)
            if self._line > limit:
                raise self._too_long(self.lines + 1)
            return
        if self._line + first > limit:
            raise self._too_long(self.lines + 1)
        last = chunk.rfind(b"\n")
        if last - first - 1 > limit:
            self._check_inner_lines(chunk, first + 1, last)
        self.lines += chunk.count(b"\n")
        self._line = len(chunk) - last - 1
        if self._line > limit:
            raise self._too_long(self.lines + 1)

    def _check_inner_lines(self, chunk: bytes, start: int, end: int) -> None:
        """The lines between `start` and `end` (both line starts/ends): a window of half the limit with
        no newline is measured, and every line longer than the limit holds such a window."""
        limit = self.limits.max_line_bytes
        step = max(1, limit // 2)
        while start < end:
            stop = min(start + step, end)
            if stop - start == step and chunk.find(b"\n", start, stop) < 0:
                begin = chunk.rfind(b"\n", 0, start) + 1
                line_end = chunk.find(b"\n", start)
                if line_end - begin > limit:
                    raise self._too_long(self.lines + chunk.count(b"\n", 0, begin) + 1)
                start = line_end + 1
            else:
                start = stop

    def _too_long(self, line: int) -> ReadLimitExceeded:
        limit = self.limits.max_line_bytes
        return self.budget.counters.stop(
            limit_error(
                "line_too_long",
                f"Line {line} is longer than {limit} bytes (limit max_line_bytes): is the file "
                "comma-separated CSV, with one row a line?",
                "max_line_bytes",
                limit,
            )
        )

    def close(self) -> None:
        try:
            self.text.close()
        finally:
            super().close()
