"""SHAP's background: the explainers that take one use exactly the rows given (a seeded sample of N training
rows, or an uploaded file's rows in model space), their values still add up to the model's output, and the
result, the kept model and a predict job record which rows they were; path-dependent TreeSHAP takes none
and says so."""

from __future__ import annotations

import io
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shared.ml.errors import DataError, LimitExceeded, ParameterError
from shared.ml.explain import background as backgrounds
from shared.ml.ingest.canonical import read_labels
from shared.ml.ingest.upload import ingest
from shared.ml.model.background_file import check_background, feature_columns, read_background
from shared.ml.model.card import background_of
from shared.ml.model.kept import kept_from
from shared.ml.model.predict.background import with_background
from shared.ml.model.predict.scoring import explain_rows
from shared.ml.model.schema import features_of
from shared.ml.pipeline import prepare, run
from shared.ml.spec import BackgroundSpec, JobSpec, Limits, ModelSpec
from tests.canonical import canonical
from tests.ml.conftest import DATA_DIR

HOUSES = DATA_DIR / "tables" / "houses.csv"
ROLES = {"target": "price", "id_column": "house_id"}
# nnetsauce over ElasticNet, four features (one categorical, imputed): exact interventional SHAP.
NNETSAUCE = ModelSpec(task="regression", family="ml", n_hidden_features=3, impute="median", seed=11)
XGBOOST = ModelSpec(task="regression", family="gbdt", model_type="xgboost", n_estimators=10, seed=11)
FEATURES = ["rooms", "area_m2", "neighbourhood", "built"]
SHA256 = "ab" * 32


def spec(model: ModelSpec = NNETSAUCE, **changes: Any) -> JobSpec:
    return JobSpec(model=model, interpretability=("shap",), **ROLES, **changes)  # type: ignore[arg-type]


def kept_columns(csv: bytes, features: list[str] | None = FEATURES) -> tuple[bytes | None, Any]:
    """A background file as the API keeps it (its feature columns, when it has them all), and its labels
    (for the checks)."""
    with tempfile.TemporaryDirectory() as folder:
        sent = Path(folder) / "background"  # CSV, or Parquet by its first bytes
        sent.write_bytes(csv)
        ingested = ingest(sent, Path(folder) / "canonical.parquet", Limits())
        kept = feature_columns(ingested.path, features) if features is not None else None
        return kept, read_labels(ingested.path)


def background_csv(test_positions: list[int], prepared_rows: np.ndarray) -> bytes:
    """Rows of the upload (the fit's test rows `prepared_rows[test_positions]`) as a background file: its
    columns reordered, the target dropped, a column the model never saw added."""
    frame = pd.read_csv(HOUSES).iloc[prepared_rows[test_positions]].assign(note="x")
    return (
        frame[["built", "note", "house_id", "neighbourhood", "area_m2", "rooms"]].to_csv(index=False).encode()
    )


def test_sample_n_gives_n_training_rows_drawn_by_the_seed() -> None:
    X = np.arange(200, dtype=float).reshape(100, 2)
    first = backgrounds.training_sample(X, 7, seed=5)
    assert first.rows.shape == (7, 2)
    assert first.record == {"source": "sample", "rows": 7, "seed": 5}
    chosen = np.sort(np.random.default_rng(5).choice(100, size=7, replace=False))
    np.testing.assert_array_equal(first.rows, X[chosen])  # a Generator(seed), rows in their order
    np.testing.assert_array_equal(backgrounds.training_sample(X, 7, seed=5).rows, first.rows)
    assert not np.array_equal(backgrounds.training_sample(X, 7, seed=6).rows, first.rows)
    every = backgrounds.training_sample(X, 500, seed=5)  # no more rows than there are
    assert every.rows is X and every.record == {"source": "sample", "rows": 100, "seed": 5}


def test_the_fit_explains_against_exactly_n_sampled_rows_and_still_adds_up() -> None:
    source = canonical(HOUSES.read_bytes())
    asked = spec(background=BackgroundSpec("sample", 9))
    prepared = prepare(source, asked, Limits(), n_threads=1)
    result = run(source, asked, Limits(), n_threads=1)
    shap = result["interpretability"]
    assert shap["background"] == {"source": "sample", "rows": 9, "seed": 11}
    X_train = prepared.dataset.X_train
    rows = X_train[np.sort(np.random.default_rng(11).choice(X_train.shape[0], size=9, replace=False))]
    # Interventional SHAP's base value is the model's mean output over the background rows it was given.
    expected_base = prepared.model.predict(rows).mean()
    np.testing.assert_allclose(shap["base_values"], expected_base, rtol=1e-12)
    total = np.asarray(shap["values"]).sum(axis=1) + np.asarray(shap["base_values"])
    np.testing.assert_allclose(total, result["y_pred"], rtol=1e-9)
    assert shap["explainer"] == "exact" and "against 9 background rows" in shap["notes"]
    default = run(source, spec(), Limits(), n_threads=1)["interpretability"]["background"]
    assert default == {"source": "sample", "rows": X_train.shape[0], "seed": 11}  # fewer than 500 rows


