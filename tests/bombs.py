"""Small uploads that decode to far more than they are ("bombs"), one builder per kind, each returning
(file name, content type, bytes), and `post_upload`, which sends one: for the bomb tests and
`benchmarks/upload_bombs.py`. Each is built without holding what it decodes to (a gzip stream fed a
megabyte at a time, columns sharing one array).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

if TYPE_CHECKING:
    import httpx

Upload = tuple[str, str, bytes]
CHUNK = 1 << 20
# The cheapest model: what a bomb submit measures is the upload.
TRIVIAL_MODEL = {"model_type": "lightgbm", "n_estimators": "5"}


def _gzip(pieces: Callable[[], list[bytes]], repeats: int) -> bytes:
    """gzip of the header pieces then `repeats` times the last piece's megabyte-sized pattern."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
    *head, body = pieces()
    out = [compressor.compress(part) for part in head]
    out += [compressor.compress(body) for _ in range(repeats)]
    out.append(compressor.flush())
    return b"".join(out)


def gzip_of_zeros(megabytes: int) -> Upload:
    """A gzip-compressed "CSV" of `megabytes` MiB of NUL bytes: one line, never ending."""
    return "zeros.csv.gz", "application/gzip", _gzip(lambda: [bytes(CHUNK)], megabytes)


def gzip_of_tiny_rows(megabytes: int) -> Upload:
    """A gzip-compressed CSV with a header and `megabytes` MiB of rows `0,1` (4 bytes a row)."""
    return (
        "tiny.csv.gz",
        "application/gzip",
        _gzip(lambda: [b"x,target\n", b"0,1\n" * (CHUNK // 4)], megabytes),
    )


def long_line(size: int) -> Upload:
    """A plain CSV whose second line is `size` bytes of digits."""
    return "long.csv", "text/csv", b"x,target\n" + b"7" * size + b",1\n"


def many_fields(fields: int) -> Upload:
    """A plain CSV whose header has `fields` columns (and a target)."""
    header = ",".join(f"x{i}" for i in range(fields)) + ",target\n"
    return "wide.csv", "text/csv", header.encode() + b"0," * fields + b"1\n"


def parquet_declaring(rows: int, columns: int) -> Upload:
    """A Parquet file of `rows` x `columns` int8 zeros (and a target), run-length encoded: a few
    kilobytes whose footer declares the whole table."""
    zeros = pa.Array.from_buffers(pa.int8(), rows, [None, pa.py_buffer(bytes(rows))])
    table = pa.table({**{f"x{i}": zeros for i in range(columns)}, "target": zeros})
    sink = io.BytesIO()
    pq.write_table(
        table, sink, row_group_size=rows, compression="zstd", use_dictionary=False, write_statistics=False
    )
    return "declared.parquet", "application/vnd.apache.parquet", sink.getvalue()


def arrow_stream_bomb(rows: int, batches: int = 1) -> Upload:
    """An Arrow IPC stream of `batches` ZSTD-compressed record batches of `rows` int64 zeros each."""
    zeros = pa.Array.from_buffers(pa.int64(), rows, [None, pa.py_buffer(bytes(8 * rows))])
    batch = pa.record_batch({"x": zeros, "target": zeros})
    sink = io.BytesIO()
    options = ipc.IpcWriteOptions(compression="zstd")
    with ipc.new_stream(sink, batch.schema, options=options) as writer:
        for _ in range(batches):
            writer.write_batch(batch)
    return "bomb.arrows", "application/vnd.apache.arrow.stream", sink.getvalue()


BOMBS: dict[str, Callable[[], Upload]] = {
    "gzip of zeros": lambda: gzip_of_zeros(1024),
    "gzip of tiny rows": lambda: gzip_of_tiny_rows(256),
    "long line": lambda: long_line(64 << 20),
    "many fields": lambda: many_fields(400_000),
    "Parquet declaring 10M x 100": lambda: parquet_declaring(10_000_000, 100),
    "Arrow stream bomb": lambda: arrow_stream_bomb(20_000_000),
}
"""Each bomb kind at the scale of the probes that found them, under the default limits."""


def post_upload(http: httpx.Client, upload: Upload) -> httpx.Response:
    """The upload as the file of a submit of `TRIVIAL_MODEL` to /gbdtregression."""
    name, content_type, content = upload
    return http.post("/gbdtregression", params=TRIVIAL_MODEL, files={"file": (name, content, content_type)})
