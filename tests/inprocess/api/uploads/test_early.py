"""A CSV converted while it is still being written (`api.uploads.early`): the same canonical file and the
same errors as converting the complete file; a part broken off stops its conversion."""

from __future__ import annotations

import gzip
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from api.uploads.early import GrowingUpload, UploadBrokenOff
from shared.ml.errors import DataError
from shared.ml.ingest.canonical import read_labels, read_table
from shared.ml.ingest.dataset import load_checks
from shared.ml.ingest.upload import ingest
from shared.ml.spec import Limits

PIECE = 64 << 10


def csv_bytes(rows: int, bad_line: int | None = None) -> bytes:
    values = np.random.default_rng(3).normal(size=(rows, 4))
    lines = [",".join(f"{value:.12f}" for value in row) + f",{i % 3}" for i, row in enumerate(values)]
    if bad_line is not None:
        lines[bad_line - 2] = "1.5,2.5,abc,3.5,1"  # the header is line 1
    return ("\n".join(["a,b,c,d,target", *lines]) + "\n").encode()


def write_slowly(path: Path, content: bytes, growing: GrowingUpload, stop_at: int | None = None) -> None:
    """Append `content` to `path` piece by piece, as the receiving side does (flush, then tell)."""
    with open(path, "ab") as file:
        for start in range(file.tell(), len(content), PIECE):
            if stop_at is not None and start >= stop_at:
                growing.break_off()
                return
            file.write(content[start : start + PIECE])
            file.flush()
            growing.grew(min(start + PIECE, len(content)))
            time.sleep(0.001)
    growing.complete()


def ingest_growing(tmp_path: Path, content: bytes, stop_at: int | None = None) -> Path:
    """Convert `content` while a thread writes it; the first piece is there before it starts."""
    path = tmp_path / "upload"
    path.write_bytes(content[:PIECE])
    growing = GrowingUpload(path, PIECE)
    writer = threading.Thread(target=write_slowly, args=(path, content, growing, stop_at))
    writer.start()
    try:
        return ingest(path, tmp_path / "early.parquet", Limits(), open_upload=growing.opener()).path
    finally:
        writer.join()


@pytest.mark.parametrize("packed", [False, True], ids=["csv", "csv.gz"])
def test_a_csv_converted_as_it_is_written_gives_the_canonical_file_of_the_whole(
    tmp_path: Path, packed: bool
) -> None:
    content = csv_bytes(30_000)
    if packed:
        content = gzip.compress(content, compresslevel=1)
    assert len(content) > 10 * PIECE
    whole = tmp_path / "whole"
    whole.write_bytes(content)
    expected = read_table(ingest(whole, tmp_path / "whole.parquet", Limits()).path)
    assert len(expected) == 30_000
    assert read_table(ingest_growing(tmp_path, content)).equals(expected)


def test_a_bad_line_late_in_a_growing_csv_is_named_by_the_second_pass(tmp_path: Path) -> None:
    content = csv_bytes(30_000, bad_line=25_000)
    assert content.index(b"abc") > 1_000_000
    with pytest.raises(DataError) as raised:  # a text value among numbers: refused by the submit checks
        load_checks(read_labels(ingest_growing(tmp_path, content)), "classification", 1, Limits())
    assert (raised.value.code, raised.value.column) == ("non_numeric", "c")
    assert "line 25000" in raised.value.message


def test_a_part_broken_off_stops_its_conversion(tmp_path: Path) -> None:
    content = csv_bytes(30_000)
    with pytest.raises(UploadBrokenOff):
        ingest_growing(tmp_path, content, stop_at=len(content) // 2)
