"""A model card is typed and keeps its JSON; a model download takes the server's file name in a
directory."""

from __future__ import annotations

from pathlib import Path

import httpx

from fitexplain_client import ModelCard
from fitexplain_client.client import read

CARD = {"job_id": "3f2c81a0" + "0" * 24, "endpoint": "gbdtclassification", "params": {"model_type": "x"},
        "estimator": {"name": "XGBClassifier", "library": "xgboost", "hyperparameters": {"n_estimators": 20}},
        "libraries": {"xgboost": "3.2.0", "python": "3.11.9"},
        "features": [{"name": "age", "dtype": "float64"},
                     {"name": "region", "dtype": "category", "categories": ["north", "south"]}],
        "target": {"name": "churned", "classes": ["no", "yes"]}, "metrics": {"accuracy": 0.9},
        "background": None, "size_bytes": 1234, "sha256": "ab" * 32, "formats": ["native", "skops"],
        "kept": True, "notes": None, "a_field_of_tomorrow": 1}  # fmt: skip


def test_a_model_card_is_typed_and_keeps_its_json() -> None:
    card = ModelCard.from_json(CARD)
    assert card.estimator.name == "XGBClassifier" and card.estimator.hyperparameters["n_estimators"] == 20
    assert [feature.categories for feature in card.features] == [None, ["north", "south"]]
    assert card.formats == ["native", "skops"] and card.kept and card.background is None
    assert card.raw is CARD and card["a_field_of_tomorrow"] == 1


def test_a_download_into_a_directory_takes_the_servers_file_name(tmp_path: Path) -> None:
    response = httpx.Response(
        200, content=b"{model}", headers={"content-disposition": 'attachment; filename="j1-model.ubj"'}
    )
    assert read.model_file(response, tmp_path) == tmp_path / "j1-model.ubj"
    assert (tmp_path / "j1-model.ubj").read_bytes() == b"{model}"
    assert read.model_file(response, tmp_path / "mine.ubj") == tmp_path / "mine.ubj"
