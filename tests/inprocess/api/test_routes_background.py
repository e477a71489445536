"""`background=sample:N` and the `background` file part on a fit and on a predict, in process: refusals
name the parameter (and the limit, or every off-schema column) and store nothing; accepted backgrounds are
kept with the job, used by the worker's task and recorded in the result and the model card."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from api.dashboard.job_actions import rerun_job
from shared.db import session_scope
from shared.settings import get_settings
from shared.tables import Job, JobBackground, JobModel, JobStatus, Upload
from tests.inprocess.factories import IRIS, Account, load_job, make_job, set_job, stored_result

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
LOGISTIC = {"base_model": "LogisticRegression", "n_hidden_features": 0, "interpretability": "shap"}
XGB = {"model_type": "xgboost", "n_estimators": 10, "interpretability": "none"}


def iris_rows(count: int, *, drop: tuple[str, ...] = (), **changes: object) -> bytes:
    """`count` rows of iris's features (repeated as needed), a column the models never saw added."""
    frame = pd.read_csv(io.BytesIO(IRIS)).drop(columns=["target", "training_index"])
    frame = pd.concat([frame] * (count // len(frame) + 1)).head(count).assign(note="x")
    frame = frame.drop(columns=list(drop)).assign(**changes)
    return frame.to_csv(index=False).encode()


def submit(
    client: TestClient,
    account: Account,
    path: str,
    csv: bytes,
    background_file: bytes | None = None,
    **params: Any,
) -> Response:
    files: dict[str, Any] = {"file": ("data.csv", csv, "text/csv")}
    if background_file is not None:
        files["background"] = ("background.csv", background_file, "text/csv")
    query = {key: str(value) for key, value in params.items()}
    return client.post(path, params=query, files=files, headers=account.headers)


def stored() -> tuple[int, int, int]:
    """Jobs, uploads and backgrounds kept."""
    with session_scope() as session:
        return tuple(  # type: ignore[return-value]
            int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in (Job, Upload, JobBackground)
        )


def card_of(job_id: str) -> dict[str, Any]:
    with session_scope() as session:
        card = session.get(JobModel, job_id)
        assert card is not None
        return dict(card.card)


@pytest.fixture
def fitted_logistic(alice: Account, run_job: Callable[[str], str]) -> str:
    job_id = make_job(alice.id, endpoint="mlclassification", params=LOGISTIC)
    assert run_job(job_id) == "succeeded"
    return job_id


ANY_JOB = "0" * 32  # refused before any job is looked up


@pytest.mark.parametrize("path", ["/mlclassification", f"/jobs/{ANY_JOB}/predict"])
@pytest.mark.parametrize("value", ["sample:0", "sample:-2", "sample:ten", "sample", "all"])
def test_a_malformed_background_is_a_422_naming_the_parameter(
    client: TestClient, alice: Account, path: str, value: str
) -> None:
    before = stored()
    answer = submit(client, alice, path, IRIS, background=value)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert (body["code"], body["parameter"]) == ("invalid_parameter", "background")
    assert "background must be sample:N" in body["detail"]
    assert stored() == before


@pytest.mark.parametrize("path", ["/mlclassification", f"/jobs/{ANY_JOB}/predict"])
def test_a_sample_over_the_limit_is_a_422_naming_the_limit(
    client: TestClient, alice: Account, path: str
) -> None:
    before = stored()
    answer = submit(client, alice, path, IRIS, background="sample:501")
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["code"] == "too_many_background_rows"
    assert (body["parameter"], body["limit"], body["setting"]) == (
        "background",
        500,
        "FITEXPLAIN_MAX_BACKGROUND_ROWS",
    )
    assert "max_background_rows = 500" in body["detail"]
    assert stored() == before


def test_a_background_file_off_the_features_names_every_column_and_stores_nothing(
    client: TestClient, alice: Account, fitted_logistic: str
) -> None:
    before = stored()
    sent = iris_rows(20, drop=("sepal width (cm)", "petal width (cm)"), **{"petal length (cm)": "long"})
    for path in ("/mlclassification", f"/jobs/{fitted_logistic}/predict"):
        answer = submit(client, alice, path, IRIS, sent)
        assert answer.status_code == 422, answer.text
        body = answer.json()
        assert (body["code"], body["parameter"]) == ("schema_mismatch", "background")
        assert [(p["column"], p["problem"]) for p in body["problems"]] == [
            ("sepal width (cm)", "missing_column"),
            ("petal length (cm)", "wrong_dtype"),
            ("petal width (cm)", "missing_column"),
        ]
        assert body["detail"].startswith("The background file does not match the model's training columns")
    assert stored() == before


def test_a_background_file_over_the_limit_or_unreadable_or_beside_a_sample_is_refused(
    client: TestClient, alice: Account, fitted_logistic: str
) -> None:
    before = stored()
    for path in ("/mlclassification", f"/jobs/{fitted_logistic}/predict"):
        over = submit(client, alice, path, IRIS, iris_rows(501))
        assert over.status_code == 422, over.text
        assert over.json()["code"] == "too_many_background_rows" and over.json()["limit"] == 500
        assert over.json()["detail"].startswith("The background file has 501 rows")  # not cut to 500
        empty = submit(client, alice, path, IRIS, b",".join(name.encode() for name in FEATURES) + b"\n")
        assert empty.status_code == 422, empty.text
        assert (empty.json()["code"], empty.json()["parameter"]) == ("no_rows", "background")
        assert empty.json()["detail"].startswith("The background file: ")
        both = submit(client, alice, path, IRIS, iris_rows(10), background="sample:5")
        assert both.status_code == 422, both.text
        assert (both.json()["code"], both.json()["parameter"]) == ("bad_parameter", "background")
    assert stored() == before


def test_a_fit_keeps_its_background_file_and_explains_against_it(
    client: TestClient, alice: Account, run_job: Callable[[str], str]
) -> None:
    sent = iris_rows(12)
    answer = submit(client, alice, "/mlclassification", IRIS, sent, **LOGISTIC)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    digest = hashlib.sha256(sent).hexdigest()
    job = load_job(job_id)
    assert job is not None and job.spec["background"] == {"source": "upload", "rows": 12, "sha256": digest}
    assert "background" not in job.params  # the query had none
    with session_scope() as session:
        kept = session.get(JobBackground, job_id)
        assert kept is not None and (kept.sha256, kept.n_rows) == (digest, 12)
        assert list(pd.read_parquet(io.BytesIO(kept.parquet)).columns) == FEATURES  # `note` is not kept
    assert run_job(job_id) == "succeeded", load_job(job_id).error_message  # type: ignore[union-attr]
    shap = stored_result(job_id)["interpretability"]
    assert shap["background"] == {"source": "upload", "rows": 12, "sha256": digest}
    background = card_of(job_id)["background"]
    assert (background["source"], background["rows"], background["sha256"]) == ("upload", 12, digest)
    deleted = client.delete(f"/jobs/{job_id}", headers=alice.headers)
    assert deleted.status_code == 204 and stored() == (0, 0, 0)  # the background goes with its job


def test_a_rerun_keeps_the_background_file(client: TestClient, alice: Account) -> None:
    answer = submit(client, alice, "/mlclassification", IRIS, iris_rows(8), **LOGISTIC)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    set_job(job_id, status=JobStatus.failed)
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        new = rerun_job(session, job, "admin", get_settings()).id
    with session_scope() as session:
        first, again = session.get(JobBackground, job_id), session.get(JobBackground, new)
        assert first is not None and again is not None
        assert (again.sha256, again.n_rows, again.parquet) == (first.sha256, first.n_rows, first.parquet)


def test_a_predict_samples_the_kept_background_and_a_tree_model_says_it_took_none(
    client: TestClient, alice: Account, fitted_logistic: str, run_job: Callable[[str], str]
) -> None:
    answer = submit(
        client,
        alice,
        f"/jobs/{fitted_logistic}/predict",
        iris_rows(5),
        background="sample:7",
        interpretability="shap",
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["params"]["background"] == "sample:7"
    assert run_job(body["id"]) == "succeeded"
    kept = card_of(fitted_logistic)["background"]
    assert stored_result(body["id"])["interpretability"]["background"] == {
        "source": "sample",
        "rows": 7,
        "seed": 123,
        "drawn_from": {"source": "sample", "rows": kept["rows"], "seed": 123},
    }

    tree = make_job(alice.id, params=XGB)
    assert run_job(tree) == "succeeded"
    sent = iris_rows(3)
    answer = submit(client, alice, f"/jobs/{tree}/predict", iris_rows(5), sent, interpretability="shap")
    assert answer.status_code == 202, answer.text
    assert run_job(answer.json()["id"]) == "succeeded"
    shap = stored_result(answer.json()["id"])["interpretability"]
    asked = {"source": "upload", "rows": 3, "sha256": hashlib.sha256(sent).hexdigest()}
    assert shap["background"] == {"source": "none", "rows": 0, "asked": asked}
    assert shap["notes"].endswith(
        "The background asked for (an uploaded file of 3 rows) was not used: path-dependent TreeSHAP "
        "takes none."
    )


def test_a_fanout_helper_that_refits_reads_the_jobs_background(client: TestClient, alice: Account) -> None:
    from worker.tasks import _prepared_for

    sent = iris_rows(6)
    answer = submit(client, alice, "/mlclassification", IRIS, sent, **LOGISTIC)
    assert answer.status_code == 202, answer.text
    job = load_job(answer.json()["id"])
    assert job is not None
    prepared = _prepared_for(job, get_settings())  # no shared fitted job: fitted again, as its worker did
    frame = pd.read_csv(io.BytesIO(sent))[FEATURES]
    assert prepared.uploaded_background is not None
    assert prepared.uploaded_background.tolist() == frame.to_numpy(dtype=float).tolist()