def test_the_fit_explains_against_exactly_the_uploaded_rows_in_model_space() -> None:
    source = canonical(HOUSES.read_bytes())
    prepared = prepare(source, spec(), Limits(), n_threads=1)
    assert prepared.dataset.test_rows is not None
    positions = [0, 2, 3, 5, 7, 13]  # test row 7 is the upload's row 2, whose area is missing
    sent = background_csv(positions, prepared.dataset.test_rows)
    assert b",hills,,4\n" in sent
    kept, _ = kept_columns(sent)
    asked = spec(background=BackgroundSpec("upload", len(positions), SHA256))
    result = run(source, asked, Limits(), n_threads=1, background=kept)
    shap = result["interpretability"]
    assert shap["background"] == {"source": "upload", "rows": 6, "sha256": SHA256}
    # The file's rows are test rows of the upload: in model space they are those rows of X_test
    # (categories as their training codes, the missing area imputed with the training median).
    rows = prepared.dataset.X_test[positions]
    np.testing.assert_allclose(shap["base_values"], prepared.model.predict(rows).mean(), rtol=1e-12)
    total = np.asarray(shap["values"]).sum(axis=1) + np.asarray(shap["base_values"])
    np.testing.assert_allclose(total, result["y_pred"], rtol=1e-9)
    with_file = prepare(source, asked, Limits(), n_threads=1, background=kept)
    np.testing.assert_array_equal(kept_from(with_file).background, rows)
    card = background_of(kept_from(with_file))
    assert card is not None
    assert {key: card[key] for key in ("rows", "features", "source", "sha256")} == {
        "rows": 6,
        "features": 4,
        "source": "upload",
        "sha256": SHA256,
    }
    assert card["description"].startswith("6 rows of an uploaded background file")


def test_the_kept_model_records_its_sample_on_the_card() -> None:
    prepared = prepare(canonical(HOUSES.read_bytes()), spec(), Limits(), n_threads=1)
    card = background_of(kept_from(prepared, Limits(max_background_rows=20)))
    assert card is not None
    assert card["rows"] == 20 and card["features"] == 4
    assert (card["source"], card["seed"]) == ("sample", 11)
    assert set(card) == {"rows", "features", "description", "source", "seed"}


def test_treeshap_takes_no_background_and_says_so_when_one_was_asked() -> None:
    source = canonical(HOUSES.read_bytes())
    plain = run(source, spec(XGBOOST), Limits(), n_threads=1)["interpretability"]
    assert plain["background"] == {"source": "none", "rows": 0, "asked": None}
    asked = run(source, spec(XGBOOST, background=BackgroundSpec("sample", 5)), Limits(), n_threads=1)
    shap = asked["interpretability"]
    assert shap["background"] == {"source": "none", "rows": 0, "asked": {"source": "sample", "rows": 5}}
    assert shap["notes"] == (
        f"{plain['notes']} The background asked for (sample:5) was not used: path-dependent TreeSHAP takes "
        "none."
    )
    np.testing.assert_array_equal(shap["values"], plain["values"])
    uploaded = spec(XGBOOST, background=BackgroundSpec("upload", 3, SHA256))
    sent, _ = kept_columns(
        b"rooms,area_m2,neighbourhood,built\n3,70,hills,1990\n4,80,old town,1950\n5,90,hills,2000\n"
    )
    record = run(source, uploaded, Limits(), n_threads=1, background=sent)["interpretability"]
    assert record["background"] == {
        "source": "none",
        "rows": 0,
        "asked": {"source": "upload", "rows": 3, "sha256": SHA256},
    }
    assert record["notes"].endswith(
        "(an uploaded file of 3 rows) was not used: path-dependent TreeSHAP takes none."
    )
    assert kept_from(prepare(source, spec(XGBOOST), Limits(), n_threads=1)).background is None


