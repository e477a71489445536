"""The job routes over real HTTP with real workers: a job named by a prefix of its id, `POST
/jobs/{id}/cancel` stopping a running computation, and the list's file, model, score and duration after
real jobs succeeded."""

from __future__ import annotations

from datetime import datetime

import pytest

from tests.faults.conftest import slow_csv, slow_params
from tests.stack import DATA, Client
from tests.waiting import wait_until

pytestmark = [pytest.mark.service]

PREFIX = 8  # what a progress bar shows


def submit_file(client: Client, endpoint: str, name: str, **params: object) -> str:
    """Submit a data file under its own name; returns the job's id."""
    files = {"file": (name, (DATA / name).read_bytes(), "text/csv")}
    response = client.http.post(f"/{endpoint}", params={k: str(v) for k, v in params.items()}, files=files)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def seconds_between(job: dict[str, object], start: str, end: str) -> float:
    return (datetime.fromisoformat(str(job[end])) - datetime.fromisoformat(str(job[start]))).total_seconds()


def test_the_list_shows_file_model_score_and_duration_of_real_jobs(alice: Client) -> None:
    classified = submit_file(alice, "gbdtclassification", "iris_dataset2.csv", n_estimators=20)
    regressed = submit_file(alice, "mlregression", "boston_dataset2.csv", base_model="Ridge")
    for job_id in (classified, regressed):
        assert alice.wait(job_id[:PREFIX])["status"] == "succeeded"
    listed = {item["id"]: item for item in alice.http.get("/jobs", params={"limit": 100}).json()["items"]}
    accuracy = alice.result(classified)["accuracy"]
    rmse = alice.result(regressed)["Score"]["RMSE (Root Mean Squared Error)"]
    for job_id, model, score in (
        (classified, "lightgbm", ("accuracy", accuracy)),
        (regressed, "Ridge", ("rmse", rmse)),
    ):
        item = listed[job_id]
        assert (item["model"], item["score"]) == (model, {"name": score[0], "value": score[1]})
        assert item["data_filename"] == (
            "iris_dataset2.csv" if job_id == classified else "boston_dataset2.csv"
        )
        assert item["duration_seconds"] == pytest.approx(seconds_between(item, "started_at", "finished_at"))
        assert item["duration_seconds"] > 0
        assert alice.http.get(f"/jobs/{job_id[:PREFIX].upper()}").json() == item


def test_a_prefix_names_only_the_callers_own_job(alice: Client, bob: Client) -> None:
    job_id = submit_file(alice, "gbdtclassification", "iris_dataset2.csv", n_estimators=5)
    short = alice.http.get(f"/jobs/{job_id[:5]}")
    assert (short.status_code, short.json()["code"], short.json()["minimum"]) == (422, "id_too_short", 6)
    for path in ("", "/result", "/cancel"):
        method = "POST" if path == "/cancel" else "GET"
        hidden = bob.http.request(method, f"/jobs/{job_id[:PREFIX]}{path}")
        assert (hidden.status_code, hidden.json()["code"]) == (404, "not_found"), path
        assert job_id not in hidden.text
    assert alice.wait(job_id[:6])["id"] == job_id


def test_cancel_stops_a_running_job_and_refuses_a_finished_one(alice: Client) -> None:
    response = alice.submit("gbdtclassification", slow_csv(), **slow_params())
    assert response.status_code == 202, response.text
    running = response.json()["id"]
    prefix = running[:PREFIX]
    wait_until(
        lambda: alice.http.get(f"/jobs/{prefix}").json()["status"] == "running", 60, "the job to start"
    )
    cancelled = alice.http.post(f"/jobs/{prefix}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert (cancelled.json()["id"], cancelled.json()["status"]) == (running, "cancelled")
    again = alice.http.post(f"/jobs/{running}/cancel")
    assert (again.status_code, again.json()["status"]) == (200, "cancelled")
    # its worker stops the computation: the job can then be deleted (409 while it is still stopping)
    wait_until(lambda: alice.http.delete(f"/jobs/{prefix}").status_code == 204, 60, "the computation to stop")

    done = submit_file(alice, "gbdtclassification", "iris_dataset2.csv", n_estimators=5)
    assert alice.wait(done)["status"] == "succeeded"
    refused = alice.http.post(f"/jobs/{done[:PREFIX]}/cancel")
    assert refused.status_code == 409
    body = refused.json()
    assert (body["code"], body["status"], body["job_id"]) == ("job_finished", "succeeded", done)
    assert alice.http.get(f"/jobs/{done}").json()["status"] == "succeeded"
    assert alice.http.get(f"/jobs/{done}/result").status_code == 200
