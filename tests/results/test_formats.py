"""shared/results/formats.py: the binary forms of a result hold exactly its JSON's numbers, in the layout
docs/api.md describes."""

from __future__ import annotations

import copy
import io
import json

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from shared.results import formats as results
from tests.contract import explanation
from tests.results.samples import (
    CASES,
    pipeline_result,
    synthetic_regression,
    synthetic_result,
    worker_result,
)

BINARY = [fmt.name for fmt in results.BINARY_FORMATS]


def as_floats(values: list) -> np.ndarray:
    return np.asarray(values, dtype=np.float64)  # None -> NaN, as the binary forms hold it


def same_floats(actual: np.ndarray, expected: np.ndarray) -> None:
    """float64 equality, bit for bit but for NaN = NaN."""
    assert actual.dtype == np.float64 and actual.shape == expected.shape
    assert np.array_equal(actual, expected, equal_nan=True)


@pytest.mark.parametrize("fmt", BINARY)
@pytest.mark.parametrize("case", list(CASES))
def test_every_format_reads_back_as_the_json(case: str, fmt: str) -> None:
    result = pipeline_result(case)
    before = copy.deepcopy(result)
    assert results.to_result(results.encode(result, fmt), fmt) == result
    assert result == before  # encoding leaves the result alone


@pytest.mark.parametrize("case", list(CASES))
def test_a_workers_result_with_arrays_stores_as_its_lists_would(case: str) -> None:
    """A worker keeps the explanations' float arrays as arrays (no Python float per SHAP value): the
    stored JSON and every binary form are byte for byte those of the lists."""
    held, listed = worker_result(case), pipeline_result(case)
    assert any(isinstance(value, np.ndarray) for item in explanations_of(held) for value in item.values())
    assert orjson.dumps(held, option=orjson.OPT_SERIALIZE_NUMPY) == orjson.dumps(listed)
    for fmt in BINARY:
        assert results.encode(held, fmt) == results.encode(listed, fmt)


def test_arrays_with_nulls_store_as_their_lists_would() -> None:
    held, listed = synthetic_result(arrays=True), synthetic_result()
    assert orjson.dumps(held, option=orjson.OPT_SERIALIZE_NUMPY) == orjson.dumps(listed)
    assert b"null" in orjson.dumps(listed)
    for fmt in BINARY:
        assert results.encode(held, fmt) == results.encode(listed, fmt)


def explanations_of(result: dict) -> list[dict]:
    found = result["interpretability"]
    return found if isinstance(found, list) else [found]


@pytest.mark.parametrize("fmt", BINARY)
def test_nulls_string_labels_and_clashing_names_read_back(fmt: str) -> None:
    for result in (synthetic_result(), synthetic_regression()):
        assert results.to_result(results.encode(result, fmt), fmt) == result


def read_parquet(result: dict) -> tuple[pd.DataFrame, dict]:
    data = results.encode(result, "parquet")
    frame = pd.read_parquet(io.BytesIO(data))
    return frame, json.loads(pq.read_schema(io.BytesIO(data)).metadata[b"fitexplain"])


def test_parquet_classification_shap_columns_are_the_json_numbers() -> None:
    result = pipeline_result("classification, shap")
    frame, meta = read_parquet(result)
    shap = result["interpretability"]
    features, n_rows = shap["feature_names"], len(result["y_pred"])
    expected = ["y_true", "y_pred", "proba_0", "proba_1", "test_rows"]
    expected += [f"shap_{name}_{label}" for label in ("0", "1") for name in features]  # class by class
    expected += ["base_value_0", "base_value_1"]
    assert list(frame.columns) == expected and len(frame) == n_rows
    assert frame["y_true"].tolist() == result["y_true"] and frame["y_pred"].tolist() == result["y_pred"]
    proba, values = as_floats(result["proba"]), as_floats(shap["values"])
    for c, label in enumerate(("0", "1")):
        same_floats(frame[f"proba_{label}"].to_numpy(), proba[:, c])
        same_floats(frame[f"base_value_{label}"].to_numpy(), as_floats(shap["base_values"])[:, c])
        for f, name in enumerate(features):
            same_floats(frame[f"shap_{name}_{label}"].to_numpy(), values[:, f, c])
    assert meta["result"]["accuracy"] == result["accuracy"] and meta["result"]["1"] == result["1"]
    assert meta["result"]["interpretability"]["feature_names"] == features
    assert "values" not in meta["result"]["interpretability"] and "y_pred" not in meta["result"]
    assert {"path": ["interpretability", "values"], "shape": [n_rows, len(features), 2]}.items() <= next(
        entry for entry in meta["arrays"] if entry["path"][-1] == "values"
    ).items()


def test_parquet_regression_has_intervals_and_shap_and_keeps_permutation_in_metadata() -> None:
    result = pipeline_result("regression, permutation,shap, intervals")
    frame, meta = read_parquet(result)
    shap = explanation(result, "shap")
    assert list(frame.columns[:4]) == ["y_true", "y_pred", "pi_lower", "pi_upper"]
    for key in ("y_true", "y_pred", "pi_lower", "pi_upper"):
        same_floats(frame[key].to_numpy(), as_floats(result[key]))
    for f, name in enumerate(shap["feature_names"]):
        same_floats(frame[f"shap_{name}"].to_numpy(), as_floats(shap["values"])[:, f])
    same_floats(frame["base_value"].to_numpy(), as_floats(shap["base_values"]))
    permutation = meta["result"]["interpretability"][0]
    assert permutation == explanation(result, "permutation")  # per feature: all in the metadata
    assert (
        meta["result"]["Score"] == result["Score"] and meta["result"]["pi_coverage"] == result["pi_coverage"]
    )


