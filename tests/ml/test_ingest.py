"""Uploads in every accepted format, read once into the canonical Parquet file (shared.ml.ingest.upload)."""

from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.ml.errors import DataError
from shared.ml.ingest.dataset import Dataset, load_checks, load_source
from shared.ml.ingest.upload import ACCEPTED, ingest, load_dataset
from shared.ml.spec import Limits
from tests.ml.conftest import DATA_DIR

MALFORMED_DIR = DATA_DIR / "malformed"
EXPECTED = json.loads((MALFORMED_DIR / "expected.json").read_text())
FORMATS = ("csv", "csv.gz", "parquet", "arrow", "arrow-stream")


def write_as(frame: pd.DataFrame, csv: bytes, kind: str, directory: Path) -> Path:
    """The same table in one of the accepted formats (CSV ones keep the file's exact text)."""
    path = directory / f"upload.{kind}"
    if kind == "csv":
        path.write_bytes(csv)
    elif kind == "csv.gz":
        path.write_bytes(gzip.compress(csv))
    elif kind == "parquet":
        frame.to_parquet(path, index=False)
    else:
        table = pa.Table.from_pandas(frame, preserve_index=False)
        new = pa.ipc.new_file if kind == "arrow" else pa.ipc.new_stream
        with new(path, table.schema) as writer:
            writer.write_table(table)
    return path


def ingest_as(
    frame: pd.DataFrame, csv: bytes, kind: str, tmp_path: Path, limits: Limits | None = None
) -> Path:
    ingested = ingest(
        write_as(frame, csv, kind, tmp_path), tmp_path / "canonical.parquet", limits or Limits()
    )
    assert ingested.format == kind
    return ingested.path


def assert_same(left: Dataset, right: Dataset) -> None:
    for name in ("X_train", "X_test", "y_train", "y_test"):
        np.testing.assert_array_equal(getattr(left, name), getattr(right, name))
        assert getattr(left, name).dtype == getattr(right, name).dtype
    assert (left.feature_names, left.class_labels, left.split_source) == (
        right.feature_names,
        right.class_labels,
        right.split_source,
    )


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize(
    ("name", "task", "drop_index"),
    [
        ("iris_dataset2.csv", "classification", False),
        ("boston_dataset2.csv", "regression", False),
        ("breast_cancer_dataset2.csv", "classification", True),  # the seeded, stratified split
    ],
)
def test_every_format_of_the_same_data_gives_the_csv_dataset(
    tmp_path: Path, kind: str, name: str, task: str, drop_index: bool
) -> None:
    frame = pd.read_csv(DATA_DIR / name, dtype={"target": str, "training_index": str})
    if drop_index:
        frame = frame.drop(columns=["training_index"])
    csv = frame.to_csv(index=False).encode() if drop_index else (DATA_DIR / name).read_bytes()
    canonical = ingest_as(frame, csv, kind, tmp_path)
    assert_same(load_source(canonical, task, 7, Limits()), load_dataset(csv, task, 7, Limits()))
    assert_same(load_source(canonical.read_bytes(), task, 7, Limits()), load_dataset(csv, task, 7, Limits()))


