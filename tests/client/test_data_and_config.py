"""What `data` may be, and where the client finds the service and token."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pandas as pd
import pytest

from fitexplain_client import Client, Result
from fitexplain_client.config import resolve, write_config_file
from fitexplain_client.data import csv_bytes
from fitexplain_client.endpoints import query


def test_path_and_bytes_are_sent_as_they_are(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"a,target\n1,0\n")
    assert csv_bytes(path) == csv_bytes(str(path)) == csv_bytes(b"a,target\n1,0\n") == b"a,target\n1,0\n"
    assert csv_bytes(path, target="a") == b"a,target\n1,0\n", "a file's target is named by the query"
    with pytest.raises(TypeError, match="DataFrame"):
        csv_bytes(path, training_index=[1])
    with pytest.raises(TypeError, match=r"path, bytes or a pandas\.DataFrame"):
        csv_bytes(42)


def test_a_dataframe_keeps_its_target_and_gets_its_training_index_column() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": ["a", "b", "a"], "split": [1, 1, 0]})
    sent = pd.read_csv(io.BytesIO(csv_bytes(frame, target="label", training_index="split")))
    assert list(sent.columns) == ["x", "label", "training_index"]
    sent = pd.read_csv(
        io.BytesIO(csv_bytes(frame.drop(columns="split"), target="label", training_index=[1, 0, 1]))
    )
    assert sent["training_index"].tolist() == [1, 0, 1] and sent["label"].tolist() == ["a", "b", "a"]
    assert list(frame.columns) == ["x", "label", "split"], "the caller's frame is not modified"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "target='target' is not a column"),
        ({"target": "nope"}, "target='nope' is not a column"),
        ({"target": "label", "training_index": [1]}, "1 values for 3 rows"),
        ({"target": "label", "training_index": "nope"}, "training_index='nope'"),
    ],
)
def test_dataframe_mistakes_are_named(kwargs: dict, message: str) -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "label": [0, 1, 0]})
    with pytest.raises(ValueError, match=message):
        csv_bytes(frame, **kwargs)


def test_parameters_are_written_as_the_server_reads_them() -> None:
    sent = query({"return_pi": True, "interpretability": ["shap", "permutation"], "level": 90, "seed": None})
    assert sent == {"return_pi": "true", "interpretability": "shap,permutation", "level": "90"}


def test_arguments_then_environment_then_login_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FITEXPLAIN_CONFIG", str(tmp_path / "cfg" / "config.json"))
    for name in ("FITEXPLAIN_URL", "FITEXPLAIN_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert resolve().token is None
    path = write_config_file("http://stored:1/", "fx_stored")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert resolve() == resolve(None, None)
    assert (resolve().base_url, resolve().token) == ("http://stored:1", "fx_stored")
    monkeypatch.setenv("FITEXPLAIN_URL", "http://env:2")
    monkeypatch.setenv("FITEXPLAIN_TOKEN", "fx_env")
    assert (resolve().base_url, resolve().token) == ("http://env:2", "fx_env")
    assert resolve("http://arg:3", "fx_arg").token == "fx_arg"
    assert Client().base_url == "http://env:2"


def test_result_reads_one_flat_object_or_a_list() -> None:
    permutation = {"method": "permutation", "importances_mean": [0.2, 0.1], "importances_std": [0.0, 0.0],
                   "importances": [[0.2], [0.1]], "feature_names": ["a", "b"]}  # fmt: skip
    shap = {"method": "shap", "values": [[0.1, -0.1]], "base_values": [1.0], "feature_names": ["a", "b"]}
    regression = {"y_true": [1.0], "y_pred": [1.0], "Score": {"R² Score": 1.0}}
    one = Result({**regression, "interpretability": permutation})
    assert one.permutation == permutation and one.shap is None and one.feature_names == ["a", "b"]
    both = Result({**regression, "interpretability": [shap, permutation]})
    assert [item["method"] for item in both.explanations] == ["shap", "permutation"]
    assert both.task == "regression" and both.class_labels == []
    with pytest.raises(ValueError, match="no shap explanation"):
        one.plot_shap_summary()
    with pytest.raises(ValueError, match="no prediction intervals"):
        one.plot_intervals()


def test_shap_long_form_follows_the_values() -> None:
    classification = {"y_true": [0, 1], "y_pred": [0, 1], "proba": [[1, 0], [0, 1]], "accuracy": 1.0}
    shap = {"method": "shap", "values": [[[1, -1], [2, -2]], [[3, -3], [4, -4]]], "base_values": [[0, 0]] * 2,
            "feature_names": ["b", "a"], "class_labels": ["no", "yes"]}  # fmt: skip
    frame = Result({**classification, "interpretability": shap}).to_frame("shap")
    assert frame.to_dict("list") == {
        "row": [0, 0, 0, 0, 1, 1, 1, 1],
        "feature": ["b", "b", "a", "a", "b", "b", "a", "a"],
        "class": ["no", "yes"] * 4,
        "value": [1.0, -1.0, 2.0, -2.0, 3.0, -3.0, 4.0, -4.0],
    }
