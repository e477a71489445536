"""A job whose explanation is split into chunks across two workers equals the same job run in one piece."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.contract import assert_same_result
from tests.stack import Client, Stack

pytestmark = [pytest.mark.service, pytest.mark.slow]

REQUESTS = [
    ("gbdtclassification", "breast_cancer_dataset2.csv", {"model_type": "xgboost"}),
    ("gbdtregression", "boston_dataset2.csv", {}),
    ("mlclassification", "wine_dataset2.csv", {}),
    ("mlregression", "diabetes_dataset2.csv", {}),
]


@pytest.fixture(scope="module")
def fanout_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    deployment = Stack(
        tmp_path_factory.mktemp("fanout"),
        extra_env={
            "FITEXPLAIN_FANOUT_MIN_ROWS": "40",
            "FITEXPLAIN_FANOUT_CHUNK_ROWS": "25",
            "FITEXPLAIN_FANOUT_MIN_ROWS_AGNOSTIC": "40",
            "FITEXPLAIN_FANOUT_CHUNK_ROWS_AGNOSTIC": "25",
        },
    ).setup()
    deployment.start_worker()
    deployment.start_worker()
    deployment.start_api()
    deployment.wait_for_workers(2)  # a job fans out only when another worker is there to help
    yield deployment
    deployment.stop()


def chunk_rows(stack: Stack, job_id: str) -> list[tuple[str, int, str]]:
    dsn = stack.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT method, index, status FROM job_chunks WHERE job_id = %s ORDER BY method, index", (job_id,)
        ).fetchall()


@pytest.mark.parametrize(("endpoint", "csv", "params"), REQUESTS)
def test_fanned_out_job_equals_one_piece(
    fanout_stack: Stack, alice: Client, endpoint: str, csv: str, params: dict, tmp_path: Path
) -> None:
    fanned = Client(fanout_stack.url, fanout_stack.token("carol"))
    response = fanned.submit(endpoint, csv, interpretability="permutation,shap", **params)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    whole = alice.run(endpoint, csv, interpretability="permutation,shap", **params)
    job = fanned.wait(job_id)
    assert job["status"] == "succeeded", job
    split = fanned.result(job_id)

    rows = chunk_rows(fanout_stack, job_id)
    assert {method for method, _, _ in rows} == {"permutation", "shap"}
    assert sum(method == "shap" for method, _, _ in rows) >= 2
    assert all(status == "done" for _, _, status in rows)

    assert_same_result(whole, split)
