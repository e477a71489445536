"""The typed models keep their JSON, a DataFrame travels as Parquet with its dtypes, a file is uploaded
from disk, and the plots draw what they say: a beeswarm coloured only when the feature values are known,
the command line's plot kind from the file's name."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from fitexplain_client import JobState, Result, ShapExplanation
from fitexplain_client.data import PARQUET_TYPE, upload
from fitexplain_client.plot_kinds import PlotKind, chosen_kind, kind_from_name

JOB = {"id": "3f2c81a0" + "0" * 24, "status": "succeeded", "endpoint": "gbdtregression", "progress": 1.0,
       "progress_message": "done", "params": {"model_type": "xgboost"}, "error": None,
       "score": {"name": "R²", "value": 0.87}, "duration_seconds": 75.5,
       "a_field_of_tomorrow": [1]}  # fmt: skip
SHAP = {"method": "shap", "values": [[0.5, -0.1], [-0.2, 0.3], [0.1, 0.0]], "base_values": [1.0] * 3,
        "feature_names": ["a", "b"], "explainer": "tree", "exact": True, "output_space": "raw"}  # fmt: skip
REGRESSION = {"y_true": [1.0, 2.0, 3.0], "y_pred": [1.1, 2.1, 2.9], "Score": {"R² Score": 0.9},
              "interpretability": SHAP}  # fmt: skip


def test_a_job_state_is_typed_and_keeps_its_json() -> None:
    state = JobState.from_json(JOB)
    assert (state.status, state.finished, state.model_label, state.duration_seconds) == (
        "succeeded", True, "xgboost", 75.5)  # fmt: skip
    assert state.score is not None and (state.score.name, state.score.value) == ("R²", 0.87)
    assert state.raw is JOB and state.model_extra == {"a_field_of_tomorrow": [1]}
    assert state["a_field_of_tomorrow"] == [1] and state.get("missing", "x") == "x"


def test_a_result_is_typed_and_reads_as_before() -> None:
    result = Result(REGRESSION, job_id="j1")
    assert isinstance(result.shap, ShapExplanation) and result.shap.explainer == "tree"
    assert result.shap["values"] == SHAP["values"] and result.shap == SHAP, "dict-style access still works"
    assert result.json is REGRESSION and result.raw is REGRESSION and result.job_id == "j1"
    assert result.metrics == {"R² Score": 0.9} and result.task == "regression" and result.X_test is None
    assert Result.from_json(REGRESSION).y_pred == [1.1, 2.1, 2.9]


def test_a_dataframe_is_sent_as_parquet_with_its_dtypes() -> None:
    frame = pd.DataFrame({"x": [1.5, 2.5, 3.5], "n": pd.array([1, 2, 3], dtype="int32"),
                          "label": pd.Categorical(["yes", "no", "yes"])})  # fmt: skip
    sent = upload(frame, target="label", training_index=[1, 1, 0])
    assert sent.content_type == PARQUET_TYPE and sent.content is not None and sent.content[:4] == b"PAR1"
    back = pq.read_table(io.BytesIO(sent.content)).to_pandas()
    assert list(back.columns) == ["x", "n", "label", "training_index"]
    assert str(back["n"].dtype) == "int32" and isinstance(back["label"].dtype, pd.CategoricalDtype)
    assert back["label"].tolist() == ["yes", "no", "yes"]


def test_a_file_is_opened_for_each_attempt_not_read(tmp_path: Path) -> None:
    path = tmp_path / "table.parquet"
    path.write_bytes(b"PAR1")
    sent = upload(path)
    assert (sent.filename, sent.content_type, sent.content) == ("table.parquet", PARQUET_TYPE, None)
    for _ in range(2):  # a retry opens it again, from its start
        with sent.open() as files:
            name, handle, _ = files["file"]
            assert name == "table.parquet" and handle.read() == b"PAR1"
        assert handle.closed
    with pytest.raises(FileNotFoundError, match=r"no_such\.csv"):
        upload(tmp_path / "no_such.csv")


def test_the_beeswarm_is_coloured_only_when_feature_values_are_known() -> None:
    plain = Result(REGRESSION).plot_shap_beeswarm()
    assert len(plain.axes) == 1, "no colour bar without feature values"
    by_rows = Result({**REGRESSION, "X_test": [[1.0, "red"], [2.0, "blue"], [3.0, "red"]]})
    assert len(by_rows.plot_shap_beeswarm().axes) == 2, "a colour bar beside the swarm"
    by_columns = Result({**REGRESSION, "X_test": {"b": [0, 1, 0], "a": [3.0, 2.0, 1.0]}})
    assert len(by_columns.plot_shap_beeswarm().axes) == 2
    with pytest.raises(ValueError, match="shape"):
        Result(REGRESSION).plot_shap_beeswarm(data=[[1.0, 2.0]])


@pytest.mark.parametrize(
    "name, kind",
    [("shap.png", PlotKind.shap_summary), ("boston-shap-beeswarm.png", PlotKind.shap_beeswarm),
     ("importance.svg", PlotKind.importance), ("perm.png", None), ("intervals.pdf", PlotKind.intervals),
     ("out.png", None)],
)  # fmt: skip
def test_the_plot_kind_comes_from_the_files_name(name: str, kind: PlotKind | None) -> None:
    assert kind_from_name(Path(name)) == kind


def test_an_asked_kind_wins_and_the_result_decides_last() -> None:
    permutation = {"method": "permutation", "feature_names": ["a", "b"], "importances_mean": [0.1, 0.2],
                   "importances_std": [0.0, 0.0]}  # fmt: skip
    both = Result({**REGRESSION, "interpretability": [SHAP, permutation]})
    assert chosen_kind(None, Path("shap.png"), both) == PlotKind.shap_summary
    assert chosen_kind(PlotKind.intervals, Path("shap.png"), both) == PlotKind.intervals
    assert chosen_kind(None, Path("out.png"), both) == PlotKind.importance
