"""`fitexplain serve` with no external server: SQLite database and SQLite broker under FITEXPLAIN_HOME."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.contract import explanation
from tests.stack import DATA, embedded_serve

pytestmark = [pytest.mark.slow]


def test_serve_runs_a_job_to_completion(tmp_path: Path) -> None:
    with embedded_serve(tmp_path) as serve:
        response = httpx.post(
            f"{serve.url}/gbdtclassification",
            params={"interpretability": "shap", "wait": "60"},
            files={"file": ("iris.csv", (DATA / "iris_dataset2.csv").read_bytes(), "text/csv")},
            headers={"Authorization": f"Bearer {serve.token('smoke')}"},
            timeout=90,
        )
        assert response.status_code == 200, response.text
        assert explanation(response.json(), "shap")["exact"] is True
        assert (tmp_path / "home" / "fitexplain.db").exists()
