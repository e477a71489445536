"""Bombs over real HTTP (the API on Postgres and Redis): each kind of upload that decodes to far more than
it is gets its 4xx naming the limit met, from what was read before the rest: the error body's `read`
(the server's counters of bytes decoded and rows parsed) shows where reading stopped, and the API's
peak memory (its VmHWM, reset before each bomb) grows by at most 100 MB while refusing it.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.bombs import (
    Upload,
    arrow_stream_bomb,
    gzip_of_tiny_rows,
    gzip_of_zeros,
    long_line,
    many_fields,
    parquet_declaring,
    post_upload,
)
from tests.stack import Client, Stack

pytestmark = [pytest.mark.service]

MAX_ROWS = 100_000
MiB = 1 << 20
MAX_GROWTH = 100 * MiB


@pytest.fixture(scope="module")
def bombed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """An API (no worker: no bomb should ever reach one) with the default limits but fewer rows."""
    stack = Stack(tmp_path_factory.mktemp("bombs"), extra_env={"FITEXPLAIN_MAX_ROWS": str(MAX_ROWS)}).setup()
    stack.start_api()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def user(bombed: Stack) -> Client:
    return Client(bombed.url, bombed.token("bomber"))


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def send(stack: Stack, user: Client, upload: Upload) -> tuple[httpx.Response, int]:
    """Post the upload; (the answer, the API's peak resident memory growth in bytes meanwhile)."""
    assert stack.api is not None
    pid = stack.api.pid
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM starts again from the current RSS
    before = memory_kib(pid, "VmRSS")
    response = post_upload(user.http, upload)
    return response, (memory_kib(pid, "VmHWM") - before) * 1024


def refused(response: httpx.Response, status: int, code: str, setting: str) -> dict[str, int]:
    """The refusal's checks; its `read` counters."""
    assert response.status_code == status, response.text
    body = response.json()
    assert (body["code"], body["setting"]) == (code, setting), body
    assert setting.removeprefix("FITEXPLAIN_").lower() in body["detail"]
    assert isinstance(body["limit"], int | float)
    read: dict[str, int] = body["read"]
    return read


def test_a_gzip_of_zeros_stops_at_the_ratio(bombed: Stack, user: Client) -> None:
    bomb = gzip_of_zeros(64)
    response, growth = send(bombed, user, bomb)
    read = refused(response, 413, "compression_ratio_too_high", "FITEXPLAIN_MAX_DECOMPRESSION_RATIO")
    assert read["decoded_bytes"] <= 8 * MiB < 64 * MiB and read["rows"] == 0
    assert growth <= MAX_GROWTH


def test_a_gzip_of_tiny_rows_stops_at_the_ratio(bombed: Stack, user: Client) -> None:
    bomb = gzip_of_tiny_rows(64)
    response, growth = send(bombed, user, bomb)
    read = refused(response, 413, "compression_ratio_too_high", "FITEXPLAIN_MAX_DECOMPRESSION_RATIO")
    assert read["decoded_bytes"] <= 16 * MiB and read["rows"] < MAX_ROWS
    assert read["decoded_bytes"] > 100 * read["sent_bytes"]
    assert growth <= MAX_GROWTH


def test_a_gzip_of_more_rows_than_the_limit_stops_at_the_row_limit(bombed: Stack, user: Client) -> None:
    """Rows that compress as real data do (under the ratio) stop at the row limit, not at the end."""
    period = 100_003  # lines further apart than gzip's window: it compresses as real data does
    rows = 15 * period
    text = b"x,target\n" + b"".join(b"%d,%d\n" % (i * 7919 % period, i % 2) for i in range(period)) * 15
    bomb = ("rows.csv.gz", "application/gzip", gzip.compress(text, 6))
    response, growth = send(bombed, user, bomb)
    read = refused(response, 422, "too_many_rows", "FITEXPLAIN_MAX_ROWS")
    assert MAX_ROWS < read["rows"] < rows // 2  # parsed up to the 4 MB group that crossed the limit
    assert growth <= MAX_GROWTH


def test_a_very_long_line_stops_at_the_line_limit(bombed: Stack, user: Client) -> None:
    response, growth = send(bombed, user, long_line(32 * MiB))
    read = refused(response, 422, "line_too_long", "FITEXPLAIN_MAX_LINE_BYTES")
    assert "Line 2" in response.json()["detail"] and read["decoded_bytes"] <= 12 * MiB < 32 * MiB
    assert growth <= MAX_GROWTH


def test_many_fields_stop_at_the_column_limit(bombed: Stack, user: Client) -> None:
    response, growth = send(bombed, user, many_fields(400_000))
    read = refused(response, 422, "too_many_columns", "FITEXPLAIN_MAX_COLUMNS")
    assert read["rows"] == 0
    assert growth <= MAX_GROWTH


@pytest.mark.parametrize(
    ("rows", "columns", "code", "setting"),
    [
        (2_000_000, 20, "too_many_rows", "FITEXPLAIN_MAX_ROWS"),
        (20, 2_000, "too_many_columns", "FITEXPLAIN_MAX_COLUMNS"),
    ],
)
def test_a_parquet_footer_declaring_too_much_is_refused_before_any_page_is_read(
    bombed: Stack, user: Client, rows: int, columns: int, code: str, setting: str
) -> None:
    response, growth = send(bombed, user, parquet_declaring(rows, columns))
    read = refused(response, 422, code, setting)
    assert (read["rows"], read["decoded_bytes"]) == (0, 0)
    assert growth <= MAX_GROWTH


def test_an_arrow_stream_bomb_is_refused_before_its_batch_is_decompressed(
    bombed: Stack, user: Client
) -> None:
    bomb = arrow_stream_bomb(20_000_000)
    response, growth = send(bombed, user, bomb)
    read = refused(response, 413, "compression_ratio_too_high", "FITEXPLAIN_MAX_DECOMPRESSION_RATIO")
    assert read["rows"] == 0 and read["decoded_bytes"] == 2 * 8 * 20_000_000  # declared, never decoded
    assert growth <= MAX_GROWTH


def test_many_small_batches_of_an_arrow_stream_stop_at_the_row_limit(bombed: Stack, user: Client) -> None:
    rows = 1000
    bomb = arrow_stream_bomb(rows, batches=300)  # 300,000 rows, a batch at a time
    response, growth = send(bombed, user, bomb)
    read = refused(response, 422, "too_many_rows", "FITEXPLAIN_MAX_ROWS")
    assert read["rows"] <= MAX_ROWS
    assert growth <= MAX_GROWTH


def test_a_legitimate_upload_is_still_accepted(bombed: Stack, user: Client) -> None:
    text = b"x,target\n" + b"".join(b"%d,%.3f\n" % (i, i * 0.5 % 7) for i in range(5_000))
    response, _ = send(bombed, user, ("ok.csv.gz", "application/gzip", gzip.compress(text)))
    assert response.status_code == 202, response.text
