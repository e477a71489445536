"""A user's jobs through TestClient: list, status, result, cancel and delete, and nobody else's."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from shared.db import session_scope
from shared.store.jobstore import claim, fail, succeed
from shared.tables import Upload
from tests.inprocess.factories import (
    IRIS,
    TINY_GBDT,
    Account,
    ago,
    events,
    load_job,
    make_job,
    set_job,
    webhook_outbox,
)

RESULT = {"accuracy": 0.96, "y_pred": [0, 1, 2]}


def start(job_id: str) -> None:
    with session_scope() as session:
        assert claim(session, job_id, worker="w1", stale_after=60, max_attempts=3).job is not None


def succeeded(job_id: str) -> str:
    start(job_id)
    with session_scope() as session:
        assert succeed(session, job_id, "w1", RESULT)
    return job_id


def test_the_list_holds_only_the_callers_jobs_newest_first(
    client: TestClient, alice: Account, bob: Account
) -> None:
    mine = [make_job(alice.id) for _ in range(3)]
    for age, job_id in zip((30, 20, 10), mine, strict=True):
        set_job(job_id, created_at=ago(age))
    make_job(bob.id)
    page = client.get("/jobs", headers=alice.headers).json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 20, 0)
    assert [item["id"] for item in page["items"]] == mine[::-1]
    second = client.get("/jobs", params={"limit": 1, "offset": 1}, headers=alice.headers).json()
    assert ([item["id"] for item in second["items"]], second["total"]) == ([mine[1]], 3)


def test_the_list_filters_by_status(client: TestClient, alice: Account) -> None:
    queued, done = make_job(alice.id), succeeded(make_job(alice.id))
    only_done = client.get("/jobs", params={"status": "succeeded"}, headers=alice.headers).json()
    assert [item["id"] for item in only_done["items"]] == [done]
    only_queued = client.get("/jobs", params={"status": "queued"}, headers=alice.headers).json()
    assert [item["id"] for item in only_queued["items"]] == [queued]


@pytest.mark.parametrize(
    ("params", "name"), [({"limit": 0}, "limit"), ({"limit": 101}, "limit"), ({"status": "done"}, "status")]
)
def test_a_bad_list_parameter_is_a_422_naming_it(
    client: TestClient, alice: Account, params: dict[str, object], name: str
) -> None:
    response = client.get("/jobs", params=params, headers=alice.headers)
    assert response.status_code == 422
    assert ["query", name] in [error["loc"] for error in response.json()["errors"]]


def test_a_job_shows_its_public_fields(client: TestClient, alice: Account) -> None:
    job_id = make_job(alice.id)
    start(job_id)
    body = client.get(f"/jobs/{job_id}", headers=alice.headers).json()
    assert set(body) == {
        "id",
        "endpoint",
        "status",
        "params",
        "progress",
        "progress_message",
        "attempts",
        "error",
        "created_at",
        "started_at",
        "finished_at",
        "links",
        "estimated_seconds",
        "queue",
        "data_filename",
        "model",
        "score",
        "duration_seconds",
    }
    assert (body["id"], body["status"], body["attempts"], body["error"]) == (job_id, "running", 1, None)
    assert body["params"]["model_type"] == TINY_GBDT["model_type"]
    assert body["created_at"].endswith(("Z", "+00:00")) and body["started_at"].endswith(("Z", "+00:00"))


def test_a_job_shows_its_file_model_score_and_duration(client: TestClient, alice: Account) -> None:
    lightgbm = make_job(alice.id, data_filename="iris.csv")
    forest = make_job(
        alice.id, endpoint="mlregression", params={"base_model": "RandomForestRegressor"}, csv=IRIS
    )
    set_job(lightgbm, created_at=ago(10))
    unfinished = client.get(f"/jobs/{lightgbm}", headers=alice.headers).json()
    assert (unfinished["data_filename"], unfinished["model"]) == ("iris.csv", "lightgbm")
    assert (unfinished["score"], unfinished["duration_seconds"]) == (None, None)
    succeeded(lightgbm)
    finished = ago(10)
    set_job(lightgbm, started_at=finished - timedelta(seconds=2.5), finished_at=finished)
    listed = {item["id"]: item for item in client.get("/jobs", headers=alice.headers).json()["items"]}
    assert listed[lightgbm]["score"] == {"name": "accuracy", "value": RESULT["accuracy"]}
    assert listed[lightgbm]["duration_seconds"] == 2.5
    assert (listed[forest]["model"], listed[forest]["data_filename"]) == ("RandomForestRegressor", None)


def test_a_failed_job_shows_its_error(client: TestClient, alice: Account) -> None:
    job_id = make_job(alice.id)
    with session_scope() as session:
        fail(session, job_id, "missing_value", "Column 'a' has a missing value on line 3.")
    body = client.get(f"/jobs/{job_id}", headers=alice.headers).json()
    assert body["error"] == {"code": "missing_value", "message": "Column 'a' has a missing value on line 3."}
    assert body["finished_at"].endswith(("Z", "+00:00"))


def test_another_users_job_is_a_404_on_every_route(client: TestClient, alice: Account, bob: Account) -> None:
    job_id = succeeded(make_job(alice.id))
    for method, path in [("GET", ""), ("GET", "/result"), ("DELETE", "")]:
        response = client.request(method, f"/jobs/{job_id}{path}", headers=bob.headers)
        assert response.status_code == 404, (method, path)
        assert job_id in response.json()["detail"]
    assert client.get(f"/jobs/{'0' * 32}", headers=alice.headers).status_code == 404
    job = load_job(job_id)
    assert job is not None and job.status == "succeeded"


def test_the_job_routes_need_a_token(client: TestClient, alice: Account) -> None:
    job_id = make_job(alice.id)
    for path in ("/jobs", f"/jobs/{job_id}", f"/jobs/{job_id}/result"):
        assert client.get(path).status_code == 401


def test_the_result_of_a_succeeded_job_is_its_json(client: TestClient, alice: Account) -> None:
    job_id = succeeded(make_job(alice.id))
    plain = client.get(f"/jobs/{job_id}/result", headers={**alice.headers, "Accept-Encoding": "identity"})
    assert plain.status_code == 200
    assert ("content-encoding" not in plain.headers, plain.json()) == (True, RESULT)
    zipped = client.get(f"/jobs/{job_id}/result", headers={**alice.headers, "Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.json() == RESULT


def test_the_result_of_an_unfinished_or_failed_job_is_a_409_saying_why(
    client: TestClient, alice: Account
) -> None:
    queued, failed = make_job(alice.id), make_job(alice.id)
    with session_scope() as session:
        fail(session, failed, "non_numeric", "Column 'b' has a non-numeric value.")
    waiting = client.get(f"/jobs/{queued}/result", headers=alice.headers)
    assert waiting.status_code == 409
    assert "is queued" in waiting.json()["detail"] and f"poll /jobs/{queued}" in waiting.json()["detail"]
    refused = client.get(f"/jobs/{failed}/result", headers=alice.headers)
    assert refused.status_code == 409
    assert "non_numeric: Column 'b'" in refused.json()["detail"]


@pytest.mark.parametrize("start_it", [False, True])
def test_delete_cancels_an_unfinished_job_and_answers_it(
    client: TestClient, alice: Account, start_it: bool
) -> None:
    job_id = make_job(alice.id)
    if start_it:
        start(job_id)
    response = client.delete(f"/jobs/{job_id}", headers=alice.headers)
    assert response.status_code == 200
    assert (response.json()["id"], response.json()["status"]) == (job_id, "cancelled")
    job = load_job(job_id)
    assert job is not None and job.status == "cancelled"


@pytest.mark.parametrize("start_it", [False, True])
def test_cancel_stops_an_unfinished_job_and_answers_it(
    client: TestClient, alice: Account, start_it: bool
) -> None:
    job_id = make_job(alice.id)
    if start_it:
        start(job_id)
    response = client.post(f"/jobs/{job_id}/cancel", headers=alice.headers)
    assert response.status_code == 200
    assert (response.json()["id"], response.json()["status"]) == (job_id, "cancelled")
    job = load_job(job_id)
    assert job is not None and (job.status, job.stopping) == ("cancelled", start_it)
    again = client.post(f"/jobs/{job_id}/cancel", headers=alice.headers)  # idempotent
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")
    assert events(job_id).count("cancelled") == 1


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_cancel_of_a_finished_job_is_a_409_and_keeps_it(
    client: TestClient, alice: Account, outcome: str
) -> None:
    job_id = make_job(alice.id)
    if outcome == "succeeded":
        succeeded(job_id)
    else:
        with session_scope() as session:
            fail(session, job_id, "non_numeric", "Column 'b' has a non-numeric value.")
    response = client.post(f"/jobs/{job_id}/cancel", headers=alice.headers)
    assert response.status_code == 409
    body = response.json()
    assert (body["code"], body["status"], body["job_id"]) == ("job_finished", outcome, job_id)
    assert f"already {outcome}" in body["detail"]
    job = load_job(job_id)
    assert job is not None and job.status == outcome
    assert client.get(f"/jobs/{job_id}", headers=alice.headers).json()["status"] == outcome


def test_cancel_of_another_users_job_is_a_404_and_leaves_it(
    client: TestClient, alice: Account, bob: Account
) -> None:
    job_id = make_job(alice.id)
    assert client.post(f"/jobs/{job_id}/cancel", headers=bob.headers).status_code == 404
    assert load_job(job_id).status == "queued"  # type: ignore[union-attr]


def test_cancelling_a_job_with_a_webhook_writes_its_delivery(client: TestClient, alice: Account) -> None:
    job_id = make_job(alice.id, params={**TINY_GBDT, "webhook_url": "https://example.com/hook"})
    assert client.post(f"/jobs/{job_id}/cancel", headers=alice.headers).status_code == 200
    assert webhook_outbox(job_id) == ["job.cancelled"]


def test_delete_of_a_finished_job_removes_it_and_its_upload(client: TestClient, alice: Account) -> None:
    job_id = succeeded(make_job(alice.id))
    digest = load_job(job_id).dataset_sha256  # type: ignore[union-attr]
    assert client.delete(f"/jobs/{job_id}", headers=alice.headers).status_code == 204
    assert client.get(f"/jobs/{job_id}", headers=alice.headers).status_code == 404
    assert client.get(f"/jobs/{job_id}/result", headers=alice.headers).status_code == 404
    with session_scope() as session:
        assert session.get(Upload, digest) is None


def test_wait_on_the_status_answers_when_the_job_finishes(client: TestClient, alice: Account) -> None:
    job_id = make_job(alice.id)
    finisher = threading.Timer(0.3, succeeded, args=(job_id,))  # the "worker", while the GET waits
    finisher.start()
    try:
        response = client.get(f"/jobs/{job_id}", params={"wait": 30}, headers=alice.headers)
    finally:
        finisher.join()
    assert response.status_code == 200
    assert (response.json()["id"], response.json()["status"]) == (job_id, "succeeded")


def test_wait_on_the_status_ends_with_the_unfinished_job_after_its_seconds(
    client: TestClient, alice: Account
) -> None:
    job_id = make_job(alice.id)
    started = time.monotonic()
    response = client.get(f"/jobs/{job_id}", params={"wait": 0.3}, headers=alice.headers)
    assert time.monotonic() - started >= 0.3  # it did wait (an upper bound would be a timing assertion)
    assert (response.status_code, response.json()["status"]) == (200, "queued")


@pytest.mark.parametrize("wait", ["61", "-1", "soon"])
def test_a_bad_wait_on_the_status_is_a_422_naming_it(client: TestClient, alice: Account, wait: str) -> None:
    job_id = make_job(alice.id)
    response = client.get(f"/jobs/{job_id}", params={"wait": wait}, headers=alice.headers)
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["query", "wait"]


def test_wait_on_someone_elses_job_is_a_404_at_once(client: TestClient, alice: Account, bob: Account) -> None:
    job_id = make_job(bob.id)
    response = client.get(f"/jobs/{job_id}", params={"wait": 60}, headers=alice.headers)
    assert response.status_code == 404
