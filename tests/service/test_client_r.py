"""The R client (clients/r/fitexplain.R, on httr and jsonlite) against the real stack: every endpoint,
waiting, the result in techtonique's shape, an importance plot per result, and a 422 naming the column.
Runs where Rscript is (make test installs r-base-core, r-cran-httr and r-cran-jsonlite when missing)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.stack import REPO, Stack

pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(shutil.which("Rscript") is None, reason="Rscript is not installed"),
]


def test_r_client_end_to_end(stack: Stack, tmp_path: Path) -> None:
    env = {**os.environ, "FITEXPLAIN_URL": stack.url, "FITEXPLAIN_TOKEN": stack.token("r-user")}
    done = subprocess.run(
        ["Rscript", str(REPO / "tests" / "r" / "check_client.R"), str(REPO), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    expected_methods = {
        "mlclassification": "permutation",
        "gbdtclassification": "shap",
        "mlregression": "permutation",
        "gbdtregression": ["shap", "permutation"],
    }
    for endpoint, methods in expected_methods.items():
        case = report[endpoint]
        assert case["status"] == "succeeded" and case["n_pred"] > 100
        assert case["methods"] == methods
        n_features = 30 if "classification" in endpoint else 13
        assert len(case["feature_names"]) == n_features
        png = Path(case["png"])
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 3000, endpoint
    assert report["mlregression"]["has_pi"] is True
    bad = report["bad_column"]
    assert bad["class"] == "fitexplain_error" and bad["status"] == 422
    assert bad["column"] == "b" and bad["code"] == "non_numeric" and "Column 'b'" in bad["message"]
