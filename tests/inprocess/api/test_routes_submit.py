"""The four submit endpoints through FastAPI's TestClient: 202 with a Location and one published id, or
a 4xx that names the parameter, the column or the limit, with nothing stored or published."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select

from shared.db import session_scope
from shared.dispatch.queue import RUN_JOB_TASK
from shared.tables import Job
from tests.inprocess.factories import IRIS, Account, events, load_job, make_job
from tests.inprocess.recorder import PublishRecorder
from tests.stack import DATA

BOSTON = (DATA / "boston_dataset2.csv").read_bytes()
MALFORMED = DATA / "malformed"


def post(
    client: TestClient, endpoint: str, account: Account | None, csv: bytes = IRIS, **params: Any
) -> Response:
    headers = account.headers if account else {}
    query = {key: str(value) for key, value in params.items()}
    return client.post(
        f"/{endpoint}", params=query, files={"file": ("data.csv", csv, "text/csv")}, headers=headers
    )


def job_count() -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Job)) or 0


def validation_locations(response: Response) -> list[tuple[str, ...]]:
    assert response.status_code == 422, response.text
    return [tuple(error["loc"]) for error in response.json()["errors"]]


@pytest.mark.parametrize(
    ("endpoint", "csv", "params"),
    [
        ("mlclassification", IRIS, {"interpretability": "permutation"}),
        ("mlregression", BOSTON, {"return_pi": "True", "pi_method": "localconformal"}),
        ("gbdtclassification", IRIS, {"model_type": "xgboost", "interpretability": "permutation,shap"}),
        ("gbdtregression", BOSTON, {"max_depth": 4, "interpretability": "shap"}),
    ],
)
def test_a_valid_request_is_accepted_stored_and_published_once(
    client: TestClient,
    alice: Account,
    published: PublishRecorder,
    endpoint: str,
    csv: bytes,
    params: dict[str, Any],
) -> None:
    response = post(client, endpoint, alice, csv, **params)
    assert response.status_code == 202, response.text
    body = response.json()
    assert response.headers["location"] == f"/jobs/{body['id']}"
    assert body["links"] == {"self": f"/jobs/{body['id']}", "result": f"/jobs/{body['id']}/result"}
    assert (body["endpoint"], body["status"], body["progress"]) == (endpoint, "queued", 0)
    assert (body["attempts"], body["error"]) == (0, None)
    assert body["created_at"].endswith(("Z", "+00:00"))
    assert published.job_ids(RUN_JOB_TASK) == [body["id"]]
    job = load_job(body["id"])
    assert job is not None and job.user_id == alice.id
    # The dispatch mark follows a moment later, from the running app's event loop (which this client,
    # without the app's lifespan, does not keep): tests/inprocess/dispatch/test_marks.py.
    assert events(body["id"])[0] == "submitted"


def test_stored_parameters_are_the_validated_ones_without_wait(client: TestClient, alice: Account) -> None:
    response = post(client, "gbdtclassification", alice, interpretability="SHAP, permutation", wait=0)
    assert response.status_code == 202, response.text
    params = response.json()["params"]
    assert params["interpretability"] == "shap,permutation"
    assert (params["model_type"], params["n_estimators"], params["seed"]) == ("lightgbm", 100, 123)
    assert "wait" not in params


@pytest.mark.parametrize(
    ("endpoint", "params", "location"),
    [
        ("gbdtclassification", {"max_depth": 0}, ("query", "max_depth")),
        ("gbdtclassification", {"n_estimators": 10_001}, ("query", "n_estimators")),
        ("gbdtclassification", {"learning_rate": 0}, ("query", "learning_rate")),
        ("gbdtclassification", {"model_type": "randomforest"}, ("query", "model_type")),
        ("gbdtclassification", {"no_such_option": 1}, ("query", "no_such_option")),
        ("gbdtregression", {"level": 100}, ("query", "level")),
        ("gbdtregression", {"pi_method": "bootstrap"}, ("query", "pi_method")),
        ("mlclassification", {"n_hidden_features": -1}, ("query", "n_hidden_features")),
        ("mlclassification", {"seed": -1}, ("query", "seed")),
        ("mlregression", {"wait": 61}, ("query", "wait")),
        ("mlregression", {"return_pi": "maybe"}, ("query", "return_pi")),
    ],
)
def test_a_bad_parameter_is_a_422_naming_it(
    client: TestClient,
    alice: Account,
    published: PublishRecorder,
    endpoint: str,
    params: dict[str, Any],
    location: tuple[str, ...],
) -> None:
    response = post(client, endpoint, alice, IRIS if "class" in endpoint else BOSTON, **params)
    assert location in validation_locations(response)
    assert job_count() == 0 and published.messages == []


@pytest.mark.parametrize(
    ("endpoint", "params", "words"),
    [
        ("mlclassification", {"base_model": "NotAModel"}, ["NotAModel"]),
        ("mlregression", {"base_model": "RandomForestClassifier"}, ["RandomForestClassifier"]),
        ("gbdtclassification", {"interpretability": "lime"}, ["interpretability", "'lime'", "permutation"]),
        ("gbdtclassification", {"shap_interactions": "true"}, ["shap_interactions", "interpretability=shap"]),
        (
            "gbdtclassification",
            {"shap_interactions": "true", "interpretability": "shap", "model_type": "lightgbm"},
            ["shap_interactions", "lightgbm"],
        ),
    ],
)
def test_a_bad_value_is_a_422_whose_message_names_it(
    client: TestClient, alice: Account, endpoint: str, params: dict[str, Any], words: list[str]
) -> None:
    response = post(client, endpoint, alice, IRIS if "class" in endpoint else BOSTON, **params)
    assert response.status_code == 422, response.text
    message = " ".join(error["msg"] for error in response.json()["errors"])
    for word in words:
        assert word in message
    assert job_count() == 0


@pytest.mark.parametrize(
    ("name", "code", "column", "parameter"),
    [
        ("missing_feature.csv", "missing_value", "a", "impute=median"),
        ("non_numeric.csv", "non_numeric", "b", "id_column=b"),
    ],
)
def test_an_unusable_csv_is_a_422_naming_the_column_and_the_parameter(
    client: TestClient,
    alice: Account,
    published: PublishRecorder,
    name: str,
    code: str,
    column: str,
    parameter: str,
) -> None:
    response = post(client, "mlclassification", alice, (MALFORMED / name).read_bytes())
    assert response.status_code == 422, response.text
    body = response.json()
    assert (body["code"], body["column"]) == (code, column)
    assert f"'{column}'" in body["detail"] and "line" in body["detail"] and parameter in body["detail"]
    assert job_count() == 0 and published.messages == []


CUSTOMERS = (DATA / "tables" / "customers_numeric.csv").read_bytes()


@pytest.mark.parametrize(
    ("endpoint", "params"),
    [
        ("gbdtclassification", {"target": "churned", "id_column": "customer_id"}),
        ("mlclassification", {"target": "churned", "id_column": "customer_id", "impute": "most_frequent"}),
    ],
)
def test_the_target_and_id_columns_are_named_by_the_request(
    client: TestClient, alice: Account, endpoint: str, params: dict[str, Any]
) -> None:
    response = post(client, endpoint, alice, CUSTOMERS, **params)
    assert response.status_code == 202, response.text
    stored = response.json()["params"]
    assert {key: stored[key] for key in params} == params


@pytest.mark.parametrize(
    ("params", "code", "words"),
    [
        ({"target": "churn"}, "missing_target", ["'churn'"]),
        ({}, "missing_target", ["'target'", "target="]),
        ({"target": "churned", "id_column": "id"}, "missing_id_column", ["'id'", "id_column"]),
        ({"target": "churned", "id_column": "customer_id"}, "missing_value", ["'age'", "impute="]),
    ],
)
def test_columns_the_request_names_or_needs_are_named_in_the_422(
    client: TestClient, alice: Account, params: dict[str, Any], code: str, words: list[str]
) -> None:
    response = post(client, "mlclassification", alice, CUSTOMERS, **params)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code
    for word in words:
        assert word in response.json()["detail"]
    assert job_count() == 0


@pytest.mark.parametrize(
    "params",
    [
        {"target": "training_index"},
        {"id_column": "training_index"},
        {"target": "churned", "id_column": "churned"},
        {"impute": "mean"},
        {"target": ""},
    ],
)
def test_bad_column_roles_are_a_422_naming_the_parameter(
    client: TestClient, alice: Account, params: dict[str, Any]
) -> None:
    response = post(client, "mlclassification", alice, CUSTOMERS, **params)
    message = " ".join(str(error["loc"]) + error["msg"] for error in response.json().get("errors", []))
    assert response.status_code == 422, response.text
    assert any(name in message for name in params), message


def test_a_missing_file_is_a_422_naming_it(client: TestClient, alice: Account) -> None:
    response = client.post("/gbdtclassification", headers=alice.headers)
    assert ("body", "file") in validation_locations(response)


@pytest.mark.parametrize(
    ("url", "words"),
    [("ftp://example.com/hook", "http(s) URL"), ("http://127.0.0.1:9/hook", "non-public address")],
)
def test_a_webhook_url_that_is_not_public_http_is_refused(
    client: TestClient, alice: Account, url: str, words: str
) -> None:
    response = post(client, "gbdtclassification", alice, webhook_url=url)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "bad_webhook_url"
    assert words in response.json()["detail"]
    assert job_count() == 0


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer fx_not-a-token"}])
def test_submitting_without_a_valid_token_is_a_401(
    client: TestClient, alice: Account, headers: dict[str, str]
) -> None:
    response = client.post(
        "/gbdtclassification", files={"file": ("data.csv", IRIS, "text/csv")}, headers=headers
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["detail"]
    assert job_count() == 0


def test_too_many_unfinished_jobs_is_a_429_with_retry_after(
    client: TestClient, alice: Account, bob: Account
) -> None:
    for _ in range(4):  # FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER's default
        make_job(alice.id)
    response = post(client, "gbdtclassification", alice)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "5"
    assert "FITEXPLAIN_MAX_RUNNING_JOBS_PER_USER" in response.json()["detail"]
    assert post(client, "gbdtclassification", bob).status_code == 202  # limits are per user
    assert job_count() == 5


def test_a_broker_outage_at_submit_still_accepts_the_job(
    client: TestClient, alice: Account, published: PublishRecorder
) -> None:
    published.broker_down = True
    response = post(client, "gbdtclassification", alice)
    assert response.status_code == 202, response.text
    job = load_job(response.json()["id"])
    assert job is not None and (job.status, job.dispatched_at) == ("queued", None)  # the sweep's to send


def test_the_same_upload_is_stored_once_for_two_jobs(client: TestClient, alice: Account) -> None:
    first = post(client, "gbdtclassification", alice).json()["id"]
    second = post(client, "gbdtregression", alice, BOSTON).json()["id"]
    third = post(client, "mlclassification", alice).json()["id"]
    jobs = [load_job(job_id) for job_id in (first, second, third)]
    digests = [job.dataset_sha256 for job in jobs if job]
    assert digests[0] == digests[2] != digests[1]