@pytest.mark.parametrize(("task", "with_index"), [("regression", True), ("classification", False)])
def test_features_gathered_across_row_groups_are_the_tables_rows(
    tmp_path: Path, task: str, with_index: bool
) -> None:
    """A large upload's canonical file has many row groups: X_train and X_test, gathered column by
    column straight from them, are the rows of the whole table as a DataFrame would split them."""
    from shared.ml.ingest.canonical import CanonicalWriter, read_table
    from shared.ml.ingest.dataset import dataset_from_table

    rng = np.random.default_rng(3)
    n_rows, header = 90, ["x0", "x1", "x2", "target", *(["training_index"] if with_index else [])]
    features = rng.standard_normal((n_rows, 3))
    target = (
        rng.integers(0, 3, n_rows).astype(str) if task == "classification" else features[:, 0].astype(str)
    )
    path = tmp_path / "groups.parquet"
    with CanonicalWriter(path, header, "line") as writer:
        for start in range(0, n_rows, 25):  # one row group per write: 4 of them
            rows = slice(start, min(start + 25, n_rows))
            columns = {f"x{j}": pa.array(features[rows, j]) for j in range(3)}
            columns["target"] = pa.array(target[rows])
            if with_index:
                columns["training_index"] = pa.array(np.where(np.arange(n_rows)[rows] % 4 == 0, "0", "1"))
            writer.write(columns, np.arange(rows.start + 2, rows.stop + 2))
    assert pq.ParquetFile(path).num_row_groups == 4
    whole = dataset_from_table(read_table(path), task, 11, Limits())  # the table as one DataFrame
    assert_same(load_source(path, task, 11, Limits()), whole)
    assert_same(load_source(path.read_bytes(), task, 11, Limits()), whole)


def test_numeric_and_boolean_columns_of_parquet_are_read_as_their_csv_text(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "a": [1, 2, 3, 4, 5, 6, 7, 8],
            "flag": [True, False] * 4,
            "target": [0, 1] * 4,
            "training_index": [1] * 6 + [0] * 2,
        }
    )
    csv = b"a,flag,target,training_index\n" + b"".join(
        f"{a},{flag},{target},{index}\n".encode() for a, flag, target, index in frame.itertuples(index=False)
    )
    canonical = ingest_as(frame, csv, "parquet", tmp_path)
    assert_same(
        load_source(canonical, "classification", 1, Limits()),
        load_dataset(csv, "classification", 1, Limits()),
    )


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - {"gzipped.csv.gz"}))
def test_a_malformed_csv_gives_the_error_of_today(tmp_path: Path, name: str) -> None:
    case = EXPECTED[name]
    limits = replace(Limits(), **case.get("limits", {}))
    task = case.get("task", "classification")
    with pytest.raises(DataError) as caught:
        canonical = ingest(MALFORMED_DIR / name, tmp_path / "canonical.parquet", limits).path
        load_source(canonical, task, 123, limits)
    assert caught.value.code == case["code"]
    assert case["message"] in caught.value.message


def test_a_gzipped_csv_is_read_by_its_magic_bytes_whatever_its_name(tmp_path: Path) -> None:
    plain = gzip.decompress((MALFORMED_DIR / "gzipped.csv.gz").read_bytes())
    path = tmp_path / "data.csv"
    path.write_bytes((MALFORMED_DIR / "gzipped.csv.gz").read_bytes())
    ingested = ingest(
        path, tmp_path / "canonical.parquet", Limits(), filename="data.csv", content_type="text/csv"
    )
    assert ingested.format == "csv.gz"
    pd.testing.assert_frame_equal(
        pq.read_table(ingested.path).to_pandas().drop(columns=[""]),
        pd.read_csv(path, compression="gzip", dtype={"target": str}).astype({"a": float, "b": float}),
    )
    assert plain.startswith(b"a,b,target")


def big_csv(n_rows: int, bad_line: int | None = None, bad_value: str = "oops") -> bytes:
    """About 80 bytes a row; line `bad_line` (the header is line 1) gets `bad_value` in column x3."""
    rng = np.random.default_rng(0)
    values = rng.normal(size=(n_rows, 6)).round(12)
    rows = [",".join(map(str, row)) + f",{i % 2}" for i, row in enumerate(values)]
    if bad_line is not None:
        cells = rows[bad_line - 2].split(",")
        cells[3] = bad_value
        rows[bad_line - 2] = ",".join(cells)
    return ("\n".join(["x0,x1,x2,x3,x4,x5,target", *rows]) + "\n").encode()


