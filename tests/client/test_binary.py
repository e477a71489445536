"""The SDK's reading of the server's Parquet form (fitexplain_client.binary), on the output of
shared/results/formats.py."""

from __future__ import annotations

import numpy as np
import pytest

from fitexplain_client.binary import check_format, read_parquet
from shared.results import formats as results
from tests.results.samples import synthetic_regression, synthetic_result


def test_result_frame_has_the_rows_the_rest_and_each_class_shap_columns() -> None:
    result = synthetic_result()
    found = read_parquet(results.encode(result, "parquet"))
    shap = result["interpretability"][0]
    values = np.asarray(shap["values"], dtype=np.float64)
    assert found.frame["y_pred"].tolist() == result["y_pred"]
    assert found.metadata["accuracy"] == result["accuracy"]
    assert found.metadata["interpretability"][1] == result["interpretability"][1]  # permutation
    for c, label in enumerate(shap["class_labels"]):
        frame_values = found.frame[found.shap_columns(label)].to_numpy()
        assert np.array_equal(frame_values, values[:, :, c], equal_nan=True)
    assert found.shap_columns() == found.shap_columns(shap["class_labels"][-1])
    with pytest.raises(ValueError, match="not one of the classes"):
        found.shap_columns("maybe")
    with pytest.raises(ValueError, match="no SHAP values"):
        read_parquet(results.encode(synthetic_regression(), "parquet")).shap_columns()


def test_an_unknown_format_is_refused_before_any_request() -> None:
    assert check_format("npz") == "npz"
    with pytest.raises(ValueError, match="json, arrow, arrow-file, parquet, npz"):
        check_format("csv")


def test_the_result_command_refuses_an_unknown_format_or_binary_without_out() -> None:
    from typer.testing import CliRunner

    from fitexplain_client.cli import app

    runner = CliRunner()
    unknown = runner.invoke(app, ["result", "abc", "--format", "csv", "--url", "http://127.0.0.1:9"])
    assert unknown.exit_code == 2 and "parquet" in unknown.output
    no_out = runner.invoke(app, ["result", "abc", "--format", "parquet", "--url", "http://127.0.0.1:9"])
    assert no_out.exit_code == 2 and "--out" in no_out.output
