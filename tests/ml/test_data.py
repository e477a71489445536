"""CSV validation and train/test splitting (shared/ml/ingest/dataset.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from shared.ml.errors import DataError
from shared.ml.ingest.dataset import _clean_table, _exact_table, read_table
from shared.ml.ingest.upload import load_dataset
from shared.ml.metrics import original_labels
from shared.ml.spec import Limits
from tests.ml.conftest import DATA_DIR, read_data

MALFORMED_DIR = DATA_DIR / "malformed"
EXPECTED = json.loads((MALFORMED_DIR / "expected.json").read_text())


def test_corpus_lists_every_file() -> None:
    on_disk = {path.name for path in MALFORMED_DIR.iterdir()} - {"expected.json"}
    assert on_disk == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(set(EXPECTED) - {"gzipped.csv.gz"}))  # read as the service does
def test_malformed_file_gives_expected_error(name: str) -> None:
    case = EXPECTED[name]
    limits = replace(Limits(), **case.get("limits", {}))
    with pytest.raises(DataError) as caught:
        load_dataset((MALFORMED_DIR / name).read_bytes(), case.get("task", "classification"), 123, limits)
    assert caught.value.code == case["code"]
    assert case["message"] in caught.value.message


@pytest.mark.parametrize(
    ("name", "task", "n_features", "n_rows"),
    [
        ("breast_cancer_dataset2.csv", "classification", 30, 569),
        ("boston_dataset2.csv", "regression", 13, 506),
        ("iris_dataset2.csv", "classification", 4, 150),
        ("wine_dataset2.csv", "classification", 13, 178),
        ("diabetes_dataset2.csv", "regression", 10, 442),
        ("mtcars2.csv", "regression", 10, 32),
    ],
)
def test_sample_files_load_with_their_training_index(
    name: str, task: str, n_features: int, n_rows: int
) -> None:
    content = read_data(name)
    dataset = load_dataset(content, task, 123, Limits())
    frame = pd.read_csv(DATA_DIR / name)
    is_train = frame["training_index"].to_numpy() == 1
    assert dataset.split_source == "training_index"
    assert dataset.X_train.dtype == np.float64
    assert dataset.X_train.shape == (is_train.sum(), n_features)
    assert len(dataset.y_train) + len(dataset.y_test) == n_rows
    assert "training_index" not in dataset.feature_names and "target" not in dataset.feature_names
    features = frame.drop(columns=["target", "training_index"])
    np.testing.assert_array_equal(dataset.X_test, features.to_numpy(dtype=float)[~is_train])


def test_classification_labels_are_sorted_strings_and_codes() -> None:
    content = b"a,target\n" + b"".join(f"{i},{label}\n".encode() for i, label in enumerate("cbacbacbacba"))
    dataset = load_dataset(content, "classification", 1, Limits())
    assert dataset.class_labels == ["a", "b", "c"]
    assert set(dataset.y_train.tolist()) == {0, 1, 2}


def test_numeric_labels_sort_numerically() -> None:
    content = b"a,target\n" + b"".join(f"{i},{label}\n".encode() for i, label in enumerate([10, 2, 1] * 4))
    dataset = load_dataset(content, "classification", 1, Limits())
    assert dataset.class_labels == ["1", "2", "10"]


def test_seeded_split_is_reproducible_and_stratified(breast_cancer: bytes) -> None:
    frame = pd.read_csv(DATA_DIR / "breast_cancer_dataset2.csv").drop(columns=["training_index"])
    content = frame.to_csv(index=False).encode()
    first = load_dataset(content, "classification", 7, Limits())
    again = load_dataset(content, "classification", 7, Limits())
    other = load_dataset(content, "classification", 8, Limits())
    assert first.split_source == "seeded_split"
    np.testing.assert_array_equal(first.X_test, again.X_test)
    assert not np.array_equal(first.X_test, other.X_test)
    assert len(first.y_test) == int(np.ceil(0.3 * len(frame)))
    assert abs(first.y_test.mean() - first.y_train.mean()) < 0.01


def test_booleans_become_numbers_and_bom_is_accepted() -> None:
    content = "\ufeffflag,x,target\nTrue,1,0\nfalse,2,1\n".encode()
    table = read_table(content, Limits())
    assert table["flag"].tolist() == [1.0, 0.0]
    assert table.index.tolist() == [2, 3]


def test_blank_lines_are_skipped_but_counted() -> None:
    content = b"a,target\n1,0\n\n2,x\n"
    with pytest.raises(DataError, match="line 4") as caught:
        load_dataset(content, "regression", 1, Limits())
    assert caught.value.column == "target"


@pytest.mark.parametrize("name", sorted(path.name for path in DATA_DIR.glob("*.csv")))
def test_fast_reader_equals_exact_reader(name: str) -> None:
    text = read_data(name).decode()
    fast = _clean_table(text, text.splitlines()[0].split(","), Limits())
    assert fast is not None
    pd.testing.assert_frame_equal(fast, _exact_table(text, Limits()), check_dtype=False)
    assert fast.index[0] == 2


def test_unusual_but_valid_files_take_the_exact_reader() -> None:
    content = b" a , b ,target\r\n1,True,x\r\n\r\n3, 4 ,y\r\n"
    table = read_table(content, Limits())
    assert list(table.columns) == ["a", "b", "target"]
    assert table["b"].tolist() == [1.0, 4.0] and table["target"].tolist() == ["x", "y"]
    assert table.index.tolist() == [2, 4]


@pytest.mark.process
def test_imports_stay_light() -> None:
    code = (
        "import sys, shared.ml.ingest.dataset, shared.ml.registry; "
        "heavy = {'nnetsauce', 'xgboost', 'lightgbm', 'catboost', 'shap', 'fastapi', 'celery'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert output.stdout.strip() == "[]"


def labelled(labels: list[str], repeats: int = 4) -> bytes:
    rows = [f"{i},{label}" for i, label in enumerate(labels * repeats)]
    return ("\n".join(["a,target", *rows]) + "\n").encode()


def test_labels_are_the_exact_text_large_integers_do_not_merge() -> None:
    dataset = load_dataset(labelled(["9007199254740993", "9007199254740992"]), "classification", 1, Limits())
    assert dataset.class_labels == ["9007199254740992", "9007199254740993"]
    assert sorted(set(dataset.y_train.tolist())) == [0, 1]


def test_labels_equal_as_numbers_but_written_differently_are_distinct_classes() -> None:
    dataset = load_dataset(labelled(["1", "01", "1.0", "2"]), "classification", 1, Limits())
    assert dataset.class_labels == ["01", "1", "1.0", "2"]  # by value, ties by text
    assert sorted(set(dataset.y_train.tolist())) == [0, 1, 2, 3]


def test_mixed_text_and_numbers_sort_as_text() -> None:
    dataset = load_dataset(labelled(["10", "9", "b", "a"]), "classification", 1, Limits())
    assert dataset.class_labels == ["10", "9", "a", "b"]


def test_results_give_labels_back_as_written() -> None:
    assert original_labels(["0", "1", "9007199254740993"]) == [0, 1, 9007199254740993]
    assert original_labels(["01", "1", "1.0"]) == ["01", "1", "1.0"]  # not all plain integers: text
    assert original_labels(["-3", "7"]) == [-3, 7]
    assert original_labels(["+3", "7"]) == ["+3", "7"]
    assert original_labels(["1", str(2**64)]) == ["1", str(2**64)]  # beyond int64: text, never a float


def plain_number_texts() -> list[list[str]]:
    rng = np.random.default_rng(7)
    floats = rng.standard_normal(2000) * 10.0 ** rng.integers(-300, 300, 2000)
    return [
        [repr(float(x)) for x in floats],
        [f"{x:.25g}" for x in rng.standard_normal(500)],  # more digits than a float64 holds
        [str(n) for n in rng.integers(2**53, 2**63, 500)],  # integers a float64 rounds
        ["+1", ".5", "5.", "1E5", "4.9e-324", "2.5e-324", "1.7976931348623157e308", "007", "-3.25"],
        ["18446744073709551616", "-9223372036854775809", "0", "0.0"],
    ]


@pytest.mark.parametrize("texts", plain_number_texts(), ids=["random", "long", "big-int", "forms", "edges"])
def test_numbers_read_fast_are_the_numbers_pandas_reads(texts: list[str]) -> None:
    """A column of plain numbers is read by Arrow's parser (`plain_numbers`), bit for bit what pandas'
    to_numeric reads, signs of zero included."""
    from shared.ml.ingest.columns import plain_numbers, to_float

    values = pd.Series(texts, index=range(2, 2 + len(texts)))
    expected = pd.to_numeric(values).astype(np.float64).to_numpy()
    assert plain_numbers(values) is not None  # the fast path is the one tested
    got = to_float(values, "target").to_numpy()
    assert np.array_equal(got, expected) and np.array_equal(np.signbit(got), np.signbit(expected))


NOT_PLAIN = [["-0", "1.5"], ["1", "nan"], ["1", "inf"], ["1", "true"], ["1", "NA"], ["1", "1_000"], ["1", ""]]


@pytest.mark.parametrize("texts", NOT_PLAIN)
def test_anything_but_plain_numbers_takes_the_checked_path(texts: list[str]) -> None:
    from shared.ml.ingest.columns import plain_numbers

    assert plain_numbers(pd.Series(texts)) is None
