"""The SDK's side of predict: the request it sends (new rows need no target), and a predict result's
views: its task and classes from its own keys, and its reasons one row per scored row."""

from __future__ import annotations

import io

import pandas as pd
import pyarrow.parquet as pq
from typer.testing import CliRunner

from fitexplain_client import Result
from fitexplain_client.cli import app
from fitexplain_client.client import requests_for

SHAP = {"method": "shap", "values": [[[0.1, -0.1], [0.4, -0.4]]], "base_values": [[0.0, 0.0]],
        "feature_names": ["a", "b"], "class_labels": ["no", "yes"], "explainer": "tree", "exact": True,
        "output_space": "log-odds"}  # fmt: skip
CLASSIFIED = {"y_pred": ["no", "yes", "no"], "proba": [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]],
              "class_labels": ["no", "yes"], "ids": ["r0", "r1", "r2"], "interpretability": SHAP,
              "explained_rows": [1], "unseen_categories": {}, "extra_columns": [],
              "reasons": [[{"feature": "b", "value": 2.0, "contribution": -0.4},
                           {"feature": "a", "value": "x", "contribution": -0.1}]]}  # fmt: skip


def test_new_rows_are_sent_without_a_target_with_the_parameters() -> None:
    rows = pd.DataFrame({"a": ["x", "y"], "b": [1.0, 2.0]})
    request = requests_for.predict(
        "3f2c81", rows, {"interpretability": "shap", "top_n": 2, "threshold": None}
    )
    assert (request.method, request.path) == ("POST", "/jobs/3f2c81/predict")
    assert request.params == {"interpretability": "shap", "top_n": "2"}
    assert request.upload is not None and request.upload.content is not None
    assert pq.read_table(io.BytesIO(request.upload.content)).to_pandas().equals(rows)


def test_a_predict_result_knows_its_task_classes_and_reasons() -> None:
    result = Result(CLASSIFIED)
    assert result.task == "classification" and result.class_labels == ["no", "yes"]
    frame = result.reasons_frame()
    assert list(frame.columns) == ["id", "y_pred", "feature_1", "value_1", "contribution_1", "feature_2",
                                   "value_2", "contribution_2"]  # fmt: skip
    assert frame.loc[1, "feature_1"] == "b" and frame.loc[1, "value_2"] == "x"
    assert pd.isna(frame.loc[0, "feature_1"]) and frame["id"].tolist() == ["r0", "r1", "r2"]
    assert Result({"y_pred": [1.5, 2.5], "unseen_categories": {}, "extra_columns": []}).task == "regression"


def test_the_predict_command_is_there() -> None:
    shown = CliRunner().invoke(app, ["predict", "--help"])
    assert shown.exit_code == 0
    assert all(option in shown.output for option in ("--top-n", "--threshold", "--out"))