def test_multiclass_interactions_are_one_list_column_with_their_shape() -> None:
    result = pipeline_result("multi-class, shap,permutation, interactions")
    table = pq.read_table(io.BytesIO(results.encode(result, "parquet")))
    shap = explanation(result, "shap")
    interactions = as_floats(shap["interaction_values"])
    _, n_features, _, n_classes = interactions.shape
    assert n_classes == 3 and [f"proba_{c}" for c in range(3)] == table.column_names[2:5]
    assert pa.types.is_fixed_size_list(table.schema.field("shap_interactions").type)
    column = table.column("shap_interactions").combine_chunks().flatten().to_numpy()
    same_floats(column.reshape(interactions.shape), interactions)
    assert len([name for name in table.column_names if name.startswith("shap_")]) == n_features * 3 + 1


def test_npz_holds_every_array_with_its_true_shape() -> None:
    result = pipeline_result("multi-class, shap,permutation, interactions")
    shap, permutation = explanation(result, "shap"), explanation(result, "permutation")
    with np.load(io.BytesIO(results.encode(result, "npz")), allow_pickle=False) as arrays:
        same_floats(arrays["shap_values"], as_floats(shap["values"]))
        same_floats(arrays["shap_base_values"], as_floats(shap["base_values"]))
        same_floats(arrays["shap_interaction_values"], as_floats(shap["interaction_values"]))
        same_floats(arrays["permutation_importances"], as_floats(permutation["importances"]))
        same_floats(arrays["proba"], as_floats(result["proba"]))
        assert arrays["y_pred"].tolist() == result["y_pred"] and arrays["y_pred"].dtype == np.int64
        assert arrays["shap_feature_names"].tolist() == shap["feature_names"]
        meta = json.loads(str(arrays["metadata"]))
    assert meta["result"]["accuracy"] == result["accuracy"]
    assert meta["result"]["interpretability"][0]["explainer"] == shap["explainer"]


def test_null_is_nan_and_clashing_column_names_are_made_unique() -> None:
    result = synthetic_result()
    frame, _ = read_parquet(result)
    assert frame["y_pred"].tolist() == result["y_pred"] and "01" in set(frame["y_true"]) | set(
        frame["y_pred"]
    )
    shap = result["interpretability"][0]
    assert shap["values"][0][0][0] is None and np.isnan(frame["shap_a_no"].iloc[0])
    assert result["proba"][2][1] is None and np.isnan(frame["proba_yes"].iloc[2])
    assert frame.columns.is_unique and {"shap_a_yes_no", "shap_a_yes_no~2"} <= set(frame.columns)
    regression, _ = read_parquet(synthetic_regression())
    assert np.isnan(regression["y_pred"].iloc[1])


@pytest.mark.parametrize("fmt", ["arrow", "arrow-file"])
def test_arrow_reads_with_pyarrow_and_pandas(fmt: str) -> None:
    result = pipeline_result("classification, shap")
    data = results.encode(result, fmt)
    reader = pa.ipc.open_stream if fmt == "arrow" else pa.ipc.open_file
    table = reader(pa.BufferReader(data)).read_all()
    assert (
        table.schema.metadata[b"fitexplain"]
        == pq.read_schema(io.BytesIO(results.encode(result, "parquet"))).metadata[b"fitexplain"]
    )
    if fmt == "arrow-file":  # the Arrow IPC file format is Feather v2
        frame = pd.read_feather(io.BytesIO(data))
        assert frame["y_pred"].tolist() == result["y_pred"]


def test_a_result_without_rows_or_explanations_still_converts() -> None:
    result = {"accuracy": 0.96, "y_pred": [0, 1, 2]}
    for fmt in BINARY:
        assert results.to_result(results.encode(result, fmt), fmt) == result


def test_an_array_of_another_length_than_the_rows_stays_in_the_metadata() -> None:
    result = {"y_true": [1.0, 2.0], "y_pred": [1.5, 2.5], "pi_lower": [0.0]}
    table = results.to_table(result)
    assert table.column_names == ["y_true", "y_pred"]
    assert results.to_result(results.encode(result, "parquet"), "parquet") == result


@pytest.mark.parametrize("fmt", BINARY)
def test_test_rows_ids_and_feature_values_read_back(fmt: str) -> None:
    """`test_rows`, `test_ids` and `X_test` (numbers, categories as text) are columns of the tables."""
    result = synthetic_result(n_rows=4)
    result.update(
        test_rows=[7, 2, 9, 0],
        test_ids=["C7", "C2", "C9", "C0"],
        X_test={"age": [31.0, None, 52.5, 40.0], "region": ["east", "west", "east", "north"]},
    )
    assert results.to_result(results.encode(result, fmt), fmt) == result
    if fmt == "parquet":
        table = pq.read_table(io.BytesIO(results.encode(result, fmt)))
        assert table.column("test_rows").to_pylist() == [7, 2, 9, 0]
        assert table.column("X_test_region").to_pylist() == ["east", "west", "east", "north"]
        assert np.isnan(table.column("X_test_age").to_numpy()[1])
