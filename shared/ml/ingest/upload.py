"""Read an upload once, streaming, into the canonical Parquet file (`shared.ml.ingest.canonical`).

Accepted: CSV (UTF-8), gzip-compressed CSV (`shared.ml.ingest.from_csv`), Parquet and Arrow IPC, file or
stream (`shared.ml.ingest.from_columnar`). The format comes from the file's magic bytes, then from the
client's file name or content type. Memory stays bounded by one batch, whatever the file's size, and
the work by what was sent (`shared.ml.ingest.bounds`); the rules and errors are those of
`shared.ml.ingest.dataset.read_table` for the same content, up to the first limit met (its error body
shows what had been read by then: `read`).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import BinaryIO, Literal, cast

from isal import igzip

from shared.ml.errors import DataError, UserInputError
from shared.ml.ingest.bounds import SENT_READ_BYTES, BoundedText, CountingReader, ReadCounters
from shared.ml.ingest.canonical import Labels
from shared.ml.ingest.columns import Roles
from shared.ml.ingest.dataset import Dataset, load_source
from shared.ml.ingest.from_columnar import ingest_columnar
from shared.ml.ingest.from_csv import ingest_csv
from shared.ml.spec import Limits, Task

TEXT_BUFFER_BYTES = 1 << 20
Format = Literal["csv", "csv.gz", "parquet", "arrow", "arrow-stream"]
ACCEPTED = (
    "CSV (UTF-8, text/csv), gzip-compressed CSV (.csv.gz, application/gzip), Parquet (.parquet, "
    "application/vnd.apache.parquet) or Arrow IPC (.arrow, application/vnd.apache.arrow.file or "
    "application/vnd.apache.arrow.stream)"
)
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


@dataclass(frozen=True)
class Ingested:
    """What was read: the canonical Parquet file, the upload's shape, and its labels (for the submit
    checks, which then need not read the file back)."""

    path: Path
    format: Format
    labels: Labels = field(repr=False)
    size_bytes: int  # of the canonical file
    read: ReadCounters = field(default_factory=ReadCounters, compare=False)  # the work of reading it

    @property
    def n_rows(self) -> int:
        return self.labels.n_rows

    @property
    def feature_names(self) -> list[str]:
        return self.labels.feature_names

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


def ingest(
    path: Path,
    dest: Path,
    limits: Limits,
    *,
    filename: str = "",
    content_type: str = "",
    open_upload: Callable[[], BinaryIO] | None = None,
) -> Ingested:
    """Validate the upload at `path` in one streaming pass and write its canonical Parquet file to
    `dest`; raise DataError naming the problem (then `dest` may hold a partial file: remove it).

    `open_upload` opens a CSV's bytes (each pass over them: the exact reader's is a second one) instead
    of the file at `path`, e.g. to read an upload that is still arriving."""
    found = detect_format(path, filename, content_type)
    counters = ReadCounters()
    try:
        if found in ("csv", "csv.gz"):
            open_raw = open_upload or (lambda: open(path, "rb"))  # noqa: SIM115 - each pass closes its file
            open_text = partial(_open_text, open_raw, found, limits, counters)
            labels = ingest_csv(open_text, dest, limits, counters)
        else:
            labels = ingest_columnar(path, found, dest, limits, counters)
    except UserInputError as err:
        err.details["read"] = counters.as_dict()
        raise
    return Ingested(dest, found, labels, dest.stat().st_size, counters)


class _GzipText(igzip.IGzipFile):
    """A gzip stream that also closes the stream it reads (GzipFile leaves a given file object open)."""

    def __init__(self, raw: BinaryIO) -> None:
        # isal leaves IGzipFile.__init__ unannotated (untyped_calls_exclude misses a super() call).
        super().__init__(fileobj=raw, mode="rb")  # type: ignore[no-untyped-call]
        self._raw = raw

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def load_dataset(
    content: bytes, task: Task, seed: int, limits: Limits, roles: Roles | None = None
) -> Dataset:
    """Read a CSV and split it into train and test arrays for `task`, as a submit and its job do: through
    the canonical file (`shared.ml.ingest.upload`).

    The split follows `training_index` when present, otherwise a 30% test split seeded by `seed`
    (stratified for classification), so the same file and seed always give the same split.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        sent = Path(folder) / "upload.csv"
        sent.write_bytes(content)
        ingested = ingest(sent, Path(folder) / "canonical.parquet", limits)
        return load_source(ingested.path, task, seed, limits, roles)


def _open_text(
    open_raw: Callable[[], BinaryIO], found: Format, limits: Limits, counters: ReadCounters
) -> BinaryIO:
    """One pass over a CSV's text, counted and bounded (`shared.ml.ingest.bounds`)."""
    sent = CountingReader(open_raw(), counters, SENT_READ_BYTES if found == "csv.gz" else None)
    # Both read as binary files, but typeshed's RawIOBase and GzipFile are no BinaryIO (a nominal class).
    raw = cast("BinaryIO", sent)
    text = cast("BinaryIO", _GzipText(raw)) if found == "csv.gz" else raw
    return io.BufferedReader(BoundedText(text, sent, limits, counters), buffer_size=TEXT_BUFFER_BYTES)