@pytest.mark.parametrize(
    ("bad_value", "code"), [("oops", "non_numeric"), ("", "missing_value"), ("inf", "infinite_value")]
)
def test_a_bad_value_after_the_first_megabyte_names_its_line_and_column(
    tmp_path: Path, bad_value: str, code: str
) -> None:
    csv = big_csv(30_000, bad_line=25_000, bad_value=bad_value)
    assert csv.index(b"\n".join(csv.split(b"\n")[24_999:25_000])) > 1_000_000
    path = tmp_path / "big.csv"
    path.write_bytes(csv)
    with pytest.raises(DataError) as caught:  # text and missing values are kept, refused by the checks
        ingested = ingest(path, tmp_path / "canonical.parquet", Limits())
        load_checks(ingested.labels, "classification", 1, Limits())
    assert (caught.value.code, caught.value.column) == (code, "x3")
    assert "line 25000" in caught.value.message
    with pytest.raises(DataError) as today:
        load_dataset(csv, "classification", 1, Limits())
    assert (today.value.code, today.value.message) == (caught.value.code, caught.value.message)


def test_a_large_clean_csv_equals_todays_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("shared.ml.ingest.from_csv.CSV_BLOCK_BYTES", 1 << 18)
    csv = big_csv(30_000)
    path = tmp_path / "big.csv"
    path.write_bytes(csv)
    ingested = ingest(path, tmp_path / "canonical.parquet", Limits())
    assert (ingested.n_rows, ingested.n_columns) == (30_000, 6)
    assert pq.ParquetFile(ingested.path).metadata.num_row_groups > 1  # written batch by batch
    assert_same(
        load_source(ingested.path, "classification", 3, Limits()),
        load_dataset(csv, "classification", 3, Limits()),
    )


def test_blank_lines_keep_line_numbers_in_later_errors(tmp_path: Path) -> None:
    """Blank lines and booleans take the exact reader; a training_index error still names its line."""
    path = tmp_path / "data.csv"
    path.write_bytes(b"a,flag,target,training_index\n1,True,0,1\n\n2,false,1,1\n3,true,0,2\n")
    canonical = ingest(path, tmp_path / "canonical.parquet", Limits()).path
    with pytest.raises(DataError, match="'2' on line 5"):
        load_source(canonical, "classification", 1, Limits())


