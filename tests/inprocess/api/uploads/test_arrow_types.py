"""Every Arrow and Parquet type a column can have, as a feature or as the target, through the submit
route (TestClient, a real Postgres): accepted, or a 4xx whose body names the column and the problem —
never a 5xx. Types that are neither numbers nor text are refused from the schema, before any value is
converted (`unsupported_type`)."""

from __future__ import annotations

import datetime
import decimal
import io
from collections.abc import Callable

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from httpx import Response

from tests.inprocess.factories import TINY_GBDT, Account

ROWS = 40
TARGET = pa.array([float(i % 7) + 0.5 for i in range(ROWS)])
OTHER = pa.array([float(i) for i in range(ROWS)])


def repeat(values: list[object], kind: pa.DataType) -> pa.Array:
    return pa.array([values[i % len(values)] for i in range(ROWS)], kind)


NUMBERS: dict[str, Callable[[], pa.Array]] = {
    "int8": lambda: repeat([-128, 0, 127], pa.int8()),
    "int16": lambda: repeat([-32768, 1, 32767], pa.int16()),
    "int32": lambda: repeat([-(2**31), 2, 2**31 - 1], pa.int32()),
    "int64 beyond 2**53": lambda: repeat([2**53 + 1, -(2**63), 2**63 - 1], pa.int64()),
    "uint8": lambda: repeat([0, 255], pa.uint8()),
    "uint16": lambda: repeat([0, 65535], pa.uint16()),
    "uint32": lambda: repeat([0, 2**32 - 1], pa.uint32()),
    "uint64 max": lambda: repeat([0, 2**64 - 1], pa.uint64()),
    "float16": lambda: repeat([0.5, -1.0, 65504.0], pa.float16()),
    "float32": lambda: repeat([1.5, -3.25], pa.float32()),
    "decimal128": lambda: repeat([decimal.Decimal("12.34"), decimal.Decimal("-0.01")], pa.decimal128(10, 2)),
    "big decimal256": lambda: repeat([decimal.Decimal("9" * 76), decimal.Decimal(-1)], pa.decimal256(76, 0)),
    "bool": lambda: repeat([True, False], pa.bool_()),
    "numeric text": lambda: repeat(["1.5", " 2", "-3e4"], pa.string()),
    "numeric large_string": lambda: repeat(["1", "2.5"], pa.large_string()),
    "numeric dictionary": lambda: repeat(["1", "2"], pa.dictionary(pa.int8(), pa.string())),
    "int dictionary": lambda: repeat([10, 20], pa.dictionary(pa.int16(), pa.int64())),
}
"""Feature types read as numbers: accepted."""

UNSUPPORTED: dict[str, Callable[[], pa.Array]] = {
    "date32": lambda: repeat([datetime.date(2024, 1, 2)], pa.date32()),
    "date64": lambda: repeat([datetime.date(2024, 1, 2)], pa.date64()),
    "timestamp with zone": lambda: repeat(
        [datetime.datetime(2024, 1, 2, 3)], pa.timestamp("us", tz="Europe/Paris")
    ),
    "time64": lambda: repeat([datetime.time(1, 2, 3)], pa.time64("us")),
    "duration": lambda: repeat([datetime.timedelta(seconds=5)], pa.duration("s")),
    "list": lambda: repeat([[1, 2], []], pa.list_(pa.int64())),
    "struct": lambda: repeat([{"a": 1, "b": "x"}], pa.struct([("a", pa.int64()), ("b", pa.string())])),
    "binary": lambda: repeat([b"\x00\x01"], pa.binary()),
    "large_binary": lambda: repeat([b"abc"], pa.large_binary()),
    "fixed_size_binary": lambda: repeat([b"ab"], pa.binary(2)),
    "dictionary of dates": lambda: repeat([datetime.date(2024, 1, 2)], pa.date32()).dictionary_encode(),
}
"""Types that are neither numbers nor text: refused from the schema, naming the column."""

REFUSED: dict[str, tuple[Callable[[], pa.Array], str]] = {
    "NaN": (lambda: repeat([1.0, float("nan")], pa.float64()), "missing_value"),
    "infinity": (lambda: repeat([1.0, float("-inf")], pa.float64()), "infinite_value"),
    "null-typed": (lambda: pa.nulls(ROWS), "missing_value"),
    "null in ints": (lambda: repeat([1, None], pa.int64()), "missing_value"),
    "cell too long": (lambda: repeat(["1" * 2000], pa.large_string()), "cell_too_long"),
    "dictionary value too long": (
        lambda: repeat(["1" * 2000], pa.dictionary(pa.int32(), pa.string())),
        "cell_too_long",
    ),
}
"""Values refused whatever their type: a 422 with the problem's code (a missing value by a model that
does not take missing values natively, with impute=none)."""

