"""A property of the submit route, whatever table it is sent: no 5xx, and an error body with a `code`.

Hypothesis generates tables (columns of every Arrow type, values at their extremes, NaN, infinities,
nulls, odd names and duplicates), writes them as CSV, gzip CSV, Parquet or Arrow IPC (file or stream),
sometimes cut short, and posts them through the real application in this process (TestClient re-raises
an unhandled exception, which the server would answer with a 500 or a dropped connection).

The number of examples is a Hypothesis profile chosen by FITEXPLAIN_HYPOTHESIS_PROFILE: `fast` (the
default, `make test-fast`) or `thorough` (`make test`).
"""

from __future__ import annotations

import datetime
import gzip
import io
import os

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from shared.settings import Settings, get_settings
from tests.inprocess.factories import TINY_GBDT, Account

settings.register_profile("fast", max_examples=25, deadline=None)
settings.register_profile("thorough", max_examples=400, deadline=None)
PROFILE = settings.get_profile(os.environ.get("FITEXPLAIN_HYPOTHESIS_PROFILE", "fast"))

INTS = {
    pa.int8(): (-(2**7), 2**7 - 1),
    pa.int16(): (-(2**15), 2**15 - 1),
    pa.int32(): (-(2**31), 2**31 - 1),
    pa.int64(): (-(2**63), 2**63 - 1),
    pa.uint8(): (0, 2**8 - 1),
    pa.uint32(): (0, 2**32 - 1),
    pa.uint64(): (0, 2**64 - 1),
}
NUMBER_TEXT = st.sampled_from(
    ["0", "1", "-2.5", "1e308", "1e309", "nan", "NA", "", " 3 ", "true", "east", "9" * 30]
)


def values_of(kind: pa.DataType) -> st.SearchStrategy[object]:
    """Values of one Arrow type."""
    if kind in INTS:
        low, high = INTS[kind]
        extremes = st.sampled_from([low, high, 0, 1, min(high, 2**53 + 1)])
        return st.one_of(st.integers(max(low, -3), min(high, 3)), extremes)
    if pa.types.is_floating(kind):
        width = 16 if kind == pa.float16() else 32 if kind == pa.float32() else 64
        unusual = st.floats(width=width, allow_nan=True, allow_infinity=True)
        usual = st.floats(-1e3, 1e3, width=width)
        return st.one_of(usual, usual, unusual)
    if pa.types.is_boolean(kind):
        return st.booleans()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return st.one_of(NUMBER_TEXT, st.text(max_size=8))
    if pa.types.is_timestamp(kind):
        return st.datetimes(min_value=datetime.datetime(1970, 1, 2), max_value=datetime.datetime(2200, 1, 1))
    if pa.types.is_list(kind):
        return st.lists(st.integers(-5, 5), max_size=3)
    if pa.types.is_binary(kind):
        return st.binary(max_size=6)
    return st.none()


KINDS = [
    *INTS,
    pa.float16(),
    pa.float32(),
    pa.float64(),
    pa.bool_(),
    pa.string(),
    pa.large_string(),
    pa.timestamp("ms", tz="UTC"),
    pa.list_(pa.int64()),
    pa.binary(),
    pa.null(),
]
ODD_NAMES = st.sampled_from(["target", "x", " c0 ", "training_index", "", "c1"])


@st.composite
def column(draw: st.DrawFn, n_rows: int) -> pa.Array:
    """A column of one type, with a null now and then, dictionary-encoded now and then."""
    kind = draw(st.one_of(st.sampled_from(KINDS), st.sampled_from([pa.float64(), pa.int64(), pa.int8()])))
    values = values_of(kind)
    if draw(st.integers(0, 4)) == 0:
        values = st.one_of(st.none(), values)
    array = pa.array(draw(st.lists(values, min_size=n_rows, max_size=n_rows)), kind)
    if draw(st.integers(0, 3)) == 0 and (pa.types.is_string(kind) or kind in INTS):
        array = array.dictionary_encode()
    return array


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    """Mostly well-formed tables (distinct names, a numeric target) with columns of any type; now and
    then an odd name, a duplicate, no target, no rows."""
    n_rows = draw(st.one_of(st.just(0), st.integers(8, 40), st.integers(8, 40)))
    n_columns = draw(st.integers(1, 4))
    arrays = [draw(column(n_rows)) for _ in range(n_columns)]
    names = [f"c{index}" for index in range(n_columns)]
    if draw(st.integers(0, 4)) == 0:
        names[draw(st.integers(0, n_columns - 1))] = draw(ODD_NAMES)
    if draw(st.integers(0, 5)) > 0 and "target" not in names:
        arrays.append(pa.array([float(i % 3) + 0.5 for i in range(n_rows)]))
        names.append("target")
    return pa.Table.from_arrays(arrays, names=names)


def encoded(table: pa.Table, form: str) -> bytes:
    sink = io.BytesIO()
    if form in ("csv", "csv.gz"):
        pacsv.write_csv(table, sink)
        return gzip.compress(sink.getvalue()) if form == "csv.gz" else sink.getvalue()
    if form == "parquet":
        pq.write_table(table, sink)
    else:
        new = ipc.new_file if form == "arrow" else ipc.new_stream
        compression = "zstd" if len(table) % 2 else None
        with new(sink, table.schema, options=ipc.IpcWriteOptions(compression=compression)) as writer:
            writer.write_table(table)
    return sink.getvalue()


NAMES_BY_FORM = {
    "csv": ("data.csv", "text/csv"),
    "csv.gz": ("data.csv.gz", "application/gzip"),
    "parquet": ("data.parquet", "application/vnd.apache.parquet"),
    "arrow": ("data.arrow", "application/vnd.apache.arrow.file"),
    "arrow-stream": ("data.arrows", "application/vnd.apache.arrow.stream"),
}


@pytest.fixture
def unlimited(service_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """No per-user limit in the way: every example reaches the reading of its upload."""
    for name in (
        "max_running_jobs_per_user",
        "max_submissions_per_minute",
        "max_rejected_uploads_per_minute",
    ):
        monkeypatch.setattr(get_settings(), name, 10**9)  # the settings the code reads now
    return get_settings()


@settings(parent=PROFILE, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    table=tables(),
    form=st.sampled_from(sorted(NAMES_BY_FORM)),
    cut=st.one_of(st.none(), st.none(), st.none(), st.floats(0, 1)),
)
def test_any_table_in_any_format_is_answered_without_a_5xx(
    client: TestClient, alice: Account, unlimited: Settings, table: pa.Table, form: str, cut: float | None
) -> None:
    try:
        content = encoded(table, form)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return  # a table this format cannot hold (a list column in a CSV)
    if cut is not None:
        content = content[: int(len(content) * cut)]
    name, content_type = NAMES_BY_FORM[form]
    params = {key: str(value) for key, value in TINY_GBDT.items()}
    response = client.post(
        "/gbdtregression", params=params, files={"file": (name, content, content_type)}, headers=alice.headers
    )
    event(
        str(response.status_code)
        + " "
        + (response.json().get("code", "") if response.status_code != 202 else "")
    )
    assert response.status_code < 500, response.text
    if response.status_code != 202:
        body = response.json()
        assert body["code"] and body["detail"], body
