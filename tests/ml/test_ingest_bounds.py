"""The limits on reading an upload (shared/ml/ingest/bounds.py): each met on what was read, before the
rest is read or converted, its error naming the limit and showing the reader's counters."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from shared.ml.errors import UserInputError
from shared.ml.ingest.bounds import BoundedText, CountingReader, ReadCounters, ReadLimitExceeded
from shared.ml.ingest.upload import ingest
from shared.ml.spec import Limits
from tests.bombs import Upload, arrow_stream_bomb, parquet_declaring


def ingest_upload(tmp_path: Path, upload: Upload, limits: Limits) -> UserInputError:
    name, content_type, content = upload
    path = tmp_path / "upload"
    path.write_bytes(content)
    with pytest.raises(UserInputError) as raised:
        ingest(path, tmp_path / "canonical.parquet", limits, filename=name, content_type=content_type)
    return raised.value


def read_all(text: bytes, limit: int, chunks: list[int]) -> None:
    raw = io.BytesIO(text)
    counters = ReadCounters()
    sent = CountingReader(raw, counters)
    bounded = BoundedText(sent, sent, Limits(max_line_bytes=limit), counters)  # type: ignore[arg-type]
    for size in chunks:
        bounded.read(size)
    while bounded.read(1 << 16):
        pass


@pytest.mark.parametrize("seed", range(40))
def test_a_line_is_refused_exactly_when_it_is_longer_than_the_limit_wherever_the_reads_cut(seed: int) -> None:
    rng = random.Random(seed)
    limit = rng.choice([1, 2, 7, 10, 33])
    lengths = [
        rng.choice([0, 1, limit - 1, limit, limit, limit + 1, 3 * limit]) for _ in range(rng.randint(1, 30))
    ]
    text = b"\n".join(b"a" * max(0, length) for length in lengths) + rng.choice([b"", b"\n"])
    chunks = [rng.randint(1, 3 * limit + 5) for _ in range(40)]
    too_long = [number for number, length in enumerate(lengths, start=1) if length > limit]
    if not too_long:
        read_all(text, limit, chunks)
        return
    with pytest.raises(ReadLimitExceeded) as raised:
        read_all(text, limit, chunks)
    assert raised.value.code == "line_too_long" and f"Line {too_long[0]} " in raised.value.message


def test_a_csv_decoding_to_more_than_the_absolute_limit_is_refused_once_it_does(tmp_path: Path) -> None:
    text = b"x,target\n" + b"".join(b"%d,%d\n" % (i, i % 2) for i in range(600_000))
    error = ingest_upload(tmp_path, ("a.csv", "text/csv", text), Limits(max_decompressed_bytes=1_000_000))
    assert (error.status, error.code) == (413, "decompressed_too_large")
    assert (
        error.details["setting"] == "FITEXPLAIN_MAX_DECOMPRESSED_BYTES"
        and error.details["limit"] == 1_000_000
    )
    assert 1_000_000 < error.details["read"]["decoded_bytes"] < 2_500_000 < len(text)


def test_rows_read_that_would_not_fit_in_a_worker_are_refused_while_streaming(tmp_path: Path) -> None:
    text = b"a,b,c,target\n" + b"1,2,3,0\n" * 200_000
    error = ingest_upload(tmp_path, ("a.csv", "text/csv", text), Limits(worker_max_memory_mb=10))
    assert (error.code, error.details["setting"]) == ("over_memory", "FITEXPLAIN_WORKER_MAX_MEMORY_MB")


def test_a_parquet_footer_that_would_not_fit_in_a_worker_is_refused_before_any_page(tmp_path: Path) -> None:
    error = ingest_upload(tmp_path, parquet_declaring(200_000, 10), Limits(worker_max_memory_mb=10))
    assert error.code == "over_memory" and error.details["read"]["rows"] == 0


def test_a_parquet_footer_declaring_more_than_the_ratio_allows_is_refused(tmp_path: Path) -> None:
    error = ingest_upload(tmp_path, parquet_declaring(2_000_000, 20), Limits())
    assert (error.status, error.code) == (413, "compression_ratio_too_high")
    assert "declares" in error.message and error.details["read"]["rows"] == 0


def test_an_arrow_file_bomb_is_refused_from_its_messages(tmp_path: Path) -> None:
    batch = pa.record_batch(
        {"x": pa.array([0] * 5_000_000, pa.int64()), "target": pa.array([1.0] * 5_000_000)}
    )
    sink = io.BytesIO()
    with ipc.new_file(sink, batch.schema, options=ipc.IpcWriteOptions(compression="zstd")) as writer:
        writer.write_batch(batch)
    error = ingest_upload(
        tmp_path, ("a.arrow", "application/vnd.apache.arrow.file", sink.getvalue()), Limits()
    )
    assert error.code == "compression_ratio_too_high" and error.details["read"]["rows"] == 0


def test_a_dictionary_spread_over_many_rows_is_counted_before_it_is_decoded(tmp_path: Path) -> None:
    rows = 1_000_000
    indices = pa.array([0] * rows, pa.int8())
    text = pa.DictionaryArray.from_arrays(indices, pa.array(["1" * 900]))
    table = pa.table({"x": text, "target": pa.array([float(i % 2) for i in range(rows)])})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    upload = ("a.parquet", "application/vnd.apache.parquet", sink.getvalue())
    error = ingest_upload(tmp_path, upload, Limits())
    assert error.code == "compression_ratio_too_high" and error.details["read"]["rows"] <= 65_536


def test_an_arrow_stream_of_many_batches_stops_at_the_row_limit(tmp_path: Path) -> None:
    error = ingest_upload(tmp_path, arrow_stream_bomb(1_000, batches=50), Limits(max_rows=10_000))
    assert error.code == "too_many_rows" and error.details["read"]["rows"] <= 10_000


def test_garbage_after_an_arrow_stream_schema_is_a_bad_arrow_file(tmp_path: Path) -> None:
    _, content_type, content = arrow_stream_bomb(10)
    schema_end = content.index(b"\xff\xff\xff\xff", 8)  # the first record batch message
    broken = (
        content[:schema_end] + b"\xff\xff\xff\xff\x10\x00\x00\x00" + bytes(range(16)) + content[schema_end:]
    )
    error = ingest_upload(tmp_path, ("a.arrows", content_type, broken), Limits())
    assert error.code == "bad_arrow"