TEXT: dict[str, Callable[[], pa.Array]] = {
    "text": lambda: repeat(["east", "west"], pa.string()),
    "large text": lambda: repeat(["east", "west"], pa.large_string()),
    "dictionary text": lambda: repeat(["east", "west"], pa.dictionary(pa.int8(), pa.string())),
}
"""Text that is not numbers: a category or a 4xx naming the column, as the service decides for text."""


def table_bytes(table: pa.Table, form: str) -> tuple[str, str, bytes]:
    sink = io.BytesIO()
    if form == "parquet":
        pq.write_table(table, sink)
        return "data.parquet", "application/vnd.apache.parquet", sink.getvalue()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return "data.arrows", "application/vnd.apache.arrow.stream", sink.getvalue()


def post_table(client: TestClient, account: Account, table: pa.Table, form: str, **extra: str) -> Response:
    name, content_type, content = table_bytes(table, form)
    params = {key: str(value) for key, value in TINY_GBDT.items()} | extra
    return client.post(
        "/gbdtregression",
        params=params,
        files={"file": (name, content, content_type)},
        headers=account.headers,
    )


def assert_names(response: Response, column: str, code: str) -> None:
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["code"], body["column"]) == (code, column), body
    assert f"'{column}'" in body["detail"]


def feature_table(column: pa.Array) -> pa.Table:
    return pa.table({"x": column, "other": OTHER, "target": TARGET})


def stored(form: str, build: Callable[[], pa.Array]) -> pa.Array:
    """The column, or a skip when the format cannot hold its type."""
    column = build()
    try:
        table_bytes(feature_table(column), form)
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as err:
        pytest.skip(f"{form} cannot hold it: {err}")
    return column


FORMS = ("parquet", "arrow-stream")


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", NUMBERS)
def test_a_number_of_any_width_is_accepted_as_a_feature(
    client: TestClient, alice: Account, form: str, kind: str
) -> None:
    response = post_table(client, alice, feature_table(stored(form, NUMBERS[kind])), form)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    ("kind", "where"),
    [(kind, "x") for kind in UNSUPPORTED]
    + [(kind, "target") for kind in ("timestamp with zone", "list", "binary")],
)
def test_a_type_that_is_neither_numbers_nor_text_is_refused_naming_the_column(
    client: TestClient, alice: Account, form: str, kind: str, where: str
) -> None:
    column = stored(form, UNSUPPORTED[kind])
    table = feature_table(column) if where == "x" else pa.table({"x": OTHER, "target": column})
    response = post_table(client, alice, table, form)
    assert_names(response, where, "unsupported_type")
    assert "convert it" in response.json()["detail"]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", REFUSED)
def test_an_unusable_value_is_refused_naming_the_column(
    client: TestClient, alice: Account, form: str, kind: str
) -> None:
    build, code = REFUSED[kind]
    table = feature_table(stored(form, build))
    response = post_table(client, alice, table, form, model_type="gradientboosting")
    assert_names(response, "x", code)
    if code == "missing_value":
        assert "impute=" in response.json()["detail"]
        assert post_table(client, alice, table, form).status_code == 202, "lightgbm takes missing values"


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("kind", TEXT)
def test_text_that_is_not_numbers_is_answered_without_a_5xx(
    client: TestClient, alice: Account, form: str, kind: str
) -> None:
    response = post_table(client, alice, feature_table(stored(form, TEXT[kind])), form)
    if response.status_code != 202:
        assert response.status_code == 422 and response.json()["column"] == "x", response.text


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize(
    ("target", "code"),
    [
        (pa.array([float("nan")] + [float(i % 3) for i in range(ROWS - 1)]), "missing_value"),
        (pa.array([float("inf")] + [float(i % 3) for i in range(ROWS - 1)]), "infinite_value"),
        (pa.array([None] + [i % 3 for i in range(ROWS - 1)], pa.int64()), "missing_value"),
    ],
    ids=["NaN", "infinity", "null"],
)
def test_a_float_target_with_nan_or_infinity_is_refused_naming_it(
    client: TestClient, alice: Account, form: str, target: pa.Array, code: str
) -> None:
    response = post_table(client, alice, pa.table({"x": OTHER, "target": target}), form)
    assert_names(response, "target", code)
    assert "row 1" in response.json()["detail"]


@pytest.mark.parametrize("form", FORMS)
def test_integer_targets_beyond_float_precision_are_accepted(
    client: TestClient, alice: Account, form: str
) -> None:
    target = repeat([2**53 + 1, 2**64 - 1, 0], pa.uint64())
    response = post_table(client, alice, pa.table({"x": OTHER, "target": target}), form)
    assert response.status_code == 202, response.text


@pytest.mark.parametrize("form", FORMS)
def test_duplicate_column_names_are_refused_naming_the_column(
    client: TestClient, alice: Account, form: str
) -> None:
    table = pa.Table.from_arrays([OTHER, OTHER, TARGET], names=["x", "x", "target"])
    assert_names(post_table(client, alice, table, form), "x", "duplicate_columns")