def test_a_predict_job_samples_the_kept_background_or_takes_an_uploaded_one() -> None:
    source = canonical(HOUSES.read_bytes())
    prepared = prepare(source, spec(), Limits(), n_threads=1)
    kept = kept_from(prepared)
    assert kept.background_used() == {"source": "sample", "rows": kept.background.shape[0], "seed": 11}
    new_rows = prepared.dataset.X_test[:4]

    sampled = with_background(kept, BackgroundSpec("sample", 8))
    chosen = np.sort(np.random.default_rng(11).choice(kept.background.shape[0], size=8, replace=False))
    np.testing.assert_array_equal(sampled.background, kept.background[chosen])
    assert sampled.background_used() == {
        "source": "sample",
        "rows": 8,
        "seed": 11,
        "drawn_from": kept.background_used(),
    }
    assert sampled.model is kept.model and kept.background.shape[0] > 8  # the kept model is unchanged
    shap = explain_rows(sampled, new_rows, np.arange(4))
    np.testing.assert_allclose(shap.base_values, kept.model.predict(sampled.background).mean(), rtol=1e-12)
    total = shap.values.sum(axis=1) + shap.base_values
    np.testing.assert_allclose(total, kept.predict(new_rows), rtol=1e-9)
    assert shap.background == sampled.background_used()
    whole = with_background(kept, BackgroundSpec("sample", 500))  # no more rows than it holds: all of them
    assert whole.background is kept.background and whole.background_used() == kept.background_used()

    assert prepared.dataset.test_rows is not None
    positions = [1, 4, 6]
    kept_bytes, _ = kept_columns(background_csv(positions, prepared.dataset.test_rows))
    uploaded = with_background(kept, BackgroundSpec("upload", 3, SHA256), read_background(kept_bytes))
    np.testing.assert_array_equal(uploaded.background, prepared.dataset.X_test[positions])
    shap = explain_rows(uploaded, new_rows, np.arange(4))
    assert shap.background == {"source": "upload", "rows": 3, "sha256": SHA256}
    np.testing.assert_allclose(shap.base_values, kept.model.predict(uploaded.background).mean(), rtol=1e-12)

    tree = kept_from(prepare(source, spec(XGBOOST), Limits(), n_threads=1))
    unused = with_background(tree, BackgroundSpec("sample", 8))
    shap = explain_rows(unused, new_rows, np.arange(4))
    assert shap.background == {"source": "none", "rows": 0, "asked": {"source": "sample", "rows": 8}}
    assert shap.notes.endswith(
        "The background asked for (sample:8) was not used: path-dependent TreeSHAP takes none."
    )


@pytest.mark.parametrize(
    "text", ["sample", "sample:", "sample:0", "sample:-3", "sample:2.5", "rows:10", "10"]
)
def test_a_malformed_background_names_the_parameter(text: str) -> None:
    with pytest.raises(ParameterError, match="background must be sample:N") as caught:
        BackgroundSpec.parse(text)
    assert caught.value.code == "bad_parameter"


def test_a_background_over_the_limit_names_the_limit() -> None:
    assert BackgroundSpec.parse(" sample:40 ") == BackgroundSpec("sample", 40)
    BackgroundSpec("sample", 40).check(Limits(max_background_rows=40))
    with pytest.raises(LimitExceeded, match="sample:41 asks for 41 rows, more than max_background_rows = 40"):
        BackgroundSpec("sample", 41).check(Limits(max_background_rows=40))
    with pytest.raises(LimitExceeded) as caught:
        BackgroundSpec("upload", 41, SHA256).check(Limits(max_background_rows=40))
    assert caught.value.code == "too_many_background_rows"
    assert caught.value.details == {
        "parameter": "background",
        "limit": 40,
        "setting": "FITEXPLAIN_MAX_BACKGROUND_ROWS",
    }
    assert caught.value.message.startswith("The background file has 41 rows")


def test_a_background_file_is_checked_against_the_features_naming_every_problem() -> None:
    prepared = prepare(canonical(HOUSES.read_bytes()), spec(), Limits(), n_threads=1)
    features = features_of(prepared.dataset)
    _, labels = kept_columns(b"rooms,area_m2,built,extra\n3,x,1990,1\n4,60,2001,2\n", features=None)
    with pytest.raises(DataError) as caught:
        check_background(features, labels, SHA256, Limits(), target="price", handles_missing=True)
    error = caught.value
    assert error.code == "schema_mismatch" and error.details["parameter"] == "background"
    assert [(p["column"], p["problem"]) for p in error.details["problems"]] == [
        ("area_m2", "wrong_dtype"),
        ("neighbourhood", "missing_column"),
    ]
    assert error.message.startswith("The background file does not match the model's training columns")
    _, labels = kept_columns(b"rooms,area_m2,neighbourhood,built\n3,,hills,1990\n")
    assert check_background(
        features, labels, SHA256, Limits(), target="price", handles_missing=True
    ) == BackgroundSpec("upload", 1, SHA256)
    with pytest.raises(DataError, match="missing values"):  # a model that neither takes nor imputes them
        check_background(features, labels, SHA256, Limits(), target="price", handles_missing=False)
    with pytest.raises(LimitExceeded, match="max_background_rows = 0"):
        check_background(
            features, labels, SHA256, Limits(max_background_rows=0), target="price", handles_missing=True
        )


def test_the_kept_columns_are_the_features_only() -> None:
    kept, _ = kept_columns(b"extra,built,rooms,area_m2,neighbourhood,price\na,1990,3,70.5,hills,1\n")
    frame = read_background(kept)
    assert list(frame.columns) == FEATURES
    assert frame.iloc[0].tolist() == [3.0, 70.5, "hills", 1990.0]
    assert pd.read_parquet(io.BytesIO(kept)).shape == (1, 4)


def test_a_spec_keeps_its_background_in_its_json_and_leaves_the_default_out() -> None:
    assert "background" not in spec().to_json()
    asked = spec(background=BackgroundSpec("upload", 3, SHA256))
    assert asked.to_json()["background"] == {"source": "upload", "rows": 3, "sha256": SHA256}
    assert JobSpec.from_json(asked.to_json()) == asked
    assert JobSpec.from_json(spec().to_json()) == spec()
    assert replace(asked, background=BackgroundSpec()) == spec()