@pytest.mark.parametrize("kind", FORMATS)
def test_a_missing_value_in_any_format_names_its_column(tmp_path: Path, kind: str) -> None:
    frame = pd.DataFrame(
        {"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, None, 3.0, 4.0], "target": ["0", "1", "0", "1"]}
    )
    csv = frame.to_csv(index=False).encode()
    path = ingest_as(frame, csv, kind, tmp_path)  # kept as NaN: the request decides
    for check in (load_checks, load_source):
        with pytest.raises(DataError) as caught:
            check(path, "classification", 1, Limits())
        assert (caught.value.code, caught.value.column) == ("missing_value", "b")
        assert ("line 3" if kind.startswith("csv") else "row 2") in caught.value.message
        assert "impute=median" in caught.value.message


@pytest.mark.parametrize("kind", ["parquet", "arrow", "arrow-stream"])
def test_a_missing_target_in_a_columnar_file_names_its_row(tmp_path: Path, kind: str) -> None:
    frame = pd.DataFrame({"a": [1.0, 2.0, 3.0], "target": ["x", None, "y"]})
    with pytest.raises(DataError) as caught:
        ingest_as(frame, b"", kind, tmp_path)
    assert (caught.value.code, caught.value.column) == ("missing_value", "target")
    assert "row 2" in caught.value.message


def test_a_text_feature_in_parquet_is_checked_as_csv_text(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": ["1", " 2 ", "abc"], "target": ["x", "y", "x"]})
    path = ingest_as(frame, b"", "parquet", tmp_path)  # kept as text: the request decides
    for check in (load_checks, load_source):
        with pytest.raises(DataError, match="non-numeric value 'abc' on row 3") as caught:
            check(path, "classification", 1, Limits())
        assert caught.value.column == "a"
        assert "id_column=a" in caught.value.message


def test_a_truncated_parquet_file_is_a_data_error(tmp_path: Path) -> None:
    frame = pd.read_csv(DATA_DIR / "iris_dataset2.csv")
    whole = write_as(frame, b"", "parquet", tmp_path)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(DataError) as caught:
        ingest(cut, tmp_path / "canonical.parquet", Limits())
    assert caught.value.code == "bad_parquet" and "Parquet" in caught.value.message


def test_a_truncated_gzip_file_is_a_data_error(tmp_path: Path) -> None:
    packed = gzip.compress(big_csv(5_000))
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(DataError) as caught:
        ingest(cut, tmp_path / "canonical.parquet", Limits())
    assert caught.value.code == "bad_gzip"


def test_an_unknown_binary_names_the_accepted_formats(tmp_path: Path) -> None:
    path = tmp_path / "book.xlsx"
    path.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(DataError) as caught:
        ingest(path, tmp_path / "canonical.parquet", Limits(), filename="book.xlsx")
    assert caught.value.code == "unsupported_format" and ACCEPTED in caught.value.message


def test_a_csv_sent_as_parquet_is_refused_naming_the_format(tmp_path: Path) -> None:
    path = tmp_path / "data.parquet"
    path.write_bytes((DATA_DIR / "iris_dataset2.csv").read_bytes())
    with pytest.raises(DataError) as caught:
        ingest(path, tmp_path / "canonical.parquet", Limits(), filename="data.parquet")
    assert caught.value.code == "bad_parquet" and "Parquet" in caught.value.message


@pytest.mark.parametrize("kind", ["parquet", "arrow"])
def test_columnar_limits_name_the_limit(tmp_path: Path, kind: str) -> None:
    frame = pd.DataFrame({"a": np.arange(10.0), "b": np.arange(10.0), "target": ["0", "1"] * 5})
    with pytest.raises(DataError, match="max_rows"):
        ingest_as(frame, b"", kind, tmp_path, replace(Limits(), max_rows=5))
    with pytest.raises(DataError, match="max_columns"):
        ingest_as(frame, b"", kind, tmp_path, replace(Limits(), max_columns=2))


@pytest.mark.parametrize(
    ("name", "task"), [("iris_dataset2.csv", "classification"), ("boston_dataset2.csv", "regression")]
)
def test_the_submit_checks_see_the_split_without_the_feature_values(
    tmp_path: Path, name: str, task: str
) -> None:
    frame = pd.read_csv(DATA_DIR / name).drop(columns=["training_index"])
    csv = frame.to_csv(index=False).encode()
    canonical = ingest_as(frame, csv, "csv", tmp_path)
    checks, full = load_checks(canonical, task, 5, Limits()), load_source(canonical, task, 5, Limits())
    for name in ("y_train", "y_test"):
        np.testing.assert_array_equal(getattr(checks, name), getattr(full, name))
    assert (checks.X_train.shape, checks.X_test.shape) == (full.X_train.shape, full.X_test.shape)
    assert checks.X_train.strides == (0, 0)  # no feature values held
    assert (checks.feature_names, checks.class_labels) == (full.feature_names, full.class_labels)


@pytest.mark.parametrize("kind", [*FORMATS, "csv exact"])
def test_the_labels_kept_while_writing_give_the_checks_of_the_file_read_back(
    tmp_path: Path, kind: str
) -> None:
    """The submit checks read the labels the canonical writer kept, not the file: the same dataset.
    "csv exact" has a blank line, which the fast CSV reader leaves to the exact one (after writing a
    part of the file itself: the labels are the second writer's)."""
    frame = pd.read_csv(DATA_DIR / "wine_dataset2.csv")
    csv = frame.to_csv(index=False).encode()
    if kind == "csv exact":
        csv = csv.replace(b"\n", b"\n\n", 1)
    ingested = ingest(write_as(frame, csv, kind.split()[0], tmp_path), tmp_path / "c.parquet", Limits())
    assert ingested.n_rows == len(frame)
    from_labels = load_checks(ingested.labels, "classification", 3, Limits())
    from_file = load_checks(ingested.path, "classification", 3, Limits())
    assert_same(from_labels, from_file)
    assert from_labels.split_source == "training_index"
