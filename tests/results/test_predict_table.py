"""A predict result written batch by batch as a table (`shared.results.predict_table`): its JSON, read back
a slice of rows at a time, is byte for byte the JSON of the result scored in one batch; its Parquet and
Arrow forms hold the same numbers; the rows a threshold leaves unexplained are null in every SHAP and
reason column; the columns are those the docs name."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
import pyarrow.parquet as pq
import pytest

from shared.ml.model.kept import KeptModel, kept_from
from shared.ml.model.predict.options import PredictOptions
from shared.ml.model.predict.scoring import read_batches, score
from shared.ml.pipeline import prepare
from shared.ml.spec import JobSpec, Limits, ModelSpec
from shared.results import predict_table
from shared.results.formats import to_result
from tests.canonical import canonical
from tests.ml.conftest import read_data

CUSTOMERS = read_data("tables/customers.csv")
BOSTON = read_data("boston_dataset2.csv")


def kept_of(table: bytes, model: ModelSpec, **spec: object) -> KeptModel:
    return kept_from(prepare(canonical(table), JobSpec(model=model, **spec), Limits()))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def customers() -> KeptModel:
    """A classifier with categorical features (region, plan) that it takes natively."""
    model = ModelSpec(task="classification", family="gbdt", model_type="xgboost", n_estimators=15)
    return kept_of(CUSTOMERS, model, target="churned", id_column="customer_id")


@pytest.fixture(scope="module")
def boston() -> KeptModel:
    model = ModelSpec(task="regression", family="gbdt", model_type="xgboost", n_estimators=15)
    return kept_of(BOSTON, model, return_pi=True)


def customer_rows() -> bytes:
    """New customers: numeric ids, a category never seen in training, missing values."""
    frame = pd.read_csv(io.BytesIO(CUSTOMERS)).drop(columns=["churned"])
    frame["customer_id"] = np.arange(len(frame)) * 10
    frame.loc[[3, 40], "region"] = "mars"
    frame.loc[[5, 6], "income"] = None
    frame.loc[7, "plan"] = None
    return canonical(frame.to_csv(index=False).encode())


def boston_rows() -> bytes:
    frame = pd.read_csv(io.BytesIO(BOSTON)).drop(columns=["target", "training_index"])
    frame["row"] = [f"r{i}" for i in range(len(frame))]
    return canonical(frame.to_csv(index=False).encode())


def one_batch_json(kept: KeptModel, source: bytes, options: PredictOptions) -> bytes:
    """The result scored in one batch, as the worker stores its JSON."""
    result = score(kept, read_batches(source), options, extra_columns=["note"], arrays=True)
    return orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY)


def written(kept: KeptModel, source: bytes, options: PredictOptions, path: Path, batch_rows: int) -> Path:
    predict_table.score_to_table(
        kept, read_batches(source, batch_rows), options, path, extra_columns=["note"]
    )
    return path


def streamed_json(path: Path) -> bytes:
    with path.open("rb") as source:
        return b"".join(predict_table.parquet_json_pieces(source))


def arrow_bytes(path: Path, file_format: bool) -> bytes:
    return b"".join(predict_table.arrow_pieces(path.open("rb"), file_format=file_format))


CASES = [
    ("customers", PredictOptions(interpretability="shap", top_n=3, id_column="customer_id")),
    ("customers", PredictOptions(interpretability="shap", top_n=2, threshold=0.5, id_column="customer_id")),
    ("customers", PredictOptions(interpretability="shap", threshold=1.0)),  # no row crosses it
    ("customers", PredictOptions()),
    ("boston", PredictOptions(interpretability="shap", top_n=20, return_pi=True, id_column="row")),
    ("boston", PredictOptions(interpretability="shap", top_n=0, threshold=25.0, below=True)),
]


@pytest.mark.parametrize(("name", "options"), CASES)
def test_a_table_of_many_batches_reads_back_as_the_one_batch_json(
    name: str, options: PredictOptions, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    kept: KeptModel = request.getfixturevalue(name)
    source = customer_rows() if name == "customers" else boston_rows()
    expected = one_batch_json(kept, source, options)
    path = written(kept, source, options, tmp_path / "result.parquet", batch_rows=37)
    assert pq.ParquetFile(path).metadata.num_row_groups == -(
        -pq.read_metadata(io.BytesIO(source)).num_rows // 37
    )
    assert streamed_json(path) == expected
    result = orjson.loads(expected)
    assert to_result(path.read_bytes(), "parquet") == result
    assert to_result(arrow_bytes(path, file_format=False), "arrow") == result
    assert to_result(arrow_bytes(path, file_format=True), "arrow-file") == result


def test_one_batch_and_many_batches_make_the_same_table(customers: KeptModel, tmp_path: Path) -> None:
    options = PredictOptions(interpretability="shap", threshold=0.3, id_column="customer_id")
    source = customer_rows()
    many = pq.read_table(written(customers, source, options, tmp_path / "many.parquet", batch_rows=50))
    one = pq.read_table(written(customers, source, options, tmp_path / "one.parquet", batch_rows=10_000))
    assert many.schema == one.schema and many.schema.metadata == one.schema.metadata
    assert many.to_pandas().equals(one.to_pandas())  # NaN (a reason's missing value) equal to NaN


def test_rows_a_threshold_leaves_unexplained_are_null_in_every_shap_and_reason_column(
    customers: KeptModel, tmp_path: Path
) -> None:
    options = PredictOptions(interpretability="shap", top_n=2, threshold=0.5, id_column="customer_id")
    source = customer_rows()
    table = pq.read_table(written(customers, source, options, tmp_path / "result.parquet", batch_rows=64))
    result = orjson.loads(one_batch_json(customers, source, options))
    explained = np.asarray(table.column("explained").to_numpy(zero_copy_only=False))
    assert 0 < explained.sum() < len(explained)
    assert np.flatnonzero(explained).tolist() == result["explained_rows"]
    filled = [name for name in table.column_names if name.startswith(("shap_", "base_value", "reason_"))]
    assert len(filled) == 2 * 6 + 2 + 2 * 4  # features x classes, base values, 4 columns a reason
    for name in filled:
        nulls = table.column(name).is_null().to_numpy(zero_copy_only=False)
        assert nulls[~explained].all(), name  # null, not 0 or NaN, where no row was explained
        if not name.endswith("_category"):  # a category only where the reason's feature is categorical
            assert not nulls[explained].any(), name
    values = np.asarray(result["interpretability"]["values"])  # explained rows x features x classes
    frame = table.to_pandas()
    names = result["interpretability"]["feature_names"]
    rows = np.flatnonzero(explained)
    for f, feature in enumerate(names):
        for c, label in enumerate(result["interpretability"]["class_labels"]):
            np.testing.assert_array_equal(frame[f"shap_{feature}_{label}"].to_numpy()[rows], values[:, f, c])
    first = result["reasons"][0]
    assert frame.loc[rows[0], "reason_1_feature"] == first[0]["feature"]
    assert frame.loc[rows[0], "reason_2_contribution"] == first[1]["contribution"]


def test_the_columns_and_metadata_are_the_documented_ones(customers: KeptModel, tmp_path: Path) -> None:
    options = PredictOptions(interpretability="shap", top_n=1, id_column="customer_id")
    path = written(customers, customer_rows(), options, tmp_path / "result.parquet", batch_rows=100)
    schema = pq.read_schema(path)
    features = ["age", "income", "tenure_months", "member", "region", "plan"]
    assert schema.names == [
        "y_pred",
        "proba_no",
        "proba_yes",
        "ids",
        *(f"shap_{feature}_no" for feature in features),
        *(f"shap_{feature}_yes" for feature in features),
        "base_value_no",
        "base_value_yes",
        "explained",
        "reason_1_feature",
        "reason_1_value",
        "reason_1_category",
        "reason_1_contribution",
    ]
    assert [str(schema.field(name).type) for name in ("y_pred", "ids", "explained", "reason_1_feature")] == [
        "string",
        "double",
        "bool",
        "string",
    ]
    meta = orjson.loads(schema.metadata[b"fitexplain"])
    assert (meta["layout"], meta["version"], meta["n_rows"]) == ("fitexplain-predict", 1, 120)
    assert list(meta["result"]) == [
        "y_pred",
        "proba",
        "class_labels",
        "ids",
        "interpretability",
        "explained_rows",
        "reasons",
        "unseen_categories",
        "extra_columns",
    ]
    assert meta["result"]["y_pred"] is None and meta["result"]["interpretability"]["values"] is None
    assert meta["result"]["unseen_categories"] == {"region": 2}
    values = next(entry for entry in meta["arrays"] if entry["path"] == ["interpretability", "values"])
    assert values["shape"] == [120, 6, 2] and values["rows"] == "explained"
    assert values["columns"][:2] == ["shap_age_no", "shap_age_yes"]  # the array's own (C) order
